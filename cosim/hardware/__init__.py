"""GPU specifications: peak FLOP/s per dtype, HBM capacity and bandwidth, links, measured tables."""

from cosim.hardware.spec import GPUSpec

__all__ = ["GPUSpec"]
