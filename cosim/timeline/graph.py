"""An iteration as a task graph on serial resources, and its list schedule.

A task has a duration, at most one resource (a GPU group's compute stream, a network
channel) and predecessors. Tasks are given in *issue order*: the order in which a CUDA
stream or a communication stream receives them. A resource runs its tasks in that order,
one at a time (streams and NCCL communicators are in-order queues), and a task starts when
its predecessors have ended and its resource is free. That is list scheduling with the
issue order as the priority list; it is exact for in-order streams and O(tasks).

Tasks without a resource (resource == -1) are pure delays: they overlap freely, which is
how zero-length placeholders and network transfers timed by a contention-aware backend are
kept from serialising on a channel.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

NO_RESOURCE = -1
NO_TRAFFIC = -1


@dataclass(frozen=True)
class TaskGraph:
    """Tasks of one iteration in issue order (a topological order). Arrays: one entry per task."""

    duration: np.ndarray  # float64 seconds, >= 0
    resource: np.ndarray  # int32 index into `resources`, or NO_RESOURCE
    dep_indptr: np.ndarray  # int64, len n+1: predecessors of task i are dep_index[indptr[i]:indptr[i+1]]
    dep_index: np.ndarray  # int32, every predecessor index < its task's index
    kind: np.ndarray  # int16 index into `kinds` (attention, a2f, ffn, ...)
    layer: np.ndarray  # int32, -1 where a task belongs to no layer
    micro_batch: np.ndarray  # int32
    traffic: np.ndarray  # int32: which traffic pattern a transfer task moves, or NO_TRAFFIC
    resources: tuple[str, ...]
    kinds: tuple[str, ...]

    def __len__(self) -> int:
        return int(self.duration.shape[0])

    def with_durations(self, duration: np.ndarray) -> TaskGraph:
        """The same graph with new task durations."""
        d = np.asarray(duration, dtype=np.float64)
        if d.shape != self.duration.shape:
            raise ValueError(f"duration: expected shape {self.duration.shape}, got {d.shape}")
        return replace(self, duration=d)

    def with_resource(self, resource: np.ndarray) -> TaskGraph:
        """The same graph with tasks moved to other resources (NO_RESOURCE frees them)."""
        return replace(self, resource=np.asarray(resource, dtype=np.int32))

    def validate(self) -> None:
        """Raise ValueError naming the array at fault if the graph is malformed."""
        n = len(self)
        for name in ("resource", "kind", "layer", "micro_batch", "traffic"):
            if getattr(self, name).shape != (n,):
                raise ValueError(f"{name}: expected {n} entries, got {getattr(self, name).shape}")
        if not np.all(np.isfinite(self.duration)) or np.any(self.duration < 0):
            raise ValueError("duration: every task duration must be finite and >= 0")
        if self.dep_indptr.shape != (n + 1,) or self.dep_indptr[0] != 0 \
                or self.dep_indptr[-1] != self.dep_index.shape[0] or np.any(np.diff(self.dep_indptr) < 0):
            raise ValueError("dep_indptr: not a CSR index pointer over dep_index")
        owner = np.repeat(np.arange(n), np.diff(self.dep_indptr))
        if np.any(self.dep_index >= owner) or np.any(self.dep_index < 0):
            raise ValueError("dep_index: tasks must come after their predecessors (issue order)")
        if np.any((self.resource < NO_RESOURCE) | (self.resource >= len(self.resources))):
            raise ValueError(f"resource: index outside 0..{len(self.resources) - 1} (or -1)")
        if np.any((self.kind < 0) | (self.kind >= len(self.kinds))):
            raise ValueError(f"kind: index outside 0..{len(self.kinds) - 1}")


@dataclass(frozen=True)
class Schedule:
    """Start and end of every task of a TaskGraph (seconds from the iteration's start)."""

    start: np.ndarray
    end: np.ndarray
    makespan: float
    busy_s: dict[str, float]  # per resource: the sum of its tasks' durations

    def busy_fraction(self, resource: str) -> float:
        """Fraction of the iteration a resource works (0 for an empty iteration)."""
        return self.busy_s.get(resource, 0.0) / self.makespan if self.makespan > 0 else 0.0


def busy_by_resource(graph: TaskGraph) -> dict[str, float]:
    """Sum of task durations per resource name."""
    on = graph.resource >= 0
    sums = np.bincount(graph.resource[on], weights=graph.duration[on], minlength=len(graph.resources))
    return {name: float(sums[i]) for i, name in enumerate(graph.resources)}


def schedule(graph: TaskGraph) -> Schedule:
    """List-schedule `graph` on in-order resources; O(tasks + dependencies)."""
    n = len(graph)
    # Plain Python floats: for the ~1k tasks of an iteration, per-element numpy access costs
    # more than the arithmetic.
    dur = graph.duration.tolist()
    res = graph.resource.tolist()
    indptr = graph.dep_indptr.tolist()
    deps = graph.dep_index.tolist()
    free = [0.0] * len(graph.resources)
    start = [0.0] * n
    end = [0.0] * n
    for i in range(n):
        t = 0.0
        for j in deps[indptr[i]:indptr[i + 1]]:
            e = end[j]
            if e > t:
                t = e
        r = res[i]
        e = t + dur[i]
        if r >= 0:
            f = free[r]
            if f > t:
                t = f
                e = t + dur[i]
            free[r] = e
        start[i] = t
        end[i] = e
    end_a = np.asarray(end)
    return Schedule(start=np.asarray(start), end=end_a,
                    makespan=float(end_a.max()) if n else 0.0, busy_s=busy_by_resource(graph))


def graph_from_lists(duration, resource, deps: list[list[int]], kind, resources: tuple[str, ...],
                     kinds: tuple[str, ...], layer=None, micro_batch=None, traffic=None) -> TaskGraph:
    """Build a TaskGraph from per-task lists (convenient for small hand-made graphs)."""
    n = len(duration)
    indptr = np.zeros(n + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(d) for d in deps])
    flat = [j for d in deps for j in d]
    g = TaskGraph(
        duration=np.asarray(duration, dtype=np.float64),
        resource=np.asarray(resource, dtype=np.int32),
        dep_indptr=indptr,
        dep_index=np.asarray(flat, dtype=np.int32),
        kind=np.asarray(kind, dtype=np.int16),
        layer=np.full(n, -1, np.int32) if layer is None else np.asarray(layer, dtype=np.int32),
        micro_batch=np.zeros(n, np.int32) if micro_batch is None else np.asarray(micro_batch, np.int32),
        traffic=np.full(n, NO_TRAFFIC, np.int32) if traffic is None else np.asarray(traffic, np.int32),
        resources=tuple(resources),
        kinds=tuple(kinds),
    )
    g.validate()
    return g
