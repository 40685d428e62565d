"""The Python entry point: `cosim.simulate(overrides=[...])` -> Result.

    import cosim
    res = cosim.simulate(["workload=coding", "deployment.replicas=2", "workload.num_requests=300"])
    res.summary["output_tok_s_per_gpu"], res.requests.ttft_s.describe(), res.iterations.head()

`overrides` are Hydra overrides of hydra_configs/config.yaml (the same as on the `cosim`
command line); a composed DictConfig or a Config dataclass works too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from omegaconf import DictConfig

from cosim.errors import ConfigError


@dataclass
class Result:
    """One run: summary.json as a dict, requests and iterations as DataFrames, the config."""

    summary: dict
    requests: pd.DataFrame
    iterations: pd.DataFrame
    config: Any
    artifacts: dict = field(default_factory=dict)  # e.g. {"timeline.json": {...}}

    @property
    def feasible(self) -> bool:
        return bool(self.summary.get("feasible"))


_KEY_PATTERNS = (re.compile(r"Could not override '([^']+)'"),
                 re.compile(r"Could not append to config\. An item is already at '([^']+)'"),
                 re.compile(r"full_key: ([\w.\[\]]+)"),
                 re.compile(r"Key '([^']+)' (?:is )?not in"))


def compose_config(overrides: Sequence[str] = (), config_name: str = "config") -> DictConfig:
    """Compose hydra_configs/<config_name>.yaml with `overrides`; errors name the key."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from cosim.config import register_configs
    from cosim.config.topology_files import check_selected_topology
    from cosim.paths import hydra_config_dir

    register_configs()
    try:
        if GlobalHydra.instance().is_initialized():  # inside a Hydra app: same config dir
            cfg = compose(config_name=config_name, overrides=list(overrides))
        else:
            with initialize_config_dir(config_dir=hydra_config_dir(), version_base="1.3"):
                cfg = compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as e:
        text = f"{e} {e.__cause__ or ''}"
        field = next((m.group(1) for p in _KEY_PATTERNS if (m := p.search(text))), "overrides")
        raise ConfigError(field, " ".join(str(e).split())) from e
    check_selected_topology(cfg)  # a topology file that did not load: its own error
    return cfg


def simulate(overrides: Sequence[str] | DictConfig | Any | None = None, *,
             config_name: str = "config",
             step_cost_factory: Callable | None = None,
             comm_factory: Callable | None = None,
             progress: Callable[[float, int], None] | None = None) -> Result:
    """Run one serving simulation and return its Result.

    `step_cost_factory(spec, layout)` and `comm_factory(layout, first_gpu)` replace the
    compute and communication models (experiments with other cost models); by default the
    config decides (cosim.compute's StepCostModel; the network group's backend).
    """
    from cosim.serving.simulation import run_simulation

    if overrides is None or (isinstance(overrides, Sequence) and not isinstance(overrides, str)):
        cfg = compose_config(list(overrides or ()), config_name)
    else:
        cfg = overrides
    out = run_simulation(cfg, step_cost_factory=step_cost_factory, comm_factory=comm_factory,
                         progress=progress)
    return Result(summary=out.summary, requests=out.requests, iterations=out.iterations,
                  config=cfg, artifacts=out.artifacts)
