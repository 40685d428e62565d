"""Compute model: operator latency from measured kernel tables, with a roofline fallback.

- :class:`ComputeModel` (``.latency(op) -> OpLatency``) and :func:`estimate` (a forward pass)
- :class:`StepCostModel` (``.cost(...) -> StepCost``): one serving iteration, memoised
- :mod:`cosim.compute.tables`: the aiconfigurator-core Parquet tables, read with pandas

See docs/compute.md.
"""

from cosim.compute.model import ComputeModel, Estimate, OpEstimate, OpLatency, estimate
from cosim.compute.step_cost import StepCost, StepCostModel

__all__ = ["ComputeModel", "Estimate", "OpEstimate", "OpLatency", "StepCost", "StepCostModel",
           "estimate"]
