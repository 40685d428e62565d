"""Regenerate docs/serving.md's "Framework profiles" section: every profile value with its
source and version (from cosim.config.profiles), and a worked example of each profile.

    python scripts/profiles_table.py           # rewrite the section
    python scripts/profiles_table.py --check   # 0 if the page is current (staleness test)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cosim
from cosim.config.profiles import GUARDED, PROFILES
from cosim.files import update_generated

DOC = Path(__file__).resolve().parents[1] / "docs" / "serving.md"
BEGIN = "<!-- GENERATED: scripts/profiles_table.py -->"
END = "<!-- END GENERATED: profiles_table -->"
EXAMPLE = ["model=deepseek_v3", "hardware=h200", "topology=dgx_h200_ib", "topology.num_nodes=1",
           "deployment.layout.tp=8", "deployment.layout.dp=1", "deployment.layout.ep=1",
           "deployment.layout.moe_tp=8", "workload=fixed", "workload.input_tokens.mean=1024",
           "workload.output_tokens.mean=256", "workload.arrival.users=32",
           "workload.num_requests=64", "output.progress=false"]


def _value(v) -> str:
    return "(depends on the GPU / layout, see the source)" if callable(v) else f"`{v}`"


def render() -> str:
    out = ["| framework | key | value | what the framework does | version | source |",
           "|---|---|---|---|---|---|"]
    for fw, settings in PROFILES.items():
        for s in settings:
            out.append(f"| {fw} | `{s.key}` | {_value(s.value)} | {s.what} | {s.version} | "
                       f"[link]({s.source}) |")
    for fw, settings in GUARDED.items():
        for s in settings:
            out.append(f"| {fw} | `{s.key}` | {_value(s.value)} | {s.what} (set once the "
                       f"option lands) | {s.version} | [link]({s.source}) |")
    out += ["", "Worked example: DeepSeek-V3 on one H200 server, TP8 (moe_tp 8), 32 closed-loop "
            "users, 1024 -> 256 tokens, 64 requests (`" + " ".join(EXAMPLE[4:8]) + "`):", "",
            "| compute.framework | compute.profile | TTFT mean (ms) | TPOT mean (ms) | "
            "KV cache tokens |", "|---|---|---|---|---|"]
    for fw in PROFILES:
        for prof in ("none", "framework"):
            s = cosim.simulate(EXAMPLE + [f"compute.framework={fw}",
                                          f"compute.profile={prof}"]).summary
            kv = s["deployment"]["memory"]["replica"]["kv_tokens"]
            out.append(f"| {fw} | {prof} | {s['ttft_ms_mean']:.1f} | {s['tpot_ms_mean']:.2f} | "
                       f"{kv} |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args(argv)
    return update_generated(DOC, BEGIN, END, render(), a.check)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
