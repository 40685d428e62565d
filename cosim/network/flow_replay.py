"""Re-time a recorded flow trace (cosim.network.flow_trace) on another fabric or backend.

Each recorded group keeps its time zero (`group_start_s`, the point of its iteration it was
sent at) and its flows' start offsets; its flows are re-timed together, as the run timed
them, in one backend request. Groups of one pattern carry identical flows, so each pattern is
timed once and every group of it gets the same relative completion times:

    completion_after = group_start_s + finish of the flow in its pattern's new timing

which, on the recorded topology and backend, is the recorded completion_s bit for bit.

A *transfer* is what a serving model waits for: the flows of one group with one traffic
class, layer and micro-batch; its duration is its last completion minus its first start,
and it stands for `layers` identical layers (its weight in the distributions).

The bottleneck of a transfer is the link with the largest bytes / capacity over the
transfer's flows on their routes (the same routes both backends use): the link whose drain
bounds the transfer's time from below, the first to saturate under max-min filling when the
flows start together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cosim.network.cache import bucket_sizes
from cosim.network.fabric import LINK_CLASS_NAMES, FabricGraph, link_bytes
from cosim.network.flows import FlowBatch, NetworkBackend


class GpuMapError(ValueError):
    """A GPU mapping that does not fit the trace or the topology (the message says why)."""


def gpu_mapping(recorded_gpus: int, target_gpus: int, spec: object = None,
                used: np.ndarray | None = None) -> np.ndarray:
    """Target GPU of every recorded GPU (int64 array of recorded_gpus entries).

    spec: None (the GPU counts must match: identity), "first" (recorded GPU g -> target GPU g,
    the target at least as large) or a sequence of target GPU ids, one per recorded GPU (a
    sequence as long as the highest GPU `used` + 1 is enough). Distinct GPUs stay distinct.
    """
    if spec is None:
        if recorded_gpus != target_gpus:
            raise GpuMapError(f"the trace ran on {recorded_gpus} GPUs, the topology has "
                              f"{target_gpus}; give replay.gpu_map (a list, a file, or first)")
        return np.arange(recorded_gpus, dtype=np.int64)
    if isinstance(spec, str):
        if spec != "first":
            raise GpuMapError(f"unknown mapping {spec!r}; use a list, a file, or first")
        if target_gpus < recorded_gpus:
            raise GpuMapError(f"first: the trace ran on {recorded_gpus} GPUs, the topology has "
                              f"only {target_gpus}")
        return np.arange(recorded_gpus, dtype=np.int64)
    try:
        arr = np.asarray(list(spec))  # type: ignore[call-overload]
    except TypeError:
        raise GpuMapError(f"expected a list of GPU ids, got {spec!r}") from None
    need = int(used.max()) + 1 if used is not None and used.size else recorded_gpus
    if arr.ndim != 1 or arr.size < need or arr.size > recorded_gpus:
        raise GpuMapError(f"{arr.size} entries for a trace of {recorded_gpus} GPUs (GPUs 0.."
                          f"{need - 1} used); give one target GPU per recorded GPU")
    if not np.issubdtype(arr.dtype, np.integer):
        bad = next((x for x in arr.tolist() if not isinstance(x, int)), arr[0])
        raise GpuMapError(f"entry {bad!r} is not an integer GPU id")
    out_of = np.flatnonzero((arr < 0) | (arr >= target_gpus))
    if out_of.size:
        k = int(out_of[0])
        raise GpuMapError(f"entry {k} maps to GPU {int(arr[k])}, outside the topology's GPUs "
                          f"0..{target_gpus - 1}")
    uniq, counts = np.unique(arr, return_counts=True)
    if (counts > 1).any():
        raise GpuMapError(f"GPU {int(uniq[np.argmax(counts > 1)])} is the target of "
                          f"{int(counts.max())} recorded GPUs; a mapping must keep GPUs distinct")
    full = np.full(recorded_gpus, -1, dtype=np.int64)
    full[:arr.size] = arr
    return full


@dataclass(frozen=True)
class Retimed:
    """New completion times of every row of a trace, and the facts of each pattern's timing."""

    completion_s: np.ndarray  # per row
    pattern_first_row: np.ndarray  # per pattern id: a row of its first group (-1: unused)
    backend_calls: int


def _group_positions(group: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of each row within its group, and the first row of every row's group."""
    n = group.shape[0]
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    change = np.ones(n, dtype=bool)
    change[1:] = group[1:] != group[:-1]
    starts = np.flatnonzero(change)
    first = np.repeat(starts, np.diff(np.append(starts, n)))
    return np.arange(n) - first, first


def timed_sizes(size: np.ndarray, grid_percent: float | None) -> np.ndarray:
    """The sizes the run's backend timed: bytes rounded up to the run's cache grid."""
    return bucket_sizes(size, grid_percent) if grid_percent else np.asarray(size, np.int64)


def retime(cols: dict[str, np.ndarray], backend: NetworkBackend, gpu_map: np.ndarray,
           grid_percent: float | None) -> Retimed:
    """Time every pattern of a trace once on `backend` (GPU ids through gpu_map)."""
    group, pattern = cols["group"], cols["pattern"]
    if group.size and np.any(np.diff(group) < 0):
        raise ValueError("flow trace rows are not ordered by group")
    pos, _ = _group_positions(group)
    n_pat = int(pattern.max()) + 1 if pattern.size else 0
    head = np.full(n_pat, -1, dtype=np.int64)
    is_first = pos == 0
    # the first group of each pattern (first occurrence in row order)
    rows0 = np.flatnonzero(is_first)
    uniq, idx = np.unique(pattern[rows0], return_index=True)
    head[uniq] = rows0[idx]
    size = timed_sizes(cols["bytes"], grid_percent)
    src, dst = gpu_map[cols["src"]], gpu_map[cols["dst"]]
    pat_off = np.zeros(n_pat + 1, dtype=np.int64)
    parts: list[np.ndarray] = []
    calls = 0
    for p in range(n_pat):
        r0 = int(head[p])
        if r0 < 0:
            pat_off[p + 1] = pat_off[p]
            continue
        r1 = int(np.searchsorted(group, group[r0], side="right"))
        flows = FlowBatch(src[r0:r1].astype(np.int32), dst[r0:r1].astype(np.int32),
                          size[r0:r1], cols["start_offset_s"][r0:r1].astype(np.float64),
                          np.zeros(r1 - r0, dtype=np.int32))
        parts.append(np.asarray(backend.simulate(flows).finish, dtype=np.float64))
        pat_off[p + 1] = pat_off[p] + (r1 - r0)
        calls += 1
    rel = np.concatenate(parts) if parts else np.zeros(0)
    bad = np.flatnonzero(pos >= np.diff(pat_off)[pattern])
    if bad.size:
        r = int(bad[0])
        raise ValueError(f"group {int(group[r])} has more flows than the first group of its "
                         f"pattern {int(pattern[r])}")
    fin = rel[pat_off[pattern] + pos]
    return Retimed(cols["group_start_s"] + fin, head, calls)


@dataclass(frozen=True)
class Transfers:
    """Transfers of a trace (see module docstring), one entry each."""

    group: np.ndarray
    pattern: np.ndarray
    traffic_class: np.ndarray  # str
    iteration: np.ndarray
    instance: np.ndarray
    weight: np.ndarray  # layers it stands for
    start_s: np.ndarray
    before_s: np.ndarray  # duration as recorded
    after_s: np.ndarray  # duration re-timed
    row_key: np.ndarray  # per row: its transfer index


def transfers(cols: dict[str, np.ndarray], completion_after: np.ndarray) -> Transfers:
    """Group rows into transfers: (group, traffic class, layer, micro-batch)."""
    code, cls_names = pd.factorize(cols["traffic_class"], sort=True)
    key = combined_key(cols["group"], code, cols["layer"], cols["micro_batch"])
    uniq, inv = np.unique(key, return_inverse=True)
    inv = inv.ravel()
    k = uniq.size
    start = np.full(k, np.inf)
    np.minimum.at(start, inv, cols["start_s"])
    end_b = np.full(k, -np.inf)
    np.maximum.at(end_b, inv, cols["completion_s"])
    end_a = np.full(k, -np.inf)
    np.maximum.at(end_a, inv, completion_after)
    first = np.zeros(k, dtype=np.int64)
    first[inv[::-1]] = np.arange(inv.size)[::-1]
    return Transfers(group=cols["group"][first], pattern=cols["pattern"][first],
                     traffic_class=np.asarray(cls_names, dtype=object)[code[first]],
                     iteration=cols["iteration"][first],
                     instance=cols["instance"][first],
                     weight=cols["layers"][first].astype(np.float64), start_s=start,
                     before_s=end_b - start, after_s=end_a - start, row_key=inv)


def combined_key(*parts: np.ndarray) -> np.ndarray:
    """One int64 per row that orders and separates rows as the tuple of `parts` does
    (each part a non-negative or -1-based small integer array)."""
    key = np.zeros(parts[0].shape[0], dtype=np.int64)
    for p in parts:
        p = np.asarray(p, dtype=np.int64) + 1  # -1 (none) -> 0
        span = int(p.max()) + 1 if p.size else 1
        key = key * span + p
    return key


def link_name(graph: FabricGraph, link: int) -> str:
    """e.g. 'gpu3->leaf0 (nic)'."""
    return (f"{graph.node_label(int(graph.link_src[link]))}->"
            f"{graph.node_label(int(graph.link_dst[link]))} "
            f"({LINK_CLASS_NAMES[int(graph.link_class[link])]})")


def bottleneck(graph: FabricGraph, src: np.ndarray, dst: np.ndarray,
               size: np.ndarray) -> tuple[int, float]:
    """(link id, bytes / capacity seconds) of the most loaded link of these flows; (-1, 0)
    when none needs the network."""
    net = (src != dst) & (size > 0)
    if not net.any():
        return -1, 0.0
    per_link = link_bytes(graph, src[net], dst[net], size[net])
    t = per_link * 8.0 / graph.link_capacity_bps
    k = int(np.argmax(t))
    return k, float(t[k])


def weighted_quantiles(x: np.ndarray, w: np.ndarray, qs: tuple[float, ...]) -> list[float]:
    """Quantiles of x with weights w (inverted CDF: the smallest x whose weight share >= q)."""
    if x.size == 0:
        return [float("nan")] * len(qs)
    o = np.argsort(x, kind="stable")
    cw = np.cumsum(w[o])
    total = cw[-1]
    return [float(x[o][min(int(np.searchsorted(cw, q * total, side="left")), x.size - 1)])
            for q in qs]
