"""Regenerate the worked example of docs/experts.md (between the GENERATED markers).

Usage: python scripts/experts_example.py [--check]
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from cosim.experts import expected_touched, expert_load, place_experts
from cosim.files import update_generated

DOC = Path(__file__).resolve().parents[1] / "docs" / "experts.md"
BEGIN, END = "<!-- GENERATED: scripts/experts_example.py -->", "<!-- END GENERATED -->"
PROFILE = Path(__file__).resolve().parents[1] / "traces" / "expert_load" / "synthetic_256x4.csv"


def render() -> str:
    E, k = 256, 8
    lines = ["Placement of 256 routed experts (DeepSeek-V3/V3.2), max experts per GPU and "
             "imbalance (most loaded GPU / mean) under the shipped synthetic profile:", "",
             "| EP GPUs | redundant | experts/GPU (min-max) | imbalance |", "|---|---|---|---|"]
    w = expert_load("profile", E, profile=str(PROFILE))
    for n, r in ((8, 0), (24, 0), (32, 0), (32, 32), (126, 0), (120, 0), (120, 8)):
        pl = place_experts(E, n, w, r)
        sizes = [len(x) for x in pl.gpu_experts]
        lines.append(f"| {n} | {r} | {min(sizes)}-{max(sizes)} | {pl.imbalance:.2f} |")
    lines += ["", "Expected distinct experts touched by one decode step of T tokens, top-8 of "
              "256 (balanced: E(1-(1-k/E)^T); Zipf s=1.0 popularity):", "",
              "| T | balanced | zipf s=1.0 | T*k |", "|---|---|---|---|"]
    z = expert_load("zipf", E, 1.0)[0]
    for t in (1, 4, 16, 64, 256):
        lines.append(f"| {t} | {expected_touched(t, k, np.full(E, 1 / E)):.1f} | "
                     f"{expected_touched(t, k, z):.1f} | {t * k} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    return update_generated(DOC, BEGIN, END, render(), "--check" in argv)

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
