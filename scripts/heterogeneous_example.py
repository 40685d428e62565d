"""Regenerate the worked examples of docs/heterogeneous_roles.md (between the GENERATED
markers): one AFD unit of 8 attention + 8 FFN GPUs with each role on H200 or B200, its
memory plan per role, speed and cost; and the same unit on a mixed-kind fabric (an H200
server and a B200 server, topology dgx_h200_b200_ib) with its traffic per class.

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
MIXED_BEGIN = "<!-- GENERATED: scripts/heterogeneous_example.py mixed_fabric -->"
MIXED_END = "<!-- END GENERATED: heterogeneous_example mixed_fabric -->"
HET = ["hardware=b200", "+hardware@deployment.roles.attention.hardware=h200"]
TP2 = ["deployment.roles.attention.layout.tp=2", "deployment.roles.attention.layout.dp=4"]
# (topology, attention layout overrides): the mixed fabric, and one figure set for both kinds
MIXED_CASES = (("dgx_h200_b200_ib", []), ("dgx_h200_b200_ib", TP2), ("dgx_b200_ib", TP2))


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


def _gb(pair: dict | None) -> str:
    if not pair:
        return "-"
    return f"{pair['nvlink_bytes'] / 1e9:,.0f} / {pair['scale_out_bytes'] / 1e9:,.0f}"


def render_mixed() -> str:
    base = [a for a in BASE if not a.startswith("topology")]
    lines = ["`cosim " + " ".join(base[:-2]) + " " + " ".join(HET) + " topology=<topology> "
             "<attention layout>` (attention on H200, FFN on B200, m = 3, analytical network; "
             "memory per GPU from summary.json `deployment.memory`, traffic from "
             "`traffic_bytes`, NVLink / scale-out GB over the whole run):", "",
             "| topology | attention layout | attention GPUs (H200): weights / KV / usable (GB) | "
             "FFN GPUs (B200): weights / activations / usable (GB) | A2F GB | F2A GB | "
             "TP all-reduce GB | TP all-reduce per iteration (ms) | iteration (ms, mean) | "
             "TPOT p50 (ms) | output tok/s per GPU |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for topo, lay in MIXED_CASES:
        s = cosim.simulate([*base, *HET, f"topology={topo}", *lay]).summary
        ma, mf = s["deployment"]["memory"]["attention"], s["deployment"]["memory"]["ffn"]
        tb = s["traffic_bytes"]
        ar_s = s["comm"].get("afd_attention_tp_allreduce_s")
        ar = f"{ar_s / s['iterations'] * 1e3:.2f}" if ar_s is not None else "-"
        layout = "TP2 x DP4" if lay else "DP8"
        lines.append(
            f"| `{topo}` | {layout} | {ma['weight_gb']:.1f} / {ma['kv_gb']:.1f} / "
            f"{ma['usable_gb']:.1f} | {mf['weight_gb']:.1f} / {mf['activation_gb']:.2f} / "
            f"{mf['usable_gb']:.1f} | {_gb(tb.get('a2f'))} | {_gb(tb.get('f2a'))} | "
            f"{_gb(tb.get('allreduce'))} | {ar} | {s['iteration_ms_mean']:.2f} | "
            f"{s['tpot_ms_p50']:.2f} | {s['output_tok_s_per_gpu']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    a = update_generated(DOC, BEGIN, END, render(), check)
    b = update_generated(DOC, MIXED_BEGIN, MIXED_END, render_mixed(), check)
    return a or b


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
