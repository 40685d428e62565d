"""Config group `hardware`: one GPU's peak figures and which measured tables apply.

Units at this edge are the datasheets' (TFLOP/s, GB, TB/s, GB/s, Gb/s); `cosim.hardware.GPUSpec`
converts them to FLOP/s, bytes and bytes/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from omegaconf import MISSING

from cosim.errors import require

PEAK_DTYPES = ("bfloat16", "fp8", "fp4")


@dataclass
class HardwareConfig:
    name: str = MISSING
    # Dense (not 2:4 sparse) peak tensor-core FLOP/s per dtype, in TFLOP/s (keys: bfloat16, fp8,
    # fp4). A dtype without tensor-core support is left out (Hopper has no fp4).
    peak_tflops: dict[str, float] = field(default_factory=dict)
    hbm_gb: float = MISSING  # capacity, GB (1e9 B); datasheet "80 GB" HBM is 80 GiB = 85.9 GB
    hbm_tb_s: float = MISSING  # bandwidth, TB/s
    nvlink_gb_s: float = 0.0  # per GPU per direction, GB/s (0: no NVLink)
    nvlink_domain_gpus: int = 8  # GPUs reachable over NVLink (8 in HGX/DGX, 72 in NVL72)
    nic_gbps: float = 0.0  # per NIC, Gb/s (scale-out network)
    nics_per_gpu: int = 1
    gpus_per_node: int = 8  # GPUs per server / compute tray
    sm_version: int = 0  # CUDA compute capability x10 (90 Hopper, 100 Blackwell), 0: unknown
    tdp_w: float = 0.0  # board power, W (0: unknown)
    # aiconfigurator-core system folder with measured tables (h100_sxm, b200_sxm, ...);
    # null for a hypothetical GPU that runs on the roofline alone.
    tables: str | None = None
    source: str = ""  # where the figures come from
    # Rental price of one GPU per hour, US dollars (public on-demand list price; override it
    # with your own contract, e.g. hardware.usd_per_gpu_hour=2.5). null: no price, and
    # summary.json's usd_per_hour / usd_per_mtok are null. docs/cost.md.
    usd_per_gpu_hour: float | None = None
    price_source: str = ""  # where the price comes from (URL, date read)

    def validate(self, prefix: str = "hardware") -> None:
        require(bool(self.peak_tflops), f"{prefix}.peak_tflops", "needs at least one dtype")
        for k, v in self.peak_tflops.items():
            require(k in PEAK_DTYPES, f"{prefix}.peak_tflops.{k}",
                    f"unknown dtype; use {', '.join(PEAK_DTYPES)}")
            require(isinstance(v, (int, float)) and v > 0, f"{prefix}.peak_tflops.{k}",
                    f"must be a number > 0, got {v!r}")
        for name in ("hbm_gb", "hbm_tb_s"):
            v = getattr(self, name)
            require(v > 0, f"{prefix}.{name}", f"must be > 0, got {v}")
        for name in ("nvlink_gb_s", "nic_gbps", "tdp_w"):
            v = getattr(self, name)
            require(v >= 0, f"{prefix}.{name}", f"must be >= 0, got {v}")
        for name in ("gpus_per_node", "nvlink_domain_gpus", "nics_per_gpu"):
            v = getattr(self, name)
            require(v >= 1, f"{prefix}.{name}", f"must be >= 1, got {v}")
        p = self.usd_per_gpu_hour
        require(p is None or (isinstance(p, (int, float)) and not isinstance(p, bool)
                              and math.isfinite(p) and p >= 0),
                f"{prefix}.usd_per_gpu_hour", f"must be a number >= 0 or null, got {p!r}")
        require(self.tables is None or bool(self.tables.strip()), f"{prefix}.tables",
                "empty: name an aiconfigurator system folder (h100_sxm, b200_sxm, ...) or null")
