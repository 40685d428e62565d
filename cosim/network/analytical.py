"""Flow-level network backend: max-min fair share by progressive filling, event-driven.

Each directed link has capacity line rate x efficiency (FabricGraph.link_capacity_bps).
Between events (a flow starts, a flow ends) every active flow moves at its max-min fair
rate: progressive filling raises all unfrozen flows' rates together until a link saturates,
freezes the flows crossing it, and repeats. A flow's last byte arrives at

    finish = (time its bytes drained at the fair-share rates) + sum of its path's hop
             latencies + sum over hops of frame_bytes / line rate  (store-and-forward fill,
             only when frame_bytes > 0).

Flows take no latency before they start draining: propagation is added once at the end,
which is exact for a single flow (size / rate + latency) and the usual flow-model
approximation under contention.
"""

from __future__ import annotations

import time

import numpy as np

from cosim.network.fabric import FabricGraph
from cosim.network.flows import FlowBatch, FlowResult

# Finishes closer than this relative gap are handled as one event: it merges flows whose
# completions differ only by float rounding (e.g. two equal flows on one link).
_FINISH_RTOL = 1e-9


def validate_flows(flows: FlowBatch, num_gpus: int) -> None:
    """Raise ValueError naming the first bad flow (endpoint, size, start)."""
    n = len(flows)
    for name in ("dst", "size", "start", "tag"):
        if getattr(flows, name).shape != (n,):
            raise ValueError(f"flows.{name}: expected shape ({n},), got {getattr(flows, name).shape}")
    checks = (
        ("src", (flows.src < 0) | (flows.src >= num_gpus), f"outside GPUs 0..{num_gpus - 1}"),
        ("dst", (flows.dst < 0) | (flows.dst >= num_gpus), f"outside GPUs 0..{num_gpus - 1}"),
        ("size", flows.size < 0, "must be >= 0 bytes"),
        ("start", ~np.isfinite(flows.start) | (flows.start < 0), "must be finite and >= 0"),
    )
    for field, bad, reason in checks:
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"flows.{field}[{i}] = {getattr(flows, field)[i]}: {reason}")


def padded_paths(indptr: np.ndarray, link_ids: np.ndarray, pad: int) -> np.ndarray:
    """CSR paths as a (max_len, n) int64 matrix (column i = flow i's links), short paths
    filled with link id `pad`. Column-major so per-flow reductions run over contiguous rows."""
    lens = np.diff(indptr)
    n = lens.shape[0]
    width = int(lens.max()) if n else 0
    out = np.full((width, n), pad, dtype=np.int64)
    col = np.arange(link_ids.shape[0]) - np.repeat(indptr[:-1], lens)
    out[col, np.repeat(np.arange(n), lens)] = link_ids
    return out


def maxmin_rates(paths: np.ndarray, capacity: np.ndarray,
                 rtol: float = 0.0) -> tuple[np.ndarray, int]:
    """Max-min fair rates of flows by progressive filling.

    paths: (width, flows) link ids, padded with id len(capacity)-1, which must be a dummy
    link of infinite capacity. capacity: per link, any rate unit; rates come back in it.
    Returns (rates, number of filling rounds).

    Each round freezes, at once, every link whose fair share (remaining capacity / unfrozen
    flows) is the smallest share on the paths of all its unfrozen flows, and gives each of
    those flows that share. Shares only grow as filling proceeds, so such a link's flows can
    get nothing more elsewhere: the rates equal classic progressive filling (one global
    bottleneck per round) in fewer rounds. rtol > 0 also freezes links whose share is within
    a factor (1 + rtol) of that minimum: every flow still gets at most any link's fair share
    (capacities hold), and at least 1/(1 + rtol) of its max-min rate per round of slack.
    """
    num_links = capacity.shape[0]
    dummy = num_links - 1
    width = paths.shape[0]
    rem = capacity.astype(np.float64).copy()
    rate = np.full(paths.shape[1], np.inf)
    idx = np.arange(paths.shape[1])
    p = paths
    rounds = 0
    slack = 1.0 + max(rtol, 1e-12)
    while idx.size:
        rounds += 1
        flat = p.ravel()
        cnt = np.bincount(flat, minlength=num_links)
        cnt[dummy] = 0
        used = cnt > 0
        share = np.full(num_links, np.inf)
        share[used] = np.maximum(rem[used], 0.0) / cnt[used]
        s = share[p]
        fmin = s.min(axis=0)
        # A link is ready when no flow on it has a (noticeably) smaller share elsewhere.
        not_min = s > fmin * slack
        blocked = np.bincount(flat, weights=not_min.ravel(), minlength=num_links)
        ready = used & (blocked == 0)
        frozen = ready[p].any(axis=0)
        rate[idx[frozen]] = fmin[frozen]
        pf = np.compress(frozen, p, axis=1)
        rem -= np.bincount(pf.ravel(), weights=np.tile(fmin[frozen], width),
                           minlength=num_links)
        keep = ~frozen
        p, idx = np.compress(keep, p, axis=1), idx[keep]
    return rate, rounds


def drain_times(indptr: np.ndarray, link_ids: np.ndarray, size: np.ndarray, start: np.ndarray,
                capacity_Bps: np.ndarray, event_rtol: float = 0.0,
                rate_rtol: float = 0.0) -> tuple[np.ndarray, dict]:
    """Time each flow's bytes have left the network (no latency), event-driven.

    Rates are recomputed (max-min) at every start and finish event. Finishes within
    event_rtol x (time since the first start) of the next one are merged into one event;
    each merged flow keeps its own finish under the current rates, and the others see its
    capacity freed slightly early. This bounds the events by ~ln(t_end/t_first)/event_rtol
    whatever the flow count. rate_rtol is maxmin_rates' rtol. Both 0: exact.
    """
    n = size.shape[0]
    cap = np.append(capacity_Bps, np.inf)  # dummy link for path padding
    paths = padded_paths(indptr, link_ids, pad=cap.shape[0] - 1)
    order = np.argsort(start, kind="stable")
    start_sorted = start[order]
    remaining = size.astype(np.float64).copy()
    finish = np.full(n, np.nan)
    active = np.zeros(n, dtype=bool)
    ptr, events, rounds = 0, 0, 0
    t = float(start_sorted[0]) if n else 0.0
    t_origin = t
    while True:
        nxt = int(np.searchsorted(start_sorted, t, side="right"))
        if nxt > ptr:
            active[order[ptr:nxt]] = True
            ptr = nxt
        act = np.flatnonzero(active)
        if act.size == 0:
            if ptr >= n:
                break
            t = float(start_sorted[ptr])
            continue
        events += 1
        rates, r = maxmin_rates(paths[:, act], cap, rate_rtol)
        rounds += r
        dt_fin = remaining[act] / rates
        dt = float(dt_fin.min())
        if ptr < n:
            dt = min(dt, float(start_sorted[ptr]) - t)
        done = dt_fin <= dt * (1 + _FINISH_RTOL) + event_rtol * (t + dt - t_origin)
        remaining[act] -= rates * dt
        fin = act[done]
        finish[fin] = t + np.maximum(dt_fin[done], dt)
        remaining[fin] = 0.0
        active[fin] = False
        t = t + dt
    return finish, {"events": events, "fill_rounds": rounds}


class AnalyticalBackend:
    """Flow-level max-min fair-share backend over a FabricGraph (in process, numpy)."""

    name = "analytical"

    def __init__(self, graph: FabricGraph, frame_bytes: int = 0, rtol: float = 0.0):
        self.graph = graph
        self.rtol = float(rtol)
        self.frame_bytes = int(frame_bytes)
        self._capacity_Bps = graph.link_capacity_bps / 8.0
        # Per-hop fixed delay: propagation + switch, plus one frame's store-and-forward.
        self._hop_delay_s = graph.link_latency_s + self.frame_bytes * 8.0 / graph.link_bps

    def simulate(self, flows: FlowBatch) -> FlowResult:
        """Completion time of each flow's last byte (seconds, origin of flows.start)."""
        t0 = time.perf_counter()
        n = len(flows)
        if n == 0:
            return FlowResult(finish=np.zeros(0), stats={"backend": self.name, "events": 0,
                                                         "wall_s": 0.0})
        validate_flows(flows, self.graph.num_gpus)
        # Flows that need no network (nothing to send, or to itself) finish at their start,
        # as in the ns-3 backend; the rest share the fabric.
        finish = np.array(flows.start, dtype=np.float64)
        net = np.nonzero((flows.size > 0) & (flows.src != flows.dst))[0]
        st: dict = {"events": 0}
        if net.size:
            if net.size < n:
                flows = FlowBatch(*(getattr(flows, f)[net]
                                    for f in ("src", "dst", "size", "start", "tag")))
            indptr, ids = self.graph.routes(flows.src, flows.dst)
            drain, st = drain_times(indptr, ids, flows.size, flows.start, self._capacity_Bps,
                                    event_rtol=self.rtol, rate_rtol=self.rtol)
            hop = self._hop_delay_s[ids]
            latency = np.add.reduceat(hop, indptr[:-1]) if ids.size else np.zeros(net.size)
            finish[net] = drain + latency
        st.update(backend=self.name, flows=n, rtol=self.rtol, wall_s=time.perf_counter() - t0)
        return FlowResult(finish=finish, stats=st)

    def close(self) -> None:
        """Nothing to release."""
