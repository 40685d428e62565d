"""`cosim-info model=<m> [hardware=<h>]`: a model's (and a GPU's) derived facts as JSON on stdout."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf

from cosim.config.apps import app_schema
from cosim.config.hardware import HardwareConfig
from cosim.config.model import ModelConfig
from cosim.dtypes import DType
from cosim.errors import require
from cosim.hardware.spec import GPUSpec
from cosim.model.params import active_weight_bytes, weight_bytes_by_component
from cosim.model.spec import ModelSpec

_DTYPES = [d.value for d in DType]


@app_schema("info_schema")
@dataclass
class InfoConfig:
    """Root config of `cosim-info` (hydra_configs/info.yaml)."""

    model: ModelConfig = MISSING
    hardware: HardwareConfig | None = None  # optional: adds the GPU's figures
    contexts: list[int] = field(default_factory=lambda: [4096, 32768, 131072])


def _num(x: float) -> int | float:
    """Integers stay integers in JSON (byte and parameter counts)."""
    return int(x) if float(x).is_integer() else round(float(x), 3)


def _nonzero(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.value if hasattr(v, "value") else v) for k, v in d.items()
            if v not in (0, False, "", None)}


def model_facts(spec: ModelSpec, contexts: list[int] | tuple[int, ...] = (4096, 32768, 131072)
                ) -> dict[str, Any]:
    """The model part of cosim-info's output."""
    p = spec.precision
    out: dict[str, Any] = {
        "model": spec.name,
        "hf_repo": spec.hf_repo,
        "model_type": spec.model_type,
        "num_layers": spec.num_layers,
        "num_attention_layers": spec.num_attention_layers,
        "num_mamba_layers": spec.num_mamba_layers,
        "num_dense_layers": spec.num_dense_layers,
        "num_moe_layers": spec.num_moe_layers,
        "layer_groups": [{"mixer": g.mixer.value, "ffn": g.ffn.value, "window": g.window,
                          "count": g.count} for g in spec.groups],
        "hidden_size": spec.hidden_size,
        "vocab_size": spec.vocab_size,
        "max_context": spec.max_context,
        "attention": _nonzero(asdict(spec.attention)) if spec.attention else None,
        "moe": _nonzero(asdict(spec.moe)) if spec.moe else None,
        "mamba": _nonzero(asdict(spec.mamba)) if spec.mamba else None,
        "total_params": spec.total_params,
        "active_params": spec.active_params,
        "mtp_params": spec.mtp_params,
        "params_by_component": {g.name: {"total": g.total, "active": g.active}
                                for g in spec.param_groups},
        "precision": {"weight": p.weight.value, "expert": p.expert.value,
                      "attention": p.attention.value, "fp8_scaling": p.fp8_scaling,
                      "fp4_format": p.fp4_format, "kv": p.kv.value,
                      "activation": p.activation.value},
        "weight_bytes": {d: _num(spec.weight_bytes(d)) for d in _DTYPES},
        "weight_bytes_configured": _num(spec.weight_bytes()),
        "weight_bytes_by_component": {k: _num(v) for k, v in
                                      weight_bytes_by_component(spec).items()},
        "kv_cache_bytes_per_token": {d: _num(spec.kv_cache_bytes_per_token(d)) for d in _DTYPES},
        "kv_dtype": p.kv.value,
    }
    if spec.window_kv_bytes_per_token():
        out["window_kv_cache_bytes_per_token"] = {
            d: _num(spec.window_kv_bytes_per_token(d)) for d in _DTYPES}
        out["attention_windows"] = sorted({g.window for g in spec.groups if g.window})
    out["kv_bytes_per_request"] = {str(c): _num(spec.kv_bytes(c)) for c in contexts}
    out["state_bytes_per_request"] = _num(spec.state_bytes_per_request())
    # Matmul FLOPs per token of a decode step (2 per active weight), attention scores excluded.
    out["decode_matmul_flops_per_token"] = 2 * spec.active_params
    out["active_weight_bytes"] = _num(active_weight_bytes(spec))
    return out


def hardware_facts(gpu: GPUSpec, spec: ModelSpec | None = None) -> dict[str, Any]:
    """The hardware part of cosim-info's output (in SI units, plus the config's units)."""
    out: dict[str, Any] = {
        "name": gpu.name,
        "peak_flops": {k: _num(v) for k, v in gpu.peak_flops_by_dtype.items()},
        "peak_tflops": {k: _num(v / 1e12) for k, v in gpu.peak_flops_by_dtype.items()},
        "hbm_bytes": _num(gpu.hbm_bytes),
        "hbm_bw_bytes_per_s": _num(gpu.hbm_bw),
        "ridge_point_flops_per_byte": {k: _num(v / gpu.hbm_bw)
                                       for k, v in gpu.peak_flops_by_dtype.items()},
        "nvlink_bytes_per_s": _num(gpu.nvlink_bw),
        "nvlink_domain_gpus": gpu.nvlink_domain_gpus,
        "nic_bytes_per_s": _num(gpu.nic_bw),
        "gpus_per_node": gpu.gpus_per_node,
        "sm_version": gpu.sm_version,
        "tables": gpu.tables,
        "compute_source": "measured tables + roofline" if gpu.tables else "roofline only",
        "source": gpu.source,
    }
    if spec is not None:
        wb = spec.weight_bytes()
        out["min_gpus_for_weights"] = math.ceil(wb / gpu.hbm_bytes)
        # A batch-1 decode step streams the active weights from HBM at least once (one GPU).
        out["decode_floor_s_batch1"] = active_weight_bytes(spec) / gpu.hbm_bw
    return out


def info_task(cfg: DictConfig) -> dict[str, Any]:
    """Hydra task of `cosim-info`: print the facts as JSON on stdout and return them."""
    obj = OmegaConf.to_object(cfg) if isinstance(cfg, DictConfig) else cfg
    obj.model.validate("model")
    spec = ModelSpec.from_config(obj.model)
    for i, c in enumerate(obj.contexts):
        require(c >= 1, f"contexts[{i}]", f"must be >= 1, got {c}")
    result = model_facts(spec, obj.contexts)
    if obj.hardware is not None:
        result["hardware"] = hardware_facts(GPUSpec.from_config(obj.hardware), spec)
    print(json.dumps(result, indent=2))
    return result
