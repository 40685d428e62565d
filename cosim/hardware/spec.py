"""A GPU's figures in SI units (FLOP/s, bytes, bytes/s), normalised from a HardwareConfig."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cosim.errors import ConfigError

# Operator dtype names -> the tensor-core rate that runs them.
_RATE_OF = {
    "bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "bfloat16", "fp16": "bfloat16",
    "fp8": "fp8", "fp8_block": "fp8", "int8": "fp8",
    "fp4": "fp4", "nvfp4": "fp4", "mxfp4": "fp4",
}
# Without a tensor-core rate for a dtype, kernels up-convert and run at the next wider one
# (e.g. MXFP4 weights on Hopper run as W4A16 on BF16 tensor cores).
_FALLBACK = {"fp4": "fp8", "fp8": "bfloat16"}


@dataclass(frozen=True)
class GPUSpec:
    name: str
    peak_flops_by_dtype: dict[str, float]  # FLOP/s, dense tensor core
    hbm_bytes: float
    hbm_bw: float  # bytes/s
    nvlink_bw: float = 0.0  # bytes/s per direction
    nvlink_domain_gpus: int = 8
    nic_bw: float = 0.0  # bytes/s per GPU per direction, all its NICs together
    gpus_per_node: int = 8
    sm_version: int = 0
    tdp_w: float = 0.0
    tables: str | None = None
    source: str = ""

    @classmethod
    def from_config(cls, cfg: Any, prefix: str = "hardware") -> GPUSpec:
        """Build from a HardwareConfig (dataclass or DictConfig), validating it first."""
        from omegaconf import DictConfig, OmegaConf

        from cosim.config.hardware import HardwareConfig

        if isinstance(cfg, DictConfig):
            cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(HardwareConfig), cfg))
        cfg.validate(prefix)
        return cls(
            name=cfg.name,
            peak_flops_by_dtype={k: float(v) * 1e12 for k, v in cfg.peak_tflops.items()},
            hbm_bytes=cfg.hbm_gb * 1e9,
            hbm_bw=cfg.hbm_tb_s * 1e12,
            nvlink_bw=cfg.nvlink_gb_s * 1e9,
            nvlink_domain_gpus=cfg.nvlink_domain_gpus,
            nic_bw=cfg.nic_gbps * 1e9 / 8 * cfg.nics_per_gpu,
            gpus_per_node=cfg.gpus_per_node,
            sm_version=cfg.sm_version,
            tdp_w=cfg.tdp_w,
            tables=cfg.tables,
            source=cfg.source,
        )

    def peak_flops(self, dtype: str) -> float:
        """Dense peak FLOP/s for an operator dtype (bfloat16, fp8, fp8_block, fp4, nvfp4, ...).

        A dtype the GPU has no tensor-core rate for runs at the next wider rate it has.
        """
        key = _RATE_OF.get(str(getattr(dtype, "value", dtype)))
        if key is None:
            raise ConfigError("dtype", f"unknown dtype {dtype!r}; use one of {sorted(_RATE_OF)}")
        while key not in self.peak_flops_by_dtype:
            if key not in _FALLBACK:
                raise ConfigError(f"hardware.peak_tflops.{key}",
                                  f"{self.name} gives no peak for {key} or a wider dtype")
            key = _FALLBACK[key]
        return self.peak_flops_by_dtype[key]

    def has_native(self, dtype: str) -> bool:
        """Whether the GPU has a tensor-core rate of its own for this dtype."""
        return _RATE_OF.get(str(getattr(dtype, "value", dtype))) in self.peak_flops_by_dtype

    def ridge_point(self, dtype: str) -> float:
        """Arithmetic intensity (FLOP/byte) above which a kernel is compute-bound."""
        return self.peak_flops(dtype) / self.hbm_bw

    @property
    def roofline_only(self) -> bool:
        return self.tables is None
