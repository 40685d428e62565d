"""Config group `deployment`: how GPUs are organised into serving instances."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING


@dataclass
class DeploymentConfig:
    kind: str = MISSING  # chunked | pd | afd | pd_afd
