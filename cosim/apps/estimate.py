"""`cosim-estimate`: per-operator latency of one forward pass on one GPU, as JSON.

    cosim-estimate model=deepseek_v32 hardware=b200 phase=decode batch=64 context=4096
    cosim-estimate model=qwen3_235b hardware=h200 phase=prefill batch=1 context=8192 chunk=2048 tp=4 ep=4

`batch` requests on this GPU (one attention rank), each with `context` tokens of KV length
after this pass; a prefill pass computes `chunk` new tokens per request (default: all of
`context`, i.e. no cached prefix). The layout splits attention as tp x dp and experts as
ep x moe_tp; ep defaults to tp * dp (every GPU of the instance holds experts), and the MoE
layer sees the tokens of all dp ranks.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from cosim.config.apps import app_schema
from cosim.config.compute import ComputeConfig
from cosim.config.deployment import ExpertsConfig
from cosim.config.hardware import HardwareConfig
from cosim.config.model import ModelConfig
from cosim.errors import ConfigError, require

PHASES = {"prefill": "context", "decode": "generation", "context": "context",
          "generation": "generation"}


@app_schema("estimate_schema")
@dataclass
class EstimateConfig:
    """Root config of `cosim-estimate` (hydra_configs/estimate.yaml)."""

    model: ModelConfig = MISSING
    hardware: HardwareConfig = MISSING
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    phase: str = "decode"  # prefill | decode
    batch: int = 1  # requests on this GPU
    context: int = 4096  # KV length per request after this pass
    chunk: int = 0  # prefill: new tokens per request (0: all of context)
    tp: int = 1
    dp: int = 1
    ep: int = 0  # 0: tp * dp
    moe_tp: int = 1
    # expert placement of the ep GPUs (as deployment.experts of a run; docs/experts.md):
    # the MoE op is priced at its hottest GPU
    experts: ExpertsConfig = field(default_factory=ExpertsConfig)
    flags: bool = True  # include each op's flags (substitutions, anchors, floor clamps)

    def validate(self) -> None:
        require(self.phase in PHASES, "phase",
                f"unknown phase {self.phase!r}; choose prefill or decode")
        for name in ("batch", "context", "tp", "dp", "moe_tp"):
            v = getattr(self, name)
            require(isinstance(v, int) and v >= 1, name, f"must be an integer >= 1, got {v!r}")
        require(self.ep >= 0, "ep", f"must be >= 0 (0: tp * dp), got {self.ep}")
        require(self.chunk >= 0, "chunk", f"must be >= 0 (0: all of context), got {self.chunk}")
        require(self.chunk <= self.context, "chunk",
                f"{self.chunk} new tokens do not fit a context of {self.context}")


def run_estimate(cfg: EstimateConfig) -> dict[str, Any]:
    """Build the operators of one forward pass and price them; returns the JSON document."""
    from cosim.compute import ComputeModel, estimate
    from cosim.model.forward import forward_operators
    from cosim.model.layout import ParallelLayout
    from cosim.model.operators import Phase
    from cosim.model.spec import ModelSpec
    from cosim.serving.expert_layouts import ExpertLayouts

    cfg.validate()
    cfg.hardware.validate("hardware")
    cfg.compute.validate("compute")
    spec = ModelSpec.from_config(cfg.model)
    layout = ParallelLayout(tp=cfg.tp, dp=cfg.dp, ep=cfg.ep or cfg.tp * cfg.dp, moe_tp=cfg.moe_tp)
    layout.validate("layout")
    cfg.experts.validate("experts")
    layout = ExpertLayouts(spec, cfg.experts, prefix="experts")(layout)
    phase = Phase(PHASES[cfg.phase])
    chunk = (cfg.chunk or cfg.context) if phase == Phase.context else 1
    ops = forward_operators(spec, phase, cfg.batch, cfg.context, chunk, layout)
    model = ComputeModel(cfg.hardware, cfg.compute)
    est = estimate(ops, model)
    doc = est.to_dict()
    if not cfg.flags:
        for o in doc["ops"]:
            o.pop("flags", None)
    return {
        "model": cfg.model.name,
        "hardware": cfg.hardware.name,
        "phase": cfg.phase,
        "batch": cfg.batch,
        "context": cfg.context,
        "chunk": chunk,
        "layout": layout.sizes(),
        "experts": layout.experts.summary() if layout.experts is not None else None,
        "compute": model.describe(),
        **doc,
        "floor_clamped_ops": int(model.stats["floor"]),
    }


def estimate_task(cfg) -> dict[str, Any]:
    """Hydra task of `cosim-estimate`: print the estimate as JSON and return it."""
    from cosim.config import to_object

    obj = to_object(cfg)
    try:
        doc = run_estimate(obj)
    except ConfigError as err:
        print(f"cosim-estimate: {err}", file=sys.stderr)
        raise SystemExit(2) from err
    print(json.dumps(doc, indent=2))
    return doc
