"""Regenerate the worked example of docs/placement.md (between the GENERATED markers): one
AFD unit on 2 DGX B200 servers, `packed` against `spread`, bytes per link class and the
iteration time of each.

Usage: python scripts/placement_example.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

import cosim
from cosim.files import update_generated

DOC = Path(__file__).resolve().parents[1] / "docs" / "placement.md"
BEGIN = "<!-- GENERATED: scripts/placement_example.py -->"
END = "<!-- END GENERATED: placement_example -->"
USERS = 32
BASE = ["deployment=afd", "model=deepseek_v32", "hardware=b200", "topology=dgx_b200_ib",
        "topology.num_nodes=2", "workload=chat", "workload.arrival.process=closed_loop",
        f"workload.arrival.users={USERS}", f"workload.num_requests={2 * USERS}",
        "output.progress=false", "output.write_parquet=false"]
UNITS = (
    ("4 attention (DP4) + 4 FFN (EP4)",
     ["deployment.roles.attention.layout.dp=4", "deployment.roles.ffn.layout.ep=4"]),
    ("8 attention (DP8) + 8 FFN (EP8)", []),
)
PLACEMENTS = ("packed", "spread")
MICRO_BATCHES = (1, 3)


def run(unit: list[str], placement: str, m: int) -> dict:
    out = cosim.simulate([*BASE, *unit, f"deployment.micro_batches={m}",
                          f"deployment.placement.attention={placement}",
                          f"deployment.placement.ffn={placement}"])
    s = out.summary
    it = out.iterations
    dec = it[(it.prefill_tokens == 0) & (it.decode_requests > 0)]
    tb = s["traffic_bytes"]
    nv = sum(tb[c]["nvlink_bytes"] for c in ("a2f", "f2a"))
    so = sum(tb[c]["scale_out_bytes"] for c in ("a2f", "f2a"))
    return {"gpus": s["deployment"]["afd"]["unit_gpus"][0], "nvlink_gb": nv / 1e9,
            "scale_out_gb": so / 1e9, "iter_ms": 1e3 * float(dec.duration_s.mean()),
            "comm_ms": 1e3 * float(dec.comm_s.mean()), "batch": float(dec.decode_requests.mean()),
            "tpot": s["tpot_ms_p50"], "exposed": s["comm_exposed_fraction"]}


def fmt_gpus(g: dict) -> str:
    def ranges(ids: list[int]) -> str:
        parts, i = [], 0
        while i < len(ids):
            j = i
            while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
                j += 1
            parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
            i = j + 1
        return ",".join(parts)
    return f"A {ranges(g['attention'])} / F {ranges(g['ffn'])}"


def render() -> str:
    lines = ["`cosim " + " ".join(BASE[:-2]) + " deployment.micro_batches=m "
             "deployment.placement.attention=P deployment.placement.ffn=P` (analytical network; "
             "A2F + F2A bytes of the whole run from summary.json `traffic_bytes`; decode "
             "iteration = mean `duration_s` of the iterations without prefill, its exposed "
             "communication `comm_s`):", "",
             "| unit | placement | GPUs (A attention / F FFN) | m | A2F+F2A on NVLink (GB) | "
             "A2F+F2A on scale-out (GB) | decode iteration (ms) | of which exposed comm (ms) | "
             "TPOT p50 (ms) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for label, unit in UNITS:
        for m in MICRO_BATCHES:
            for p in PLACEMENTS:
                r = run(unit, p, m)
                lines.append(f"| {label} | `{p}` | {fmt_gpus(r['gpus'])} | {m} | "
                             f"{r['nvlink_gb']:,.1f} | {r['scale_out_gb']:,.1f} | "
                             f"{r['iter_ms']:.2f} | {r['comm_ms']:.3f} | {r['tpot']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    return update_generated(DOC, BEGIN, END, render(), "--check" in argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
