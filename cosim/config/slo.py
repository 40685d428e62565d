"""Config group `slo`: service-level objectives a request must meet to count as good.

The TTFT objective depends on the workload: an interactive chat answer must start sooner
than a coding or agentic one (seed paper: 50 / 100 / 150 ms for chat / coding / agentic,
TPOT 15 ms for all). `ttft_ms_by_workload` holds that table, keyed by `workload.name`;
`ttft_ms` set to a number overrides it for every workload (`slo.ttft_ms=80`), and a
workload missing from the table falls back to `default_ttft_ms`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from cosim.errors import require


@dataclass
class SLOConfig:
    name: str = "default"
    ttft_ms: float | None = None  # null: by workload (table below)
    ttft_ms_by_workload: dict[str, float] = field(
        default_factory=lambda: {"chat": 50.0, "coding": 100.0, "agentic": 150.0})
    default_ttft_ms: float = 100.0  # workloads not in the table (fixed, traces)
    tpot_ms: float = 15.0  # mean time per output token after the first, per request
    e2e_ms: float | None = None  # optional end-to-end objective; null: none

    def validate(self, prefix: str = "slo") -> None:
        def ok(v: object) -> bool:
            return isinstance(v, (int, float)) and math.isfinite(v) and v > 0

        if self.ttft_ms is not None:
            require(ok(self.ttft_ms), f"{prefix}.ttft_ms", f"must be > 0 or null, got {self.ttft_ms!r}")
        for k, v in self.ttft_ms_by_workload.items():
            require(ok(v), f"{prefix}.ttft_ms_by_workload.{k}", f"must be > 0, got {v!r}")
        require(ok(self.default_ttft_ms), f"{prefix}.default_ttft_ms",
                f"must be > 0, got {self.default_ttft_ms!r}")
        require(ok(self.tpot_ms), f"{prefix}.tpot_ms", f"must be > 0, got {self.tpot_ms!r}")
        if self.e2e_ms is not None:
            require(ok(self.e2e_ms), f"{prefix}.e2e_ms", f"must be > 0 or null, got {self.e2e_ms!r}")

    def ttft_ms_for(self, workload_name: str) -> float:
        """The TTFT objective (ms) that applies to `workload_name`."""
        if self.ttft_ms is not None:
            return float(self.ttft_ms)
        return float(self.ttft_ms_by_workload.get(workload_name, self.default_ttft_ms))
