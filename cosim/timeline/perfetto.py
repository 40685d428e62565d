"""Chrome trace-event JSON (opens in the Perfetto UI and chrome://tracing) of iteration timelines.

One process per serving instance or GPU group, one thread (track) per resource: compute
streams of each group, communication channels, and the fabric's link classes (NVLink, NIC,
fabric). Complete events ("ph": "X") with ts/dur in microseconds; process and thread names
as metadata events ("ph": "M"). Events on one track never overlap: where tasks or flows do
(unserialised transfers, concurrent flows), they are spread over lanes "<track> #i".
Format: https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU
"""

from __future__ import annotations

import heapq
import json
from pathlib import Path

import numpy as np

from cosim.network.flows import FlowBatch
from cosim.timeline.graph import Schedule, TaskGraph

_US = 1e6
TRANSFER_KINDS = frozenset({"a2f", "f2a", "dispatch", "combine", "kv_transfer", "allreduce"})


def _lanes(start: np.ndarray, end: np.ndarray, tol_s: float = 1e-9) -> np.ndarray:
    """Interval partitioning: lane per interval so that no two in one lane overlap.

    Overlaps up to `tol_s` (float noise; the trace resolves 1 ns) do not count.
    """
    order = np.argsort(start, kind="stable")
    lane = np.zeros(len(start), dtype=np.int64)
    heap: list[tuple[float, int]] = []  # (free_at, lane)
    n_lanes = 0
    for i in order.tolist():
        s = float(start[i])
        if heap and heap[0][0] <= s + tol_s:
            _, ln = heapq.heappop(heap)
        else:
            ln = n_lanes
            n_lanes += 1
        lane[i] = ln
        heapq.heappush(heap, (float(end[i]), ln))
    return lane


class TraceBuilder:
    """Collects trace events; `write(path)` emits timeline.json."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self._pids: dict[str, int] = {}
        self._tids: dict[tuple[int, str], int] = {}

    def pid(self, process: str) -> int:
        """Process id for a named process (an instance or GPU group), created on first use."""
        if process not in self._pids:
            pid = len(self._pids) + 1
            self._pids[process] = pid
            self.events.append({"name": "process_name", "ph": "M", "pid": pid, "tid": 0,
                                "args": {"name": process}})
            self.events.append({"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0,
                                "args": {"sort_index": pid}})
        return self._pids[process]

    def tid(self, process: str, track: str) -> tuple[int, int]:
        """(pid, tid) for a named track of a process, created on first use."""
        pid = self.pid(process)
        key = (pid, track)
        if key not in self._tids:
            tid = sum(1 for p, _ in self._tids if p == pid) + 1
            self._tids[key] = tid
            self.events.append({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                                "args": {"name": track}})
            self.events.append({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid,
                                "args": {"sort_index": tid}})
        return pid, self._tids[key]

    def span(self, process: str, track: str, name: str, start_s: float, end_s: float,
             args: dict | None = None, cat: str = "compute") -> None:
        """One complete event on a track."""
        pid, tid = self.tid(process, track)
        ev = {"name": name, "cat": cat, "ph": "X", "pid": pid, "tid": tid,
              "ts": round(start_s * _US, 3), "dur": round(max(end_s - start_s, 0.0) * _US, 3)}
        if args:
            ev["args"] = args
        self.events.append(ev)

    def spans(self, process: str, track: str, names: list[str], start_s: np.ndarray,
              end_s: np.ndarray, args: list[dict] | None = None, cat: str = "compute") -> None:
        """Many events on one track; overlapping ones go to extra lanes of the track."""
        if len(names) == 0:
            return
        lane = _lanes(np.asarray(start_s), np.asarray(end_s))
        for i, nm in enumerate(names):
            tr = track if lane[i] == 0 else f"{track} #{lane[i]}"
            self.span(process, tr, nm, float(start_s[i]), float(end_s[i]),
                      None if args is None else args[i], cat)

    def add_schedule(self, process: str, graph: TaskGraph, sched: Schedule, *, origin_s: float = 0.0,
                     iteration: int | None = None) -> None:
        """Every non-empty task of a scheduled graph, on the track of its resource.

        Tasks without a resource go to a track named after their kind.
        """
        keep = np.flatnonzero(graph.duration > 0)
        if len(keep) == 0:
            return
        res = graph.resource[keep]
        kinds = graph.kind[keep]
        track_of = np.where(res >= 0, res, len(graph.resources) + kinds)
        names_all = list(graph.resources) + list(graph.kinds)
        for tr in np.unique(track_of).tolist():
            sel = keep[track_of == tr]
            names = [f"{graph.kinds[graph.kind[i]]} L{graph.layer[i]} mb{graph.micro_batch[i]}"
                     for i in sel.tolist()]
            args = [{"layer": int(graph.layer[i]), "micro_batch": int(graph.micro_batch[i]),
                     **({"iteration": iteration} if iteration is not None else {})}
                    for i in sel.tolist()]
            cat = "transfer" if graph.kinds[graph.kind[sel[0]]] in TRANSFER_KINDS else "compute"
            self.spans(process, names_all[tr], names, origin_s + sched.start[sel],
                       origin_s + sched.end[sel], args, cat)

    def add_flows(self, process: str, flows: FlowBatch, finish: np.ndarray, link_class: np.ndarray,
                  class_names: dict[int, str], *, origin_s: float = 0.0, group: np.ndarray | None = None,
                  group_names: dict[int, str] | None = None) -> None:
        """Flows on one track per link class.

        With `group` (e.g. the task each flow belongs to) the flows of a group on one link
        class become one event spanning their first start to last finish, with flow count and
        bytes in args: that keeps a 30k-flow iteration readable. Without it, one event per flow.
        """
        if len(flows) == 0:
            return
        for cls in np.unique(link_class).tolist():
            on = np.flatnonzero(link_class == cls)
            track = f"fabric: {class_names.get(cls, str(cls))}"
            if group is None:
                names = [f"{int(flows.src[i])}->{int(flows.dst[i])}" for i in on.tolist()]
                args = [{"bytes": int(flows.size[i]), "tag": int(flows.tag[i])} for i in on.tolist()]
                self.spans(process, track, names, origin_s + flows.start[on], origin_s + finish[on],
                           args, cat="flow")
                continue
            g = np.asarray(group)[on]
            uniq, inv = np.unique(g, return_inverse=True)
            st = np.full(len(uniq), np.inf)
            en = np.full(len(uniq), -np.inf)
            np.minimum.at(st, inv, flows.start[on])
            np.maximum.at(en, inv, finish[on])
            nbytes = np.bincount(inv, weights=flows.size[on].astype(np.float64), minlength=len(uniq))
            count = np.bincount(inv, minlength=len(uniq))
            names = [(group_names or {}).get(int(u), f"group {int(u)}") for u in uniq.tolist()]
            args = [{"flows": int(count[j]), "bytes": int(nbytes[j])} for j in range(len(uniq))]
            self.spans(process, track, names, origin_s + st, origin_s + en, args, cat="flow")

    def add_iterations(self, process: str, rows, window: tuple[int, int], track: str = "iteration") -> None:
        """Whole iterations of an instance without a task graph: one event per iteration.

        rows: sequences (start_s, duration_s, compute_s, comm_s, decode_requests,
        prefill_tokens, ...) as cosim.serving.instance keeps them; window: [first, last).
        """
        for idx in range(max(window[0], 0), min(window[1], len(rows))):
            start, dur, comp, comm, n_dec, p_tok = rows[idx][:6]
            self.span(process, track, f"iteration {idx}", float(start), float(start + dur),
                      {"decode_requests": int(n_dec), "prefill_tokens": int(p_tok),
                       "compute_ms": float(comp) * 1e3, "comm_ms": float(comm) * 1e3})

    def to_dict(self) -> dict:
        return {"traceEvents": self.events, "displayTimeUnit": "ms"}

    def write(self, path: str | Path) -> Path:
        """Write the trace as JSON (timeline.json); returns the path."""
        path = Path(path)
        path.write_text(json.dumps(self.to_dict(), separators=(",", ":")))
        return path


def flow_link_classes(fabric, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Highest link class on each flow's path (NVLINK < NIC < FABRIC): where a flow is slowest to leave."""
    indptr, links = fabric.routes(np.asarray(src), np.asarray(dst))
    indptr = np.asarray(indptr, dtype=np.int64)
    cls = np.asarray(fabric.link_class, dtype=np.int64)[np.asarray(links, dtype=np.int64)]
    out = np.zeros(len(indptr) - 1, dtype=np.int64)
    nonempty = indptr[1:] > indptr[:-1]
    if nonempty.any():
        out[nonempty] = np.maximum.reduceat(cls, indptr[:-1][nonempty])
    return out
