"""Regenerate the steady-state worked example of docs/serving.md (between the GENERATED
markers): a short chat run, cold or with warm prefixes, with and without a warm-up window.

Usage: python scripts/steady_state_example.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

import cosim
from cosim.files import update_generated

DOC = Path(__file__).resolve().parents[1] / "docs" / "serving.md"
BEGIN = "<!-- GENERATED: scripts/steady_state_example.py -->"
END = "<!-- END GENERATED: steady_state_example -->"
BASE = ["workload=chat", "workload.num_requests=100", "output.progress=false",
        "output.write_parquet=false"]
WARMUP = 30
CASES = (
    ("cold, every request", []),
    ("warm prefixes, every request", ["workload.warm_prefixes=true"]),
    (f"cold, first {WARMUP} left out", [f"metrics.warmup_requests={WARMUP}"]),
    (f"warm prefixes, first {WARMUP} left out",
     ["workload.warm_prefixes=true", f"metrics.warmup_requests={WARMUP}"]),
)


def render() -> str:
    lines = ["`cosim " + " ".join(BASE[:2]) + "` (the default chunked deployment, Poisson "
             "10 requests/s, 32 shared ~4k prefixes), four ways:", "",
             "| run | measured requests | warm prefix blocks | prefix hit rate | TTFT p50 (ms) "
             "| TTFT p90 (ms) | output tokens/s |", "|---|---|---|---|---|---|---|"]
    for label, extra in CASES:
        s = cosim.simulate([*BASE, *extra]).summary
        n = s["requests_total"] - s["warmup_excluded_requests"]
        lines.append(f"| {label} | {n} | {s['warm_prefix_blocks']} | "
                     f"{s['prefix_hit_rate']:.1%} | {s['ttft_ms_p50']:.1f} | "
                     f"{s['ttft_ms_p90']:.1f} | {s['output_tok_s']:,.0f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    return update_generated(DOC, BEGIN, END, render(), "--check" in argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
