"""Regenerate the worked example of docs/experts.md (between the GENERATED markers).

Usage: python scripts/experts_example.py [--check]

Placements as a run makes them (cosim.serving.expert_layouts: every profile layer placed on
its own, the hottest GPU's share and expert count averaged over layers), and the MoE expert
core of one layer of DeepSeek-V3.2 on B200 (trtllm tables) priced at that hottest GPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from cosim.api import compose_config
from cosim.compute import ComputeModel
from cosim.config import to_object
from cosim.config.compute import ComputeConfig
from cosim.config.deployment import ExpertsConfig
from cosim.experts import expected_touched, expert_load
from cosim.files import update_generated
from cosim.model.forward import forward_operators
from cosim.model.layout import ParallelLayout
from cosim.model.spec import ModelSpec
from cosim.serving.expert_layouts import ExpertLayouts

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "experts.md"
BEGIN, END = "<!-- GENERATED: scripts/experts_example.py -->", "<!-- END GENERATED -->"
PROFILE = "traces/expert_load/synthetic_256x4.csv"
# (what, EP GPUs, redundant experts); 122 / 104 fill every FFN GPU's third slot
GROUPS = (("chunked EP8", 8, 0), ("chunked EP24", 24, 0), ("chunked EP24 + 24 redundant", 24, 24),
          ("chunked EP32", 32, 0), ("chunked EP32 + 32 redundant", 32, 32),
          ("AFD 2A+126F", 126, 0), ("AFD 2A+126F + 122 redundant", 126, 122),
          ("AFD 8A+120F", 120, 0), ("AFD 8A+120F + 104 redundant", 120, 104))
DECODE_TOKENS = 256  # tokens entering the MoE layer in one decode step (e.g. 2 x 128)


def _moe_us(spec, model: ComputeModel, layout: ParallelLayout, tokens: int) -> tuple[float, str]:
    op = next(o for o in forward_operators(spec, "generation", tokens, 2048, layout=layout)
              if o.name == "moe.experts")
    lat = model.latency(op, "generation")
    return lat.latency_s * 1e6, lat.source


def render() -> str:
    cfg = to_object(compose_config(["model=deepseek_v32", "hardware=b200"]))
    spec = ModelSpec.from_config(cfg.model)
    E, k = spec.moe.num_experts, spec.moe.topk
    models = {w: ComputeModel(cfg.hardware, ComputeConfig(moe_weights=w))
              for w in ("all", "touched")}
    lines = [f"DeepSeek-V3.2 (256 routed experts, top-8) on B200, trtllm tables. One MoE "
             f"layer's expert core at the hottest GPU for a decode step of {DECODE_TOKENS} "
             "tokens entering the layer (us; `all` / `touched` = compute.moe_weights), under "
             "a balanced load and under the shipped synthetic profile "
             f"(`{PROFILE}`, 4 layers):", "",
             "| group | load | experts/GPU | hottest GPU: experts, share of pairs | "
             "imbalance (max/mean) | MoE us, all | MoE us, touched |",
             "|---|---|---|---|---|---|---|"]
    for load in ("balanced", "profile"):
        for what, n, r in GROUPS:
            ex = ExpertLayouts(spec, ExpertsConfig(num_redundant=r, load=load,
                                                   profile=str(ROOT / PROFILE)))
            lay = ex(ParallelLayout(dp=n, ep=n))
            row = ex.summary()[f"ep{n}"]
            # one attention rank of DECODE_TOKENS: the MoE sees DECODE_TOKENS tokens
            lay1 = ParallelLayout(dp=1, ep=n, experts=lay.experts)
            a, _ = _moe_us(spec, models["all"], lay1, DECODE_TOKENS)
            t, _ = _moe_us(spec, models["touched"], lay1, DECODE_TOKENS)
            lines.append(
                f"| {what} | {load} | {row['experts_per_gpu_min']}-{row['experts_per_gpu_max']} "
                f"| {row['hottest_gpu_experts']:g}, {row['hottest_gpu_pair_share']:.4f} "
                f"(mean {1 / n:.4f}) | {row['imbalance']:.2f} | {a:.1f} | {t:.1f} |")
    lines += ["", "Expected distinct experts touched by one decode step of T tokens, top-8 of "
              "256 (balanced: E(1-(1-k/E)^T); Zipf s=1.0 popularity), against the min(E, T k) "
              "the balanced table rows read:", "",
              "| T | balanced | zipf s=1.0 | min(E, T*k) |", "|---|---|---|---|"]
    z = expert_load("zipf", E, 1.0)[0]
    for t in (1, 4, 16, 64, 256):
        lines.append(f"| {t} | {expected_touched(t, k, np.full(E, 1 / E)):.1f} | "
                     f"{expected_touched(t, k, z):.1f} | {min(E, t * k)} |")
    lines += ["", "Touched-experts effect on one EP8 GPU (32 experts; tokens entering the "
              "layer; us):", "", "| tokens | all | touched | touched experts (of 32) |",
              "|---|---|---|---|"]
    ep8 = ParallelLayout(dp=1, ep=8)
    for t in (8, 32, 64, 128, 256, 1024):
        a, _ = _moe_us(spec, models["all"], ep8, t)
        b, _ = _moe_us(spec, models["touched"], ep8, t)
        touched = 32 * (1 - (1 - k / E) ** t)
        lines.append(f"| {t} | {a:.1f} | {b:.1f} | {touched:.1f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    return update_generated(DOC, BEGIN, END, render(), "--check" in argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
