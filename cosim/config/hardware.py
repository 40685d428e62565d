"""Config group `hardware`: one GPU's peak figures and which measured tables apply."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING

from cosim.config.errors import require


@dataclass
class HardwareConfig:
    name: str = MISSING
    # Dense peak tensor-core FLOP/s per dtype, in TFLOP/s (keys: bfloat16, fp8, fp4).
    peak_tflops: dict[str, float] = field(default_factory=dict)
    hbm_gb: float = MISSING  # capacity, GB (1e9 B)
    hbm_tb_s: float = MISSING  # bandwidth, TB/s
    nvlink_gb_s: float = 0.0  # per GPU per direction, GB/s
    nic_gbps: float = 0.0  # per NIC, Gb/s
    nics_per_gpu: int = 1
    gpus_per_node: int = 8
    # aiconfigurator-core system folder with measured tables (h100_sxm, b200_sxm, ...);
    # null for a hypothetical GPU that runs on the roofline alone.
    tables: str | None = None
    source: str = ""  # where the figures come from

    def validate(self, prefix: str = "hardware") -> None:
        require(bool(self.peak_tflops), f"{prefix}.peak_tflops", "needs at least one dtype")
        for k, v in self.peak_tflops.items():
            require(k in ("bfloat16", "fp8", "fp4"), f"{prefix}.peak_tflops.{k}",
                    "unknown dtype; use bfloat16, fp8 or fp4")
            require(v > 0, f"{prefix}.peak_tflops.{k}", f"must be > 0, got {v}")
        for name in ("hbm_gb", "hbm_tb_s"):
            require(getattr(self, name) > 0, f"{prefix}.{name}", f"must be > 0, got {getattr(self, name)}")
        for name in ("nvlink_gb_s", "nic_gbps"):
            require(getattr(self, name) >= 0, f"{prefix}.{name}", f"must be >= 0, got {getattr(self, name)}")
        require(self.gpus_per_node >= 1, f"{prefix}.gpus_per_node", "must be >= 1")
