"""Uniform all-to-all: every GPU of a group sends the same bytes to every other one."""

from __future__ import annotations

import numpy as np

from cosim.network.flows import FlowBatch
from cosim.traffic.tags import FlowTag


def all_to_all_flows(gpus: np.ndarray, bytes_per_pair: int, *, start_s: float = 0.0) -> FlowBatch:
    """n(n-1) flows of bytes_per_pair, one per ordered pair of distinct GPUs."""
    gpus = np.asarray(gpus, dtype=np.int64)
    src, dst = np.meshgrid(gpus, gpus, indexing="ij")
    keep = src != dst
    n = int(keep.sum())
    return FlowBatch.from_arrays(src[keep], dst[keep], np.full(n, int(bytes_per_pair)),
                                 np.full(n, float(start_s)), np.full(n, int(FlowTag.ALL_TO_ALL)))
