"""Qwen-Bailian style JSONL request traces (16-token blocks):

    {"chat_id": 7, "parent_chat_id": 3, "timestamp": 12.5, "input_length": 900,
     "output_length": 40, "type": "text", "turn": 2, "hash_ids": [0, 1, ...]}

`timestamp` is seconds; `hash_ids` one id per `block_tokens` (16) of the prompt. Each line is
replayed at its own timestamp as its own request; a conversation's reuse of earlier turns
shows up through equal hash ids (the KV cache's prefix hits), and the number of
conversations (chains of parent_chat_id, -1 = none) is kept in notes["conversations"].
Errors name file, line and key.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from cosim.config.errors import ConfigError
from cosim.workload.requests import RequestTable

REQUIRED = ("chat_id", "parent_chat_id", "timestamp", "input_length", "output_length", "turn")


def _int(rec: dict, key: str, where: str, minimum: int) -> int:
    v = rec.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
            or v != int(v) or abs(v) > 2**53:
        raise ConfigError(f"{where}: {key}", f"expected an integer, got {v!r}")
    if v < minimum:
        raise ConfigError(f"{where}: {key}", f"must be >= {minimum}, got {v}")
    return int(v)


def read_bailian(path: str | Path, block_tokens: int = 16, max_requests: int = 0,
                 max_context: int = 0, time_scale: float = 1.0) -> RequestTable:
    path = Path(path)
    if not path.is_file():
        raise ConfigError("workload.trace.path", f"trace file not found: {path}")
    ts, isl, osl, ptr, ids = [], [], [], [0], []
    root: dict[int, int] = {}
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if max_requests and len(ts) >= max_requests:
                break
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ConfigError(where, f"not UTF-8 text (byte {e.start} of the line)") from None
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except (json.JSONDecodeError, ValueError) as e:
                raise ConfigError(where, f"not valid JSON ({getattr(e, 'msg', e)})") from None
            if not isinstance(rec, dict):
                raise ConfigError(where, "each line must be a JSON object")
            for key in REQUIRED:
                if key not in rec:
                    raise ConfigError(f"{where}: {key}", "missing")
            t = rec["timestamp"]
            if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
                raise ConfigError(f"{where}: timestamp", f"must be a number >= 0 (s), got {t!r}")
            chat = _int(rec, "chat_id", where, 0)
            parent = _int(rec, "parent_chat_id", where, -1)
            _int(rec, "turn", where, 0)
            i = _int(rec, "input_length", where, 1)
            o = _int(rec, "output_length", where, 1)
            if max_context and i + o > max_context:
                raise ConfigError(f"{where}: input_length",
                                  f"input {i} + output {o} tokens exceed the model context of "
                                  f"{max_context} tokens")
            h = rec.get("hash_ids", [])
            if not isinstance(h, list) or not all(isinstance(x, int) and not isinstance(x, bool)
                                                  and 0 <= x < 1 << 52 for x in h):
                raise ConfigError(f"{where}: hash_ids", "must be a list of integers in [0, 2**52)")
            if len(h) > -(-i // block_tokens):
                raise ConfigError(f"{where}: hash_ids",
                                  f"{len(h)} ids for {i} input tokens is more than one per "
                                  f"{block_tokens}-token block (workload.trace.block_tokens)")
            tt = float(t) * time_scale
            if ts and tt < ts[-1]:
                raise ConfigError(f"{where}: timestamp", "lines must be in timestamp order")
            root[chat] = root.get(parent, chat) if parent >= 0 else chat
            ts.append(tt)
            isl.append(i)
            osl.append(o)
            ids.extend(h)
            ptr.append(len(ids))
    n = len(ts)
    if n == 0:
        raise ConfigError("workload.trace.path", f"{path} holds no requests")
    return RequestTable(
        session=np.arange(n, dtype=np.int64), turn=np.zeros(n, dtype=np.int32),
        prefix_tokens=np.zeros(n, dtype=np.int64), input_tokens=np.asarray(isl, dtype=np.int64),
        output_tokens=np.asarray(osl, dtype=np.int64), pool_id=np.full(n, -1, dtype=np.int64),
        pool_tokens=np.zeros(n, dtype=np.int64), start_s=np.asarray(ts) - ts[0],
        think_s=np.zeros(n), trace_hash_ptr=np.asarray(ptr, dtype=np.int64),
        trace_hashes=np.asarray(ids, dtype=np.int64), trace_block_tokens=int(block_tokens),
        source=str(path), notes={"format": "bailian", "conversations": len(set(root.values()))})
