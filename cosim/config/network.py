"""Config group `network`: which backend times the fabric's flows."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING


@dataclass
class NetworkConfig:
    backend: str = MISSING  # analytical | ns3 | alpha_beta
