"""Structured configs (dataclasses registered in Hydra's ConfigStore) and their validation.

Each config group has its own module (model.py, hardware.py, ...). Hydra checks types and
unknown keys against these dataclasses; `validate()` checks values and raises
:class:`ConfigError` naming the offending field.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from cosim.config.compute import ComputeConfig
from cosim.config.deployment import DeploymentConfig
from cosim.config.hardware import HardwareConfig
from cosim.config.kinds import apply_kind_overrides
from cosim.config.model import ModelConfig
from cosim.config.network import NetworkConfig
from cosim.config.slo import SLOConfig
from cosim.config.topology import TopologyConfig
from cosim.config.topology_files import register_topologies
from cosim.config.workload import WorkloadConfig
from cosim.errors import ConfigError, require

__all__ = [
    "ComputeConfig",
    "Config",
    "ConfigError",
    "DeploymentConfig",
    "HardwareConfig",
    "MetricsConfig",
    "ModelConfig",
    "NetworkConfig",
    "SLOConfig",
    "TopologyConfig",
    "WorkloadConfig",
    "register_configs",
    "to_object",
    "apply_kind_overrides",
    "check_unknown_keys",
    "validate",
]


@dataclass
class OutputConfig:
    """What a run writes into its Hydra run directory."""

    write_parquet: bool = True
    progress: bool = True  # rich progress bar on long runs
    # A run whose folder already holds the complete outputs of this very config (a sweep
    # re-run into its hydra.sweep.dir) is not run again; false: always run
    # (cosim.report.outputs says what "complete" means).
    resume: bool = True
    timeline_iterations: list[int] = field(default_factory=lambda: [0, 3])  # [first, last)
    # flows.parquet: every flow the run put on the fabric, for cosim-replay (docs/replay.md)
    flows: bool = False


@dataclass
class MetricsConfig:
    """Which requests the summary statistics cover (cosim.metrics.summarize)."""

    # A warm-up window: requests arriving before warmup_s (seconds after the first arrival),
    # and the first warmup_requests requests by arrival, are left out of the latency,
    # SLO, goodput, throughput and prefix-hit figures, so that a run's start (empty queues,
    # cold caches) does not weigh on its steady state. 0 and 0: every request counts.
    warmup_s: float = 0.0
    warmup_requests: int = 0

    def validate(self, prefix: str = "metrics") -> None:
        ok = isinstance(self.warmup_s, (int, float)) and math.isfinite(self.warmup_s)
        require(ok and self.warmup_s >= 0, f"{prefix}.warmup_s",
                f"must be a finite number >= 0, got {self.warmup_s!r}")
        require(self.warmup_requests >= 0, f"{prefix}.warmup_requests",
                f"must be >= 0, got {self.warmup_requests}")


@dataclass
class Config:
    """Root config of the `cosim` app (hydra_configs/config.yaml)."""

    model: ModelConfig = MISSING
    hardware: HardwareConfig = MISSING
    topology: TopologyConfig = MISSING
    deployment: DeploymentConfig = MISSING
    workload: WorkloadConfig = MISSING
    network: NetworkConfig = MISSING
    slo: SLOConfig = MISSING
    compute: ComputeConfig = field(default_factory=ComputeConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    seed: int = 0
    # Deployment keys that apply only when deployment.kind matches, for sweeps over several
    # kinds: kind -> {deployment key: value} (cosim.config.kinds, docs/sweeps.md).
    kind_overrides: dict[str, Any] = field(default_factory=dict)


_registered = False


def register_configs() -> None:
    """Register the schemas with Hydra's ConfigStore (idempotent)."""
    global _registered
    if _registered:
        return
    cs = ConfigStore.instance()
    cs.store(name="cosim_schema", node=Config)
    from cosim.config import apps  # noqa: F401  (registers the inspection apps' schemas)

    apps.register(cs)
    # Topologies live in topologies/*.yaml; each file is an option of group `topology`.
    register_topologies(cs)
    _registered = True


def to_object(cfg: DictConfig | Config) -> Any:
    """Turn a composed DictConfig into its dataclass instance (a no-op for dataclasses)."""
    if isinstance(cfg, DictConfig):
        return OmegaConf.to_object(cfg)
    return cfg


def check_unknown_keys(cfg: DictConfig, prefix: str = "") -> None:
    """Raise ConfigError for a key its group's dataclass does not declare.

    Hydra's `+key=value` appends even to a struct node, so `+workload.foo=1` would pass
    silently; dict-typed fields (deployment.roles, deployment.options) stay free by design.
    """
    import dataclasses

    if not isinstance(cfg, DictConfig):
        return
    kind = cfg._metadata.object_type
    declared = ({f.name for f in dataclasses.fields(kind)}
                if kind is not None and dataclasses.is_dataclass(kind) else None)
    for key in cfg.keys():
        where = f"{prefix}.{key}" if prefix else str(key)
        if declared is not None and key not in declared:
            raise ConfigError(where, f"unknown key; {prefix or 'the config'} has "
                              f"{', '.join(sorted(declared))}")
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and not node._is_missing() and not node._is_none():
            check_unknown_keys(node, where)


def validate(cfg: Any) -> None:
    """Check values of every group that has a `validate` method; raise ConfigError naming the field."""
    for name in ("model", "hardware", "topology", "deployment", "workload", "network", "slo",
                 "compute", "metrics"):
        node = getattr(cfg, name, None)
        check = getattr(node, "validate", None)
        if check is not None:
            check(prefix=name)
    _check_moe_load(cfg)


def _check_moe_load(cfg: Any) -> None:
    """The power-law MoE rows already are a skewed hottest GPU: no second skew on top."""
    comp = getattr(cfg, "compute", None)
    experts = getattr(getattr(cfg, "deployment", None), "experts", None)
    dist = getattr(comp, "moe_distribution", "balanced")
    if dist == "balanced":
        return
    if experts is not None and experts.load != "balanced":
        raise ConfigError("compute.moe_distribution",
                          f"{dist} rows already price a skewed hottest GPU; use balanced with "
                          f"deployment.experts.load={experts.load}")
    if getattr(comp, "moe_weights", "all") == "touched":
        raise ConfigError("compute.moe_weights",
                          f"touched scales the balanced rows; {dist} rows have their own routing")
