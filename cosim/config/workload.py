"""Config group `workload`: request lengths and arrivals."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING


@dataclass
class WorkloadConfig:
    name: str = MISSING
