"""Config group `topology`: a fabric description (topologies/*.yaml). Owned by cosim.network."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import MISSING


@dataclass
class TopologyConfig:
    name: str = MISSING
    num_nodes: int = 1
    gpus_per_node: int = 8
