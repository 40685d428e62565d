"""All-reduce as flows: ring and NVLink SHARP (NVLS).

A ring all-reduce of S bytes over n GPUs is 2(n-1) steps, each GPU sending S/n to its ring
successor per step. Steps depend on each other (a GPU forwards what it received), which a
flow batch cannot express; we emit the equivalent per-link volume instead: one flow per
ring edge of 2(n-1)/n * S bytes, all starting together. With all edges loaded equally this
gives the bandwidth-bound time (busBw = 2(n-1)/n * S / t, NCCL's definition); the per-step
latency (2(n-1) x hop latency) is not modelled.

NVLS (NVLink SHARP): the NVSwitch reduces and multicasts, so each GPU sends S bytes up to
the switch and receives S bytes down. We emit flows i -> i+1 of S bytes each, which puts
exactly S on every GPU's up and down NVLink; valid inside one NVLink domain only.
"""

from __future__ import annotations

import numpy as np

from cosim.network.flows import FlowBatch
from cosim.traffic.tags import FlowTag


def rail_rings(gpus: np.ndarray, gpus_per_node: int, channels: int) -> list[np.ndarray]:
    """Ring orders for `channels` parallel rings over whole servers, rail-aligned.

    Ring c visits each server's GPUs from local rank c round to c-1, alternating direction
    from server to server so that every server-to-server edge joins the same local rank
    (same rail, no spine hop) - with an even number of servers, the wrap edge too.
    """
    gpus = np.asarray(gpus, dtype=np.int64)
    g = gpus_per_node
    if gpus.size % g:
        raise ValueError(f"{gpus.size} GPUs are not whole servers of {g}")
    nodes = gpus.reshape(-1, g)
    rings = []
    for c in range(channels):
        fwd = (c + np.arange(g)) % g
        bwd = (c - 1 - np.arange(g)) % g
        order = [node[fwd if i % 2 == 0 else bwd] for i, node in enumerate(nodes)]
        rings.append(np.concatenate(order))
    return rings


def ring_allreduce_flows(size_bytes: int, rings: list[np.ndarray], *,
                         start_s: float = 0.0) -> FlowBatch:
    """Per-edge flows of a ring all-reduce of size_bytes split evenly over `rings`."""
    srcs, dsts, sizes = [], [], []
    share = size_bytes / len(rings)
    for ring in rings:
        ring = np.asarray(ring, dtype=np.int64)
        n = ring.size
        if n < 2:
            continue
        srcs.append(ring)
        dsts.append(np.roll(ring, -1))
        sizes.append(np.full(n, int(np.ceil(2 * (n - 1) / n * share))))
    if not srcs:
        return FlowBatch.from_arrays([], [], [])
    src = np.concatenate(srcs)
    return FlowBatch.from_arrays(src, np.concatenate(dsts), np.concatenate(sizes),
                                 np.full(src.size, float(start_s)),
                                 np.full(src.size, int(FlowTag.ALLREDUCE)))


def nvls_allreduce_flows(gpus: np.ndarray, size_bytes: int, gpus_per_node: int, *,
                         start_s: float = 0.0) -> FlowBatch:
    """NVLink SHARP all-reduce of size_bytes over gpus of one NVLink domain."""
    gpus = np.asarray(gpus, dtype=np.int64)
    if gpus.size < 2:
        return FlowBatch.from_arrays([], [], [])
    if np.unique(gpus // gpus_per_node).size != 1:
        raise ValueError("NVLS all-reduce needs all GPUs in one NVLink domain")
    n = gpus.size
    return FlowBatch.from_arrays(gpus, np.roll(gpus, -1), np.full(n, int(size_bytes)),
                                 np.full(n, float(start_s)), np.full(n, int(FlowTag.ALLREDUCE)))
