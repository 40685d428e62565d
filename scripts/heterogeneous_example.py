"""Regenerate the worked example of docs/heterogeneous_roles.md (between the GENERATED
markers): one AFD unit of 8 attention + 8 FFN GPUs with each role on H200 or B200, its
memory plan per role, speed and cost.

Usage: python scripts/heterogeneous_example.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

import cosim
from cosim.files import update_generated

DOC = Path(__file__).resolve().parents[1] / "docs" / "heterogeneous_roles.md"
BEGIN = "<!-- GENERATED: scripts/heterogeneous_example.py -->"
END = "<!-- END GENERATED: heterogeneous_example -->"
USERS = 32
BASE = ["deployment=afd", "model=deepseek_v32", "topology=dgx_b200_ib", "topology.num_nodes=2",
        "workload=chat", "workload.arrival.process=closed_loop", f"workload.arrival.users={USERS}",
        f"workload.num_requests={2 * USERS}", "output.progress=false", "output.write_parquet=false"]
CASES = (("b200", "b200"), ("h200", "h200"), ("h200", "b200"), ("b200", "h200"))


def overrides(att: str, ffn: str) -> list[str]:
    if att == ffn:
        return [f"hardware={att}"]
    return ["hardware=b200", f"+hardware@deployment.roles.attention.hardware={att}",
            f"+hardware@deployment.roles.ffn.hardware={ffn}"]


def render() -> str:
    lines = ["`cosim " + " ".join(BASE[:-2]) + " <hardware overrides>` (8 attention GPUs DP8 + "
             "8 FFN GPUs EP8, m = 3, analytical network; memory per GPU from summary.json "
             "`deployment.memory`, cost from `deployment.cost_by_role`):", "",
             "| attention | FFN | overrides | attention GPU: weights / KV / usable (GB) | "
             "FFN GPU: weights / usable (GB) | KV tokens | TPOT p50 (ms) | output tok/s per GPU | "
             "attention busy | FFN busy | USD per hour | USD per M output tokens |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for att, ffn in CASES:
        ov = overrides(att, ffn)
        s = cosim.simulate([*BASE, *ov]).summary
        ma, mf = s["deployment"]["memory"]["attention"], s["deployment"]["memory"]["ffn"]
        lines.append(
            f"| {att} | {ffn} | `{' '.join(ov)}` | {ma['weight_gb']:.1f} / {ma['kv_gb']:.1f} / "
            f"{ma['usable_gb']:.1f} | {mf['weight_gb']:.1f} / {mf['usable_gb']:.1f} | "
            f"{ma['kv_tokens']:,} | {s['tpot_ms_p50']:.1f} | {s['output_tok_s_per_gpu']:.1f} | "
            f"{s['attention_busy']:.2f} | {s['ffn_busy']:.2f} | {s['usd_per_hour']:.2f} | "
            f"{s['usd_per_mtok']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    return update_generated(DOC, BEGIN, END, render(), "--check" in argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
