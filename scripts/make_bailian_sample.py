"""Write traces/bailian_sample.jsonl: a synthetic Qwen-Bailian style trace (16-token blocks).

Conversations of 1-5 turns; each turn's prompt is the previous prompt + its answer + a new
user message, so its leading full blocks repeat the previous turn's ids; a third of the
conversations start with one of 4 shared system prompts. Seeded; re-run to regenerate.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

BLOCK = 16


OUT = Path(__file__).resolve().parents[1] / "traces" / "bailian_sample.jsonl"


def main(out: Path = OUT) -> None:
    rng = np.random.default_rng(16)
    next_id = 0
    system = []
    for _ in range(4):
        system.append(list(range(next_id, next_id + 20)))
        next_id += 20
    rows = []
    for chat in range(120):
        t = float(rng.uniform(0, 120))
        blocks = list(system[chat % 4]) if chat % 3 == 0 else []
        tokens = len(blocks) * BLOCK
        parent = -1
        cid = chat * 10
        for turn in range(int(rng.integers(1, 6))):
            new = int(rng.lognormal(5.5, 0.8)) + 1
            tokens += new
            full = tokens // BLOCK
            while len(blocks) < full:
                blocks.append(next_id)
                next_id += 1
            ids = list(blocks[:full])
            if tokens % BLOCK:
                ids.append(next_id)  # partial last block: its own id
                next_id += 1
            out_len = int(rng.lognormal(4.5, 0.7)) + 1
            rows.append({"chat_id": cid + turn, "parent_chat_id": parent, "timestamp": round(t, 3),
                         "input_length": tokens, "output_length": out_len, "type": "text",
                         "turn": turn + 1, "hash_ids": ids})
            parent = cid + turn
            tokens += out_len
            # the answer's tokens become part of the next prompt; blocks past `full` are new
            t += float(rng.exponential(20.0)) + 1.0
    rows.sort(key=lambda r: r["timestamp"])
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))


if __name__ == "__main__":
    main()
