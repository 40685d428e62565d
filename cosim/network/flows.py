"""Flows as arrays, and the one small interface every network backend implements.

The network knows nothing of LLMs: it sees endpoints (global GPU indices), bytes and start
times, and returns when each flow's last byte arrives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class FlowBatch:
    """A batch of flows. All arrays have one entry per flow."""

    src: np.ndarray  # int32, global GPU index
    dst: np.ndarray  # int32
    size: np.ndarray  # int64 bytes (> 0)
    start: np.ndarray  # float64 seconds, relative to the batch's time zero
    tag: np.ndarray  # int32, caller's label (pattern, layer, micro-batch ...)

    @classmethod
    def from_arrays(cls, src, dst, size, start=None, tag=None) -> FlowBatch:
        src = np.asarray(src, dtype=np.int32)
        n = src.shape[0]
        return cls(
            src=src,
            dst=np.asarray(dst, dtype=np.int32),
            size=np.asarray(size, dtype=np.int64),
            start=np.zeros(n) if start is None else np.asarray(start, dtype=np.float64),
            tag=np.zeros(n, dtype=np.int32) if tag is None else np.asarray(tag, dtype=np.int32),
        )

    def __len__(self) -> int:
        return int(self.src.shape[0])

    @staticmethod
    def concat(batches: list[FlowBatch]) -> FlowBatch:
        return FlowBatch(*(np.concatenate([getattr(b, f) for b in batches])
                           for f in ("src", "dst", "size", "start", "tag")))


@dataclass(frozen=True)
class FlowResult:
    """Completion time (seconds, same origin as FlowBatch.start) of each flow's last byte."""

    finish: np.ndarray  # float64, one per flow
    stats: dict  # backend facts: events, packet_hops, wall_s, cache hit ...

    @property
    def makespan(self) -> float:
        return float(self.finish.max()) if self.finish.size else 0.0


class InvalidResult(ValueError):
    """A backend returned completion times that cannot be right (NaN, before the start)."""


def check_finish(flows: FlowBatch, finish: np.ndarray, backend: str) -> None:
    """Raise InvalidResult unless every finish time is finite and not before its flow's start."""
    finish = np.asarray(finish, dtype=np.float64)
    if finish.shape != (len(flows),):
        raise InvalidResult(f"{backend} backend returned {finish.shape} finish times for "
                            f"{len(flows)} flows")
    start = np.asarray(flows.start, dtype=np.float64)
    bad = np.nonzero(~np.isfinite(finish) | (finish < start))[0]
    if bad.size:
        k = int(bad[0])
        raise InvalidResult(f"{backend} backend returned finish time {finish[k]!r} for flow {k} "
                            f"starting at {start[k]!r} ({bad.size} such flows); not used, "
                            "not cached")


class NetworkBackend(Protocol):
    """Flows in, per-flow completion times out."""

    name: str

    def simulate(self, flows: FlowBatch) -> FlowResult:
        """Time `flows` on this backend's topology."""
        ...

    def close(self) -> None:
        """Release processes and sockets (no-op for in-process backends)."""
        ...
