"""Config group `slo`: service-level objectives a request must meet to count as good."""

from __future__ import annotations

from dataclasses import dataclass

from cosim.config.errors import require


@dataclass
class SLOConfig:
    name: str = "default"
    ttft_ms: float = 0.0  # 0: the workload's default TTFT SLO
    tpot_ms: float = 15.0

    def validate(self, prefix: str = "slo") -> None:
        require(self.ttft_ms >= 0, f"{prefix}.ttft_ms", f"must be >= 0, got {self.ttft_ms}")
        require(self.tpot_ms > 0, f"{prefix}.tpot_ms", f"must be > 0, got {self.tpot_ms}")
