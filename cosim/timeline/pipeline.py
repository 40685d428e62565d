"""Layered pipelines: layer x stage x micro-batch task graphs, their fast schedule, closed forms.

An AFD decode iteration is, per MoE layer and micro-batch, attention -> A2F -> FFN -> F2A;
an EP layer is attention -> dispatch -> experts -> combine (with two-batch overlap when
m = 2). Micro-batch k of layer l+1 starts after its own last stage of layer l. Each stage
runs on a resource; tasks are issued layer by layer, stage by stage, micro-batch by
micro-batch, which is the order of a C-contiguous [L, S, m] array.

The closed form (docs/deployments/afd.md derives it): with identical micro-batches,
per-micro-batch stage times t_i on distinct in-order resources and S = sum t_i,
t_max = max t_i, an iteration of L layers and m micro-batches takes

    T = max( S + (L*m - 1) * t_max ,  L*S + (m - 1) * t_max ).

The first term holds when m * t_max >= S (the busiest resource never idles after the
pipeline fills); the second when a micro-batch's round trip S is longer than m * t_max
(the pipeline is latency bound). With free communication it is L*m*max(ta, tf) + min(ta, tf)
for m >= 2. Communication stays hidden (the per-layer period is set by compute alone) while
m * max(ta, tf) >= ta + tf + t_a2f + t_f2a and no transfer outlasts the slower compute
stage; with ta = tf = t_comp and t_a2f = t_f2a = t_comm that is MegaScale-Infer's
m >= 2 * (1 + t_comm / t_comp) (Zhu et al., arXiv 2504.02263, section 4.2).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cosim.timeline.graph import NO_RESOURCE, NO_TRAFFIC, Schedule, TaskGraph


@dataclass(frozen=True)
class StageSpec:
    """One stage of a layer: what it is (kind), where it runs, whether it moves bytes.

    resource None: the stage holds no resource (its tasks overlap freely; used for transfers
    whose contention a network backend decides).
    """

    kind: str
    resource: str | None
    transfer: bool = False


AFD_STAGES = (
    StageSpec("attention", "attention"),
    StageSpec("a2f", "a2f", transfer=True),
    StageSpec("ffn", "ffn"),
    StageSpec("f2a", "f2a", transfer=True),
)
# EP inside one GPU group: attention and experts share the GPUs' compute stream, dispatch and
# combine share one communication stream (DeepEP / SGLang two-batch overlap issue them so).
EP_STAGES = (
    StageSpec("attention", "gpu"),
    StageSpec("dispatch", "net", transfer=True),
    StageSpec("experts", "gpu"),
    StageSpec("combine", "net", transfer=True),
)


@dataclass(frozen=True)
class LayeredPipeline:
    """Durations [L, S, m] of the stages of every layer and micro-batch, and their traffic keys."""

    stages: tuple[StageSpec, ...]
    durations: np.ndarray  # float64 [L, S, m] seconds
    traffic: np.ndarray  # int32 [L, S, m]: traffic key of a transfer task, NO_TRAFFIC otherwise
    _graph: list = field(default_factory=list, repr=False, compare=False)  # memo

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.durations.shape  # type: ignore[return-value]

    @property
    def resources(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s.resource for s in self.stages if s.resource is not None))

    def stage_resource_index(self) -> np.ndarray:
        names = self.resources
        return np.array([NO_RESOURCE if s.resource is None else names.index(s.resource)
                         for s in self.stages], dtype=np.int32)

    def with_stages(self, stages: tuple[StageSpec, ...]) -> LayeredPipeline:
        """The same durations on other stage placements (e.g. transfers freed of their channel)."""
        if len(stages) != len(self.stages):
            raise ValueError(f"stages: expected {len(self.stages)}, got {len(stages)}")
        return LayeredPipeline(tuple(stages), self.durations, self.traffic)

    def graph(self) -> TaskGraph:
        """The pipeline as a TaskGraph (task index = C-order index into [L, S, m])."""
        if self._graph:
            return self._graph[0]
        L, S, m = self.shape
        n = L * S * m
        idx = np.arange(n, dtype=np.int64).reshape(L, S, m)
        pred = np.full((L, S, m), -1, dtype=np.int64)
        pred[:, 1:, :] = idx[:, :-1, :]
        pred[1:, 0, :] = idx[:-1, -1, :]
        pred = pred.ravel()
        has = pred >= 0
        indptr = np.zeros(n + 1, dtype=np.int64)
        indptr[1:] = np.cumsum(has)
        d = self.durations.ravel()
        res = np.broadcast_to(self.stage_resource_index()[None, :, None], (L, S, m)).ravel()
        # A zero-length task holds no resource: a dense layer's empty FFN stage must not wait
        # for the FFN group.
        res = np.where(d > 0, res, NO_RESOURCE).astype(np.int32)
        kinds = tuple(dict.fromkeys(s.kind for s in self.stages))
        kind = np.array([kinds.index(s.kind) for s in self.stages], dtype=np.int16)
        g = TaskGraph(
            duration=d.astype(np.float64),
            resource=res,
            dep_indptr=indptr,
            dep_index=pred[has].astype(np.int32),
            kind=np.broadcast_to(kind[None, :, None], (L, S, m)).ravel().copy(),
            layer=np.broadcast_to(np.arange(L, dtype=np.int32)[:, None, None], (L, S, m)).ravel().copy(),
            micro_batch=np.broadcast_to(np.arange(m, dtype=np.int32)[None, None, :], (L, S, m)).ravel().copy(),
            traffic=self.traffic.ravel().astype(np.int32),
            resources=self.resources,
            kinds=kinds,
        )
        self._graph.append(g)
        return g

    def with_durations(self, durations: np.ndarray) -> LayeredPipeline:
        d = np.asarray(durations, dtype=np.float64).reshape(self.shape)
        return LayeredPipeline(self.stages, d, self.traffic)

    def transfer_mask(self) -> np.ndarray:
        """Boolean [L, S, m]: tasks of transfer stages."""
        t = np.array([s.transfer for s in self.stages])
        return np.broadcast_to(t[None, :, None], self.shape)


def layered_pipeline(stages: tuple[StageSpec, ...], durations, traffic=None) -> LayeredPipeline:
    """Build a LayeredPipeline; `durations` is [L, S, m] (or broadcastable from [L, S, 1])."""
    d = np.asarray(durations, dtype=np.float64)
    if d.ndim != 3 or d.shape[1] != len(stages):
        raise ValueError(f"durations: expected [layers, {len(stages)} stages, micro_batches], got {d.shape}")
    if not np.all(np.isfinite(d)) or np.any(d < 0):
        raise ValueError("durations: every stage time must be finite and >= 0")
    t = np.full(d.shape, NO_TRAFFIC, np.int32) if traffic is None else \
        np.broadcast_to(np.asarray(traffic, dtype=np.int32), d.shape).copy()
    return LayeredPipeline(tuple(stages), np.ascontiguousarray(d), t)


def stage_block(num_layers: int, micro_batches: int, *per_stage) -> np.ndarray:
    """Stack per-stage times (scalars or arrays broadcastable to [L, m]) into [L, S, m]."""
    return np.stack([np.broadcast_to(np.asarray(x, dtype=np.float64), (num_layers, micro_batches))
                     for x in per_stage], axis=1)


def afd_pipeline(num_layers: int, micro_batches: int, t_attention, t_a2f, t_ffn, t_f2a,
                 traffic_a2f=NO_TRAFFIC, traffic_f2a=NO_TRAFFIC) -> LayeredPipeline:
    """AFD layer pipeline; each time is a scalar or broadcastable to [layers, micro_batches].

    A dense layer (no experts) is a layer whose a2f, ffn and f2a times are 0 and whose
    attention time includes its dense MLP, which runs on the attention GPUs.
    """
    d = stage_block(num_layers, micro_batches, t_attention, t_a2f, t_ffn, t_f2a)
    tr = np.full(d.shape, NO_TRAFFIC, np.int32)
    tr[:, 1, :] = np.broadcast_to(traffic_a2f, (num_layers, micro_batches))
    tr[:, 3, :] = np.broadcast_to(traffic_f2a, (num_layers, micro_batches))
    return layered_pipeline(AFD_STAGES, d, tr)


def ep_pipeline(num_layers: int, micro_batches: int, t_attention, t_dispatch, t_experts, t_combine,
                traffic_dispatch=NO_TRAFFIC, traffic_combine=NO_TRAFFIC) -> LayeredPipeline:
    """EP layer pipeline in one GPU group; micro_batches=2 is two-batch overlap (TBO)."""
    d = stage_block(num_layers, micro_batches, t_attention, t_dispatch, t_experts, t_combine)
    tr = np.full(d.shape, NO_TRAFFIC, np.int32)
    tr[:, 1, :] = np.broadcast_to(traffic_dispatch, (num_layers, micro_batches))
    tr[:, 3, :] = np.broadcast_to(traffic_combine, (num_layers, micro_batches))
    return layered_pipeline(EP_STAGES, d, tr)


def _steady_shift(state: list[float], prev_state: list[float]) -> float | None:
    """The common shift c when every entry of `state` is `prev_state`'s plus c (to 1e-12
    relative): the pipeline has reached its steady state, later identical layers repeat it."""
    c = state[0] - prev_state[0]
    tol = 1e-12 * max(1.0, abs(state[-1]))
    if all(abs(x - y - c) <= tol for x, y in zip(state, prev_state, strict=True)):
        return c
    return None


def schedule_pipeline(p: LayeredPipeline) -> Schedule:
    """Schedule a layered pipeline; same result as graph.schedule(p.graph()), faster.

    A layer is a max-plus-linear map of the state (each micro-batch's ready time, each used
    resource's free time): shifting the state by c shifts every task of the layer by c. So
    once two consecutive layers of a run of identical layers leave the state shifted by one
    constant c, every further layer of the run is the previous one plus c, exactly; the
    schedule of a 61-layer model then costs a few layers of work.
    """
    L, S, m = p.shape
    d = p.durations
    stage_res = p.stage_resource_index().tolist()
    # run_end[l]: first layer after l whose durations differ from layer l's
    if L > 1:
        change = np.flatnonzero(np.any(d[1:] != d[:-1], axis=(1, 2))) + 1
    else:
        change = np.zeros(0, dtype=np.int64)
    bounds = change.tolist() + [L]
    start = np.empty((L, S, m))
    end = np.empty((L, S, m))
    free = [0.0] * len(p.resources)
    ready = [0.0] * m
    layer = 0
    for run_end in bounds:
        prev_state: list[float] | None = None
        while layer < run_end:
            dur_l = d[layer].tolist()
            row_s = []
            row_e = []
            used = set()
            for s in range(S):
                r = stage_res[s]
                dur = dur_l[s]
                st = []
                en = []
                for k in range(m):
                    t = ready[k]
                    du = dur[k]
                    if du > 0 and r >= 0:
                        used.add(r)
                        f = free[r]
                        if f > t:
                            t = f
                        free[r] = t + du
                    e = t + du
                    st.append(t)
                    en.append(e)
                    ready[k] = e
                row_s.append(st)
                row_e.append(en)
            start[layer] = row_s
            end[layer] = row_e
            used_l = sorted(used)
            state = ready + [free[r] for r in used_l]
            layer += 1
            if prev_state is not None and layer < run_end:
                c = _steady_shift(state, prev_state)
                if c is not None:
                    n_more = run_end - layer
                    j = np.arange(1, n_more + 1, dtype=np.float64)[:, None, None] * c
                    start[layer:run_end] = start[layer - 1][None] + j
                    end[layer:run_end] = end[layer - 1][None] + j
                    ready = [x + n_more * c for x in ready]
                    for r in used_l:
                        free[r] += n_more * c
                    layer = run_end
                    break
            prev_state = state
    per_stage = p.durations.sum(axis=(0, 2))
    busy = dict.fromkeys(p.resources, 0.0)
    for s, spec in enumerate(p.stages):
        if spec.resource is not None:
            busy[spec.resource] += float(per_stage[s])
    mk = float(end.max()) if end.size else 0.0
    return Schedule(start=start.ravel(), end=end.ravel(), makespan=mk, busy_s=busy)


def chain_makespan(num_layers: int, stage_times: list[list[float]]) -> float:
    """Makespan of `num_layers` identical layers, each stage on its own in-order resource.

    stage_times[s][k]: stage s of micro-batch k (the same in every layer). The value is
    schedule_pipeline(layered_pipeline(stages, ...)).makespan bit for bit (same recurrence,
    same float operations, same shift detection), without building the [L, S, m] arrays:
    the AFD iteration's hot path. Every task lies on its micro-batch's chain, so the
    makespan is the latest micro-batch's last end.
    """
    L = int(num_layers)
    if L <= 0:
        return 0.0
    m = len(stage_times[0])
    if m == 3:  # AFD's usual case: every part has work in every stage (nothing to leave out)
        for d0, d1, d2 in stage_times:
            if not (d0 > 0 and d1 > 0 and d2 > 0):
                break
        else:
            return _chain_makespan_3(L, stage_times)
    # A stage with no work anywhere holds no resource and moves no micro-batch (t + 0.0 is
    # t): leaving it out changes no float.
    kept = [d for d in stage_times if d and (d[0] > 0 or any(x > 0 for x in d))]
    if kept:
        return _chain_makespan_held(L, kept)
    stage_times = [stage_times[0]]
    S = len(stage_times)
    free = [0.0] * S
    ready = [0.0] * m
    prev_state: list[float] | None = None
    layer = 0
    while layer < L:
        used = []
        for s in range(S):
            dur = stage_times[s]
            hold = False
            for k in range(m):
                t = ready[k]
                du = dur[k]
                if du > 0:
                    hold = True
                    f = free[s]
                    if f > t:
                        t = f
                    free[s] = t + du
                ready[k] = t + du
            if hold:
                used.append(s)
        state = ready + [free[s] for s in used]
        layer += 1
        if prev_state is not None and layer < L:
            c = _steady_shift(state, prev_state)
            if c is not None:
                n_more = L - layer
                return max(x + float(n_more) * c for x in ready)
        prev_state = state
    return max(ready)


def _chain_makespan_held(L: int, stage_times: list[list[float]]) -> float:
    """chain_makespan where every stage has work in some micro-batch (so every stage holds
    its resource in every layer and the state is ready + free): the same float operations
    in the same order, with the state kept in locals."""
    m = len(stage_times[0])
    if m == 3:
        for d0, d1, d2 in stage_times:
            if not (d0 > 0 and d1 > 0 and d2 > 0):
                break
        else:
            return _chain_makespan_3(L, stage_times)
    S = len(stage_times)
    free = [0.0] * S
    ready = [0.0] * m
    stages = [(s, stage_times[s]) for s in range(S)]
    ks = range(m)
    prev_r: list[float] | None = None
    prev_f: list[float] = free
    layer = 0
    while layer < L:
        for s, dur in stages:
            f = free[s]
            for k in ks:
                t = ready[k]
                du = dur[k]
                if du > 0:
                    if f > t:
                        t = f
                    f = t + du
                    ready[k] = f
                else:
                    ready[k] = t + du
            free[s] = f
        layer += 1
        if prev_r is not None and layer < L:
            # _steady_shift(ready + free, prev_ready + prev_free), inlined
            c = ready[0] - prev_r[0]
            tol = 1e-12 * max(1.0, abs(free[-1]))
            for x, y in zip(ready, prev_r, strict=True):
                if not abs(x - y - c) <= tol:
                    break
            else:
                for x, y in zip(free, prev_f, strict=True):
                    if not abs(x - y - c) <= tol:
                        break
                else:
                    n_more = float(L - layer)
                    return max(x + n_more * c for x in ready)
        prev_r = ready[:]
        prev_f = free[:]
    return max(ready)


def _chain_makespan_3(L: int, stage_times: list[list[float]]) -> float:
    """_chain_makespan_held for 3 micro-batches, every one with work in every stage (AFD's
    usual case): the micro-batch loop unrolled, the same float operations in the same order."""
    r0 = r1 = r2 = 0.0
    free = [0.0] * len(stage_times)
    stages = list(enumerate(stage_times))
    p0 = p1 = p2 = 0.0
    prev_f = free
    layer = 0
    while layer < L:
        for s, (d0, d1, d2) in stages:
            f = free[s]
            t = r0
            if f > t:
                t = f
            r0 = f = t + d0
            t = r1
            if f > t:
                t = f
            r1 = f = t + d1
            t = r2
            if f > t:
                t = f
            r2 = f = t + d2
            free[s] = f
        layer += 1
        if layer > 1 and layer < L:
            # _steady_shift(ready + free, prev_ready + prev_free), inlined
            c = r0 - p0
            tol = 1e-12 * max(1.0, abs(free[-1]))
            if abs(r0 - p0 - c) <= tol and abs(r1 - p1 - c) <= tol and abs(r2 - p2 - c) <= tol:
                for x, y in zip(free, prev_f, strict=True):
                    if not abs(x - y - c) <= tol:
                        break
                else:
                    n_more = float(L - layer)
                    return max(r0 + n_more * c, r1 + n_more * c, r2 + n_more * c)
        p0, p1, p2 = r0, r1, r2
        prev_f = free[:]
    return max(r0, r1, r2)


def shared_chain_makespan(num_layers: int, stage_times: list[list[float]],
                          stage_resource: list[int]) -> float:
    """chain_makespan where stages may share an in-order resource (stage_resource[s]).

    The value is schedule_pipeline(layered_pipeline(stages, ...)).makespan bit for bit for
    stages placed on those resources (same recurrence, same float operations, same shift
    detection): the hot path of two-batch overlap, whose attention and experts share the
    GPUs' compute stream and whose dispatch and combine share the communication stream
    (EP_STAGES).
    """
    L = int(num_layers)
    if L <= 0:
        return 0.0
    m = len(stage_times[0])
    keep = [s for s, d in enumerate(stage_times) if any(x > 0 for x in d)] or [0]
    times = [stage_times[s] for s in keep]
    res = [int(stage_resource[s]) for s in keep]
    free = [0.0] * (max(res) + 1)
    ready = [0.0] * m
    prev_state: list[float] | None = None
    layer = 0
    while layer < L:
        used = set()
        for dur, r in zip(times, res, strict=True):
            for k in range(m):
                t = ready[k]
                du = dur[k]
                if du > 0:
                    used.add(r)
                    f = free[r]
                    if f > t:
                        t = f
                    free[r] = t + du
                ready[k] = t + du
        state = ready + [free[r] for r in sorted(used)]
        layer += 1
        if prev_state is not None and layer < L:
            c = _steady_shift(state, prev_state)
            if c is not None:
                n_more = L - layer
                return max(x + float(n_more) * c for x in ready)
        prev_state = state
    return max(ready)


def pipeline_time(num_layers: int, micro_batches: int, stage_times) -> float:
    """Closed-form iteration time of identical layers and micro-batches, one resource per stage.

    `stage_times` are the per-micro-batch times of the stages of one layer, each stage on its
    own in-order resource. T = max(S + (L*m - 1) * t_max, L*S + (m - 1) * t_max).
    """
    t = [float(x) for x in stage_times]
    if num_layers < 1 or micro_batches < 1:
        raise ValueError("num_layers and micro_batches must be >= 1")
    s, tmax = sum(t), max(t)
    L, m = num_layers, micro_batches
    return max(s + (L * m - 1) * tmax, L * s + (m - 1) * tmax)


def afd_iteration_time(num_layers: int, micro_batches: int, t_attention: float, t_ffn: float,
                       t_a2f: float = 0.0, t_f2a: float = 0.0) -> float:
    """Closed-form AFD decode iteration time (MoE layers only, identical micro-batches)."""
    return pipeline_time(num_layers, micro_batches, (t_attention, t_a2f, t_ffn, t_f2a))


def afd_comm_hidden(micro_batches: int, t_attention: float, t_ffn: float, t_a2f: float,
                    t_f2a: float) -> bool:
    """True when the per-layer period is set by compute alone (communication hidden)."""
    tc = max(t_attention, t_ffn)
    slack = 1e-12 * tc  # times built as sums of decimals must not miss the boundary by rounding
    return (micro_batches * tc >= t_attention + t_ffn + t_a2f + t_f2a - micro_batches * slack
            and max(t_a2f, t_f2a) <= tc + slack)


def afd_exposed_comm(num_layers: int, micro_batches: int, t_attention: float, t_ffn: float,
                     t_a2f: float, t_f2a: float) -> float:
    """Seconds the iteration is longer than with free communication (closed form).

    While communication is hidden this is only the pipeline fill and drain, t_a2f + t_f2a
    (the first micro-batch's first A2F and the last one's last F2A cannot overlap anything).
    """
    return (afd_iteration_time(num_layers, micro_batches, t_attention, t_ffn, t_a2f, t_f2a)
            - afd_iteration_time(num_layers, micro_batches, t_attention, t_ffn))


def megascale_min_micro_batches(t_comm: float, t_comp: float) -> float:
    """MegaScale-Infer's bound m >= 2 (1 + t_comm / t_comp) for balanced attention and FFN."""
    return 2.0 * (1.0 + t_comm / t_comp)
