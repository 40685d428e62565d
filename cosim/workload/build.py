"""The request table of a run: synthetic draws (synthetic.py) or a replayed trace (trace.py)."""

from __future__ import annotations

import numpy as np

from cosim.config.workload import WorkloadConfig
from cosim.workload.requests import RequestTable
from cosim.workload.synthetic import generate_synthetic
from cosim.workload.trace import read_trace_for_workload


def build_workload(cfg: WorkloadConfig, model_max_context: int, seed: int) -> RequestTable:
    """The request table of a run: synthetic draws or a replayed trace."""
    rng = np.random.default_rng([int(seed), 0x5E55])
    if cfg.kind == "trace":
        return read_trace_for_workload(cfg, model_max_context, rng)
    return generate_synthetic(cfg, model_max_context, rng)
