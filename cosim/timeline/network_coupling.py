"""Transfer durations of a layered pipeline from a network backend: per phase, or per iteration.

`phase` mode: every distinct traffic pattern (a FlowBatch, indexed by the pipeline's traffic
keys) is simulated alone, once; all transfer tasks that move it (every layer, every
micro-batch with the same token count) share the result. Fast, and blind to phases that
overlap in time.

`iteration` mode: all flows of the iteration go to the backend as one batch, each transfer
task's flows offset by the start time the timeline gave that task, so concurrent phases
(A2F of one micro-batch with F2A of another, background KV transfers with EP traffic)
contend on shared links. The new completion times give new transfer durations, the timeline
is rescheduled, and the two alternate until every transfer's duration agrees with the
network's answer within `tol` (relative; a fixed point), or the residual stalls while the
iteration time moves by less than `tol` between rounds, or `max_rounds` is reached; the result keeps each round's
residual. A residual that does not halve from one round to the next halves the update step
(under-relaxation, down to 1/4), which damps the oscillation of transfers free to overlap. docs/timeline.md records how
many rounds examples take.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cosim.network.flows import FlowBatch, FlowResult, NetworkBackend
from cosim.timeline.graph import NO_TRAFFIC, Schedule
from cosim.timeline.pipeline import LayeredPipeline, StageSpec, schedule_pipeline

MODES = ("phase", "iteration")


@dataclass(frozen=True)
class CoupledSchedule:
    """A pipeline whose transfer durations came from a network backend, and its schedule."""

    pipeline: LayeredPipeline  # with the final transfer durations
    schedule: Schedule
    mode: str
    rounds: int  # backend calls on the whole iteration (0 in phase mode)
    converged: bool
    makespans: tuple[float, ...]  # iteration time after the phase solve and after each round
    residuals: tuple[float, ...] = ()  # per round: max relative |network - timeline| duration
    flows: FlowBatch | None = None  # iteration mode: the last batch sent (starts in iteration time)
    flow_result: FlowResult | None = None
    flow_task: np.ndarray | None = None  # task index of each flow of `flows` (-1: background)
    background_finish: np.ndarray | None = None  # completion of the background flows


def phase_durations(traffic: Sequence[FlowBatch], backend: NetworkBackend,
                    keys: np.ndarray | None = None) -> np.ndarray:
    """Time each traffic pattern alone: makespan of its flows, one backend call per pattern.

    Only the keys in `keys` (default: all) are simulated; others are NaN.
    """
    out = np.full(len(traffic), np.nan)
    wanted = range(len(traffic)) if keys is None else np.unique(keys[keys >= 0]).tolist()
    for k in wanted:
        b = traffic[k]
        out[k] = backend.simulate(b).makespan if len(b) else 0.0
    return out


def _transfer_tasks(p: LayeredPipeline) -> tuple[np.ndarray, np.ndarray]:
    """Flat indices and traffic keys of the transfer tasks that have a traffic pattern."""
    tr = p.traffic.ravel()
    idx = np.flatnonzero(p.transfer_mask().ravel() & (tr != NO_TRAFFIC))
    return idx, tr[idx]


def _iteration_batch(traffic: Sequence[FlowBatch], task_idx: np.ndarray, task_key: np.ndarray,
                     task_start: np.ndarray, background: FlowBatch | None):
    """Concatenate every task's flows, shifted to the task's start; flows ordered by task."""
    sizes = np.array([len(b) for b in traffic], dtype=np.int64)
    key_off = np.zeros(len(traffic) + 1, dtype=np.int64)
    key_off[1:] = np.cumsum(sizes)
    cat = FlowBatch.concat(list(traffic)) if len(traffic) else None
    n_per_task = sizes[task_key]
    task_off = np.zeros(len(task_idx) + 1, dtype=np.int64)
    task_off[1:] = np.cumsum(n_per_task)
    total = int(task_off[-1])
    owner = np.repeat(np.arange(len(task_idx)), n_per_task)
    src_idx = key_off[task_key][owner] + (np.arange(total) - task_off[owner])
    parts = []
    if total:
        parts.append(FlowBatch(src=cat.src[src_idx], dst=cat.dst[src_idx], size=cat.size[src_idx],
                               start=cat.start[src_idx] + task_start[owner],
                               tag=task_idx[owner].astype(np.int32)))
    if background is not None and len(background):
        parts.append(FlowBatch(background.src, background.dst, background.size, background.start,
                               np.full(len(background), -1, np.int32)))
    batch = FlowBatch.concat(parts) if parts else FlowBatch.from_arrays([], [], [])
    return batch, task_off, total


def time_transfers(p: LayeredPipeline, traffic: Sequence[FlowBatch], backend: NetworkBackend, *,
                   mode: str = "phase", max_rounds: int = 12, tol: float = 1e-3,
                   serialize_transfers: bool = True,
                   background: FlowBatch | None = None) -> CoupledSchedule:
    """Fill the transfer durations of `p` from `backend` and schedule it.

    traffic[k] is the FlowBatch of traffic key k with start times relative to the start of
    a task that moves it. serialize_transfers keeps a transfer stage's tasks in order on its
    channel (one communication stream); False lets them overlap and contend in the backend
    (iteration mode only). `background` flows (start times in iteration time) join the
    iteration batch and contend with it.
    """
    if mode not in MODES:
        raise ValueError(f"network.mode: expected one of {MODES}, got {mode!r}")
    task_idx, task_key = _transfer_tasks(p)
    d = p.durations.ravel().copy()
    if len(task_idx):
        per_key = phase_durations(traffic, backend, task_key)
        d[task_idx] = per_key[task_key]
    pipe = p.with_durations(d)
    sched = schedule_pipeline(pipe)
    makespans = [sched.makespan]
    if mode == "phase" or (len(task_idx) == 0 and background is None):
        return CoupledSchedule(pipe, sched, mode, 0, True, tuple(makespans))
    residuals: list[float] = []
    if not serialize_transfers:
        pipe = pipe.with_stages(tuple(StageSpec(s.kind, None if s.transfer else s.resource, s.transfer)
                                      for s in pipe.stages))
        sched = schedule_pipeline(pipe)
    converged = False
    rounds = 0
    relax = 1.0  # under-relaxation factor; halved when the fixed-point iteration oscillates
    last_residual = np.inf
    batch = result = None
    task_off = np.zeros(1, dtype=np.int64)
    total = 0
    while rounds < max_rounds:
        batch, task_off, total = _iteration_batch(traffic, task_idx, task_key, sched.start[task_idx],
                                                  background)
        result = backend.simulate(batch)
        rounds += 1
        d = pipe.durations.ravel().copy()
        residual = 0.0
        if total:
            nonempty = task_off[1:] > task_off[:-1]
            ti = task_idx[nonempty]
            last = np.maximum.reduceat(result.finish[:total], task_off[:-1][nonempty])
            target = np.maximum(last - sched.start[ti], 0.0)
            # relative residual per task; 1 ns floor so empty transfers do not divide by 0
            residual = float(np.max(np.abs(target - d[ti]) / np.maximum(np.maximum(target, d[ti]), 1e-9))) \
                if ti.size else 0.0
            d[ti] += relax * (target - d[ti])
        residuals.append(residual)
        # The fixed point: every transfer lasts what the network says it lasts when started
        # where the timeline starts it.
        if residual <= tol:
            converged = True
            break
        pipe = pipe.with_durations(d)
        sched = schedule_pipeline(pipe)
        makespans.append(sched.makespan)
        stalled = residual > 0.5 * last_residual
        # A transfer that starts just before or just after another phase ends can flip
        # between two durations: no exact fixed point exists, but the iteration time settles.
        if stalled and abs(makespans[-1] - makespans[-2]) <= tol * makespans[-1]:
            converged = True
            break
        # Free-running transfers can flip between "all overlap, all slow" and "spread out,
        # all fast"; a residual that does not shrink means oscillation, so damp the update.
        if stalled:
            relax = max(0.25, 0.5 * relax)
        last_residual = residual
    flow_task = None
    bg_finish = None
    if batch is not None:
        flow_task = np.full(len(batch), -1, dtype=np.int64)
        flow_task[:total] = batch.tag[:total]
        bg_finish = result.finish[total:] if background is not None else None
    return CoupledSchedule(pipe, sched, mode, rounds, converged, tuple(makespans), tuple(residuals),
                           batch, result, flow_task, bg_finish)
