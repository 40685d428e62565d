"""What every deployment shares: the simulation context, instance construction, follow-ups.

A deployment subclass builds its instances in `__init__` (or marks itself infeasible) and
sets `self.router` (the router of the instances new requests enter). The base class
implements the two event hooks from that:

    on_arrival(now, rid) -> [(time, Event), ...]        a request is issued: route, enqueue,
                                                         start the instance if idle
    on_iteration_end(now, instance) -> [(time, Event)]   an instance's iteration ended: hand
                                                         off prefilled requests (`hand_off`),
                                                         start the next iteration, follow-ups

A kind whose instances hand requests on (`prefill_only` ranks, as in `pd`) overrides
`hand_off(now, inst, rids)`; a kind with another request flow overrides the hooks.

Helpers: `make_instance(...)` (memory plan, KV cache, scheduler, cost model), `start(inst,
now)` (begin the next iteration if there is work), `follow_ups(finished, now)` (the next
turns / closed-loop requests the finished ones cause).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cosim.model.layout import ParallelLayout
from cosim.serving.events import IterationEnd, RequestArrival
from cosim.serving.instance import Instance, InstanceInfo
from cosim.serving.iteration_cost import CommLike, IterationCost, StepCostLike
from cosim.serving.kv_cache import KVCache
from cosim.serving.memory_plan import MemoryPlan, plan_memory
from cosim.serving.request_state import RequestState
from cosim.serving.scheduler import Scheduler
from cosim.timeline.perfetto import TraceBuilder
from cosim.workload.arrivals import WorkloadDriver
from cosim.workload.block_hashes import BlockHasher
from cosim.workload.requests import RequestTable


@dataclass
class SimContext:
    """Everything a deployment needs to build and run its instances."""

    cfg: Any  # the root Config (dataclass instance)
    spec: Any  # cosim.model.spec.ModelSpec
    table: RequestTable
    state: RequestState
    driver: WorkloadDriver
    step_cost_for: Callable[[ParallelLayout], StepCostLike]
    comm_for: Callable[[ParallelLayout, int], CommLike]  # (layout, first global GPU)
    min_kv_tokens: int  # context of the longest request: every instance must hold one
    notes: dict = field(default_factory=dict)
    # The run's network objects, one of each per run: "graph" (FabricGraph), "backend" (the
    # NetworkBackend behind its result cache; an ns-3 server is a process, so pd/afd transfers
    # and the instances' EP traffic share it; run_simulation closes it) and "lookups"
    # (cosim.serving.network_lookups.NetworkLookups).
    shared: dict = field(default_factory=dict)
    # layout -> the layout with its EP group's expert placement (deployment.experts;
    # cosim.serving.expert_layouts). step_cost_for and comm_for apply it already.
    expert_layout: Callable[[ParallelLayout], ParallelLayout] = lambda layout: layout


class Deployment:
    """Base class (see the module docstring)."""

    kind = ""

    def __init__(self, ctx: SimContext):
        self.ctx = ctx
        self.instances: list[Instance] = []
        self.feasible = True
        self.infeasible_reason = ""
        self.num_gpus = 0
        self.memory: dict[str, MemoryPlan] = {}  # role -> plan of one GPU
        self.router: Any = None  # picks the instance a new request enters (cosim.serving.router)
        self._costs: dict[tuple, IterationCost] = {}
        self._hashers: dict[int, BlockHasher] = {}
        self.warm_prefix_blocks = 0  # blocks made resident by warm_prefix_caches()

    # --- construction --------------------------------------------------------------------------
    def infeasible(self, reason: str) -> None:
        self.feasible = False
        self.infeasible_reason = reason

    def hasher(self, block_tokens: int) -> BlockHasher:
        h = self._hashers.get(block_tokens)
        if h is None:
            h = self._hashers[block_tokens] = BlockHasher(self.ctx.table, block_tokens)
        return h

    def plan(self, role: str, layout: ParallelLayout, scheduler_cfg: Any,
             stage: str | None = None) -> MemoryPlan:
        """Memory plan of one GPU of `layout` (recorded under `role`); `stage` as in plan_memory."""
        d = self.ctx.cfg.deployment
        p = plan_memory(self.ctx.spec, self.ctx.expert_layout(layout), self.ctx.cfg.hardware,
                        d.memory, scheduler_cfg,
                        self.ctx.min_kv_tokens, stage=stage)
        self.memory[role] = p
        return p

    def iteration_cost(self, layout: ParallelLayout, first_gpu: int, grid: int) -> IterationCost:
        """One memoised cost model per (layout, grid): identical replicas share their memo.

        Communication is priced on the first replica's GPUs; the others are assumed to see the
        same fabric (a symmetric topology, no contention between replicas).
        """
        key = (layout, grid)
        c = self._costs.get(key)
        if c is None:
            c = self._costs[key] = IterationCost(self.ctx.step_cost_for(layout),
                                                 self.ctx.comm_for(layout, first_gpu), grid)
        return c

    def make_ranks(self, iid: int, dp: int, scheduler_cfg: Any, plan: MemoryPlan,
                   prefill_only: bool = False) -> list[Scheduler]:
        """The `dp` attention-DP ranks of instance `iid`: schedulers with KV caches sized by `plan`."""
        sc = scheduler_cfg
        hasher = self.hasher(sc.kv_block_tokens)
        return [Scheduler(iid, KVCache(plan.kv_blocks_per_rank, sc.kv_block_tokens), hasher,
                          self.ctx.state, token_budget=sc.max_batched_tokens,
                          max_running=sc.max_running_requests,
                          chunked_prefill=sc.chunked_prefill, watermark=sc.watermark,
                          prefill_only=prefill_only)
                for _ in range(dp)]

    def make_instance(self, iid: int, role: str, layout: ParallelLayout, scheduler_cfg: Any,
                      plan: MemoryPlan, first_gpu: int, prefill_only: bool = False,
                      prefix_routing: bool = False) -> Instance:
        """An instance of `layout.dp` ranks, KV caches sized by `plan`, memoised cost model."""
        ranks = self.make_ranks(iid, layout.dp, scheduler_cfg, plan, prefill_only)
        cost = self.iteration_cost(layout, first_gpu, scheduler_cfg.kv_len_grid_tokens)
        info = InstanceInfo(iid=iid, role=role, layout=layout, first_gpu=first_gpu,
                            num_gpus=layout.attention_gpus)
        inst = Instance(info, ranks, cost, prefix_routing=prefix_routing)
        inst.end_event = IterationEnd(self, inst)
        return inst

    def warm_prefix_caches(self) -> int:
        """workload.warm_prefixes: the KV caches of the instances new requests enter (the
        router's; prefill instances under P/D) start holding the pool's shared prefixes, as
        far as each rank's free blocks allow (KVCache.warm). Returns the blocks placed."""
        placed = 0
        for inst in getattr(self.router, "instances", ()):
            for rank in inst.ranks:
                placed += rank.kv.warm(rank.hasher.pool_chains())
        self.warm_prefix_blocks = placed
        return placed

    # --- running -------------------------------------------------------------------------------
    def start(self, inst: Instance, now: float) -> list:
        """Begin `inst`'s next iteration if it has work: [(end time, its IterationEnd)] or []."""
        dur = inst.start(now)
        if dur is None:
            return []
        return [(now + dur, inst.end_event)]

    def follow_ups(self, finished: list[int], now: float) -> list:
        """Arrival events of the requests that `finished` requests cause (sessions, closed loop)."""
        out = []
        after = self.ctx.driver.after_finish
        for rid in finished:
            nxt = after(rid, now)
            if nxt is not None:
                out.append((nxt[0], RequestArrival(self, nxt[1])))
        return out

    def arrival(self, now: float, rid: int) -> None:
        """Record that `rid` is issued at `now` (deployments call this in on_arrival)."""
        self.ctx.state.arrival_s[rid] = now

    def on_arrival(self, now: float, rid: int) -> list | None:
        """`rid` is issued: enqueue it on the instance `self.router` picks; start it if idle."""
        self.arrival(now, rid)
        inst = self.router.pick(rid)
        inst.enqueue(rid)
        if inst.busy:
            return None
        return self.start(inst, now)

    def on_iteration_end(self, now: float, inst: Instance) -> list:
        """`inst`'s iteration ended: apply it, hand off the requests whose prefill it finished,
        start its next iteration and issue the follow-ups of the requests it finished."""
        finished, handed = inst.complete(now)
        nxt = self.hand_off(now, inst, handed) if handed else []
        dur = inst.start(now)
        if dur is not None:
            nxt.append((now + dur, inst.end_event))
        if finished:
            nxt.extend(self.follow_ups(finished, now))
        return nxt

    def hand_off(self, now: float, inst: Instance, rids: list[int]) -> list:
        """Events that move `rids` (prefilled on `inst`'s prefill_only ranks) to their next
        stage; a new list. Only kinds with prefill_only instances hand off."""
        raise NotImplementedError(f"deployment {self.kind!r} has no stage to hand requests to")

    # --- reporting -----------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Facts for summary.json's `deployment` entry."""
        roles: dict[str, int] = {}
        for inst in self.instances:
            roles[inst.info.role] = roles.get(inst.info.role, 0) + inst.info.num_gpus
        return {"kind": self.kind, "instances": len(self.instances), "gpus_by_role": roles,
                "memory": {r: p.to_dict() for r, p in self.memory.items()}}

    def cost_models(self) -> list[IterationCost]:
        """Objects with source_seconds() and .comm.stats() (compute_sources, comm facts)."""
        return list(self._costs.values())

    def summary_extras(self, req: Any = None, it: Any = None) -> dict[str, Any]:
        """Deployment-specific summary.json fields; every kind reports the same keys.

        Here: no KV transfers and no separate attention / FFN groups (None), and
        comm_exposed_fraction = Σ comm_s / Σ duration_s over the iterations (the share of
        iteration time spent in communication that no compute hides). Subclasses override
        what applies to them.
        """
        frac = None
        if it is not None and len(it):
            dur = float(it["duration_s"].sum())
            frac = float(it["comm_s"].sum()) / dur if dur > 0 else 0.0
        return {"kv_transfer_ms_p50": None, "kv_transfer_ms_p99": None, "kv_transfers": None,
                "attention_busy": None, "ffn_busy": None, "comm_exposed_fraction": frac}

    def request_columns(self) -> dict[str, Any]:
        """Extra requests.parquet columns (arrays indexed by request id)."""
        return {}

    def artifacts(self) -> dict[str, Any]:
        """Extra run-directory files: name -> JSON-able object.

        Here: timeline.json with one event per iteration of every instance in
        `output.timeline_iterations` (compute and communication ms, batch sizes).
        """
        tb = TraceBuilder()
        if self.feasible:
            iteration_spans(tb, self.instances, timeline_window(self.ctx.cfg))
        return {"timeline.json": tb.to_dict()}

    def close(self) -> None:
        """Release what the deployment started (servers, sockets); called once at the end."""


def iteration_spans(tb: Any, instances: list[Instance], window: tuple[int, int]) -> None:
    """One event per iteration in [first, last) for each instance (no per-layer detail)."""
    for inst in instances:
        tb.add_iterations(f"{inst.info.role} {inst.iid} ({inst.info.num_gpus} GPUs)", inst.rows,
                          window)


def timeline_window(cfg: Any) -> tuple[int, int]:
    """cfg.output.timeline_iterations as (first, last)."""
    win = list(getattr(getattr(cfg, "output", None), "timeline_iterations", None) or [0, 0])
    return (int(win[0]), int(win[1])) if len(win) == 2 else (0, 0)
