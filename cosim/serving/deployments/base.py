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

import numpy as np

from cosim.errors import ConfigError
from cosim.model.layout import ParallelLayout
from cosim.serving.deployments.placement import TrafficBytes
from cosim.serving.events import IterationEnd, RequestArrival
from cosim.serving.instance import Instance, InstanceInfo
from cosim.serving.iteration_cost import CommLike, IterationCost, StepCostLike
from cosim.serving.kv_cache import KVCache
from cosim.serving.memory_plan import MemoryPlan, plan_memory
from cosim.serving.request_state import RequestState
from cosim.serving.scheduler import Scheduler
from cosim.serving.speculative import SpeculativeIterationCost
from cosim.serving.two_batch import TwoBatchInstance
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
    # (hardware config, layout) -> step cost model on that GPU kind (roles with their own
    # `hardware`); None: every role on cfg.hardware (step_cost_for)
    step_cost_on: Callable[[Any, ParallelLayout], StepCostLike] | None = None
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
        # bytes per traffic class on NVLink / scale-out (summary.json traffic_bytes)
        topo = getattr(ctx.cfg, "topology", None)
        self.traffic_bytes = TrafficBytes(int(getattr(topo, "gpus_per_node", 0) or 1))

    # --- construction --------------------------------------------------------------------------
    def infeasible(self, reason: str) -> None:
        self.feasible = False
        self.infeasible_reason = reason

    def hasher(self, block_tokens: int) -> BlockHasher:
        h = self._hashers.get(block_tokens)
        if h is None:
            h = self._hashers[block_tokens] = BlockHasher(self.ctx.table, block_tokens)
        return h

    def hardware_of(self, role: str) -> Any:
        """The GPU kind of `role`: deployment.roles.<role>.hardware, else the run's hardware."""
        r = (getattr(self.ctx.cfg.deployment, "roles", None) or {}).get(role)
        hw = getattr(r, "hardware", None)
        return hw if hw is not None else self.ctx.cfg.hardware

    def step_cost(self, layout: ParallelLayout, hardware: Any = None) -> StepCostLike:
        """The step cost model of `layout` on `hardware` (None or the run's: step_cost_for)."""
        if hardware is None or hardware is self.ctx.cfg.hardware or self.ctx.step_cost_on is None:
            return self.ctx.step_cost_for(layout)
        return self.ctx.step_cost_on(hardware, layout)

    def plan(self, role: str, layout: ParallelLayout, scheduler_cfg: Any,
             stage: str | None = None) -> MemoryPlan:
        """Memory plan of one GPU of `layout` (recorded under `role`, on the role's hardware);
        `stage` as in plan_memory."""
        d = self.ctx.cfg.deployment
        p = plan_memory(self.ctx.spec, self.ctx.expert_layout(layout), self.hardware_of(role),
                        d.memory, scheduler_cfg,
                        self.ctx.min_kv_tokens, stage=stage)
        self.memory[role] = p
        return p

    def iteration_cost(self, layout: ParallelLayout, first_gpu: int, grid: int,
                       hardware: Any = None) -> IterationCost:
        """One memoised cost model per (layout, grid, GPU kind): identical replicas share it.

        Communication is priced on the first replica's GPUs; the others are assumed to see the
        same fabric (a symmetric topology, no contention between replicas).
        """
        key = (layout, grid) if hardware is None else (layout, grid, repr(hardware))
        c = self._costs.get(key)
        if c is None:
            sp = getattr(self.ctx.cfg.deployment, "speculative", None)
            if sp is not None and sp.method == "mtp":
                if not int(getattr(self.ctx.spec, "num_mtp_layers", 0) or 0):
                    raise ConfigError("deployment.speculative.method",
                                      "mtp needs a model with an MTP module "
                                      "(config.json num_nextn_predict_layers >= 1)")
                c = SpeculativeIterationCost(self.step_cost(layout, hardware),
                                             self.ctx.comm_for(layout, first_gpu), grid,
                                             self.ctx.spec, sp.draft_tokens)
            else:
                c = IterationCost(self.step_cost(layout, hardware),
                                  self.ctx.comm_for(layout, first_gpu), grid)
            self._costs[key] = c
        return c

    def make_ranks(self, iid: int, dp: int, scheduler_cfg: Any, plan: MemoryPlan,
                   prefill_only: bool = False) -> list[Scheduler]:
        """The `dp` attention-DP ranks of instance `iid`: schedulers with KV caches sized by `plan`."""
        sc = scheduler_cfg
        hasher = self.hasher(sc.kv_block_tokens)
        sp = getattr(self.ctx.cfg.deployment, "speculative", None)
        e = sp.tokens_per_step if sp is not None else 1.0
        # TensorRT-LLM waits for batches only without attention DP (PyExecutor._schedule)
        bw_iters = getattr(sc, "batch_wait_timeout_iters", 0) if dp == 1 else 0
        bw_ratio = getattr(sc, "batch_wait_max_tokens_ratio", 0.0) if dp == 1 else 0.0
        return [Scheduler(iid, KVCache(plan.kv_blocks_per_rank, sc.kv_block_tokens), hasher,
                          self.ctx.state, token_budget=sc.max_batched_tokens,
                          max_running=sc.max_running_requests,
                          chunked_prefill=sc.chunked_prefill, watermark=sc.watermark,
                          prefill_only=prefill_only, policy=getattr(sc, "policy", "mixed"),
                          tokens_per_step=e, batch_wait_iters=bw_iters, batch_wait_ratio=bw_ratio)
                for _ in range(dp)]

    def make_instance(self, iid: int, role: str, layout: ParallelLayout, scheduler_cfg: Any,
                      plan: MemoryPlan, first_gpu: int, prefill_only: bool = False,
                      prefix_routing: bool = False) -> Instance:
        """An instance of `layout.dp` ranks, KV caches sized by `plan`, memoised cost model."""
        ranks = self.make_ranks(iid, layout.dp, scheduler_cfg, plan, prefill_only)
        hw = self.hardware_of(role)
        cost = self.iteration_cost(layout, first_gpu, scheduler_cfg.kv_len_grid_tokens,
                                   None if hw is self.ctx.cfg.hardware else hw)
        info = InstanceInfo(iid=iid, role=role, layout=layout, first_gpu=first_gpu,
                            num_gpus=layout.attention_gpus)
        if getattr(self.ctx.cfg.deployment, "overlap", "none") == "two_batch":
            inst: Instance = TwoBatchInstance(info, ranks, cost, int(self.ctx.spec.num_layers),
                                              prefix_routing=prefix_routing)
        else:
            inst = Instance(info, ranks, cost, prefix_routing=prefix_routing)
        inst.set_adp_balance(getattr(scheduler_cfg, "adp_balance_timeout_iters", 0),
                             getattr(scheduler_cfg, "adp_balance_batching_wait_iters", 0))
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
        self._record_at(inst, now)
        dur = inst.start(now)
        if dur is None:
            return []
        return [(now + dur, inst.end_event)]

    def _record_at(self, inst: Instance, now: float) -> None:
        """output.flows: the flows priced next belong to `inst`'s iteration starting at `now`."""
        rec = self.ctx.shared.get("flow_recorder")
        if rec is not None:
            rec.at(inst.iid, len(inst.rows), now)

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
        self._record_at(inst, now)
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

    def check_one_kind_per_server(self, gpus_by_role: dict[str, np.ndarray],
                                  gpus_per_node: int) -> None:
        """Heterogeneous roles: a server (NVLink domain) holds GPUs of one kind. ConfigError
        naming the role's hardware when two kinds would share one. On a mixed-kind topology
        (topology.server_groups) every role's GPUs must sit on servers of its kind."""
        kinds = {r: getattr(self.hardware_of(r), "name", "?") for r in gpus_by_role}
        self.check_server_kinds(gpus_by_role, kinds)
        if len(set(kinds.values())) <= 1:
            return
        g = max(int(gpus_per_node), 1)
        owner: dict[int, str] = {}
        for r, ids in gpus_by_role.items():
            for srv in np.unique(np.asarray(ids) // g).tolist():
                o = owner.setdefault(srv, r)
                if kinds[o] != kinds[r]:
                    raise ConfigError(f"deployment.roles.{r}.hardware",
                                      f"server {srv} would hold {kinds[o]} GPUs ({o}) and "
                                      f"{kinds[r]} GPUs ({r}); a server holds one GPU kind: give "
                                      f"each role whole servers (role sizes, deployment.placement)")

    def check_server_kinds(self, gpus_by_role: dict[str, np.ndarray],
                           kinds: dict[str, str] | None = None) -> None:
        """A mixed-kind topology: ConfigError naming the role's hardware field when a role's
        GPUs sit on a server of another kind (topology.server_groups[i].gpu)."""
        topo = getattr(self.ctx.cfg, "topology", None)
        if not getattr(topo, "server_groups", None):
            return
        if kinds is None:
            kinds = {r: getattr(self.hardware_of(r), "name", "?") for r in gpus_by_role}
        g = int(topo.gpus_per_node)
        group = topo.server_group()
        for r, ids in gpus_by_role.items():
            for srv in np.unique(np.asarray(ids) // g).tolist():
                if srv >= len(group):
                    continue  # beyond the fabric: TransferTimer's error names topology.num_nodes
                grp = topo.server_groups[group[srv]]
                if grp.gpu != kinds[r]:
                    field = (f"deployment.roles.{r}.hardware"
                             if getattr((getattr(self.ctx.cfg.deployment, "roles", None) or {})
                                        .get(r), "hardware", None) is not None else "hardware")
                    raise ConfigError(field, f"the {r} GPUs are {kinds[r]}, but server {srv} "
                                      f"(topology.server_groups[{group[srv]}]) holds {grp.gpu} "
                                      f"GPUs; place the role on servers of its kind (role sizes, "
                                      f"deployment.placement) or give it that kind "
                                      f"(+hardware@deployment.roles.{r}.hardware={grp.gpu})")

    # --- reporting -----------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Facts for summary.json's `deployment` entry."""
        roles: dict[str, int] = {}
        for inst in self.instances:
            roles[inst.info.role] = roles.get(inst.info.role, 0) + inst.info.num_gpus
        out = self.with_role_costs(
            {"kind": self.kind, "instances": len(self.instances), "gpus_by_role": roles,
             "memory": {r: p.to_dict() for r, p in self.memory.items()}})
        tbo = [i for i in self.instances if isinstance(i, TwoBatchInstance)]
        if tbo:  # deployment.overlap=two_batch: how many iterations could be split
            out["two_batch_overlap"] = {"instances": len(tbo),
                                        "overlapped_iterations": sum(i.overlapped for i in tbo),
                                        "iterations": sum(len(i.rows) for i in tbo)}
        return out

    def with_role_costs(self, out: dict[str, Any]) -> dict[str, Any]:
        """`out` with hardware_by_role and cost_by_role (GPUs, kind, USD per GPU-hour and per
        hour of each role of out["gpus_by_role"])."""
        roles = out.get("gpus_by_role") or {}
        cost = {}
        for r, n in roles.items():
            hw = self.hardware_of(r)
            p = getattr(hw, "usd_per_gpu_hour", None)
            cost[r] = {"gpus": int(n), "hardware": getattr(hw, "name", None),
                       "usd_per_gpu_hour": p, "usd_per_hour": None if p is None else float(p) * n}
        out["hardware_by_role"] = {r: c["hardware"] for r, c in cost.items()}
        out["cost_by_role"] = cost
        return out

    def usd_per_gpu_hour(self) -> float | None:
        """Mean price per GPU-hour over the roles (their GPU kinds, weighted by GPUs); the run's
        hardware price when every role uses it. None when a role's kind has no price."""
        base = getattr(self.ctx.cfg.hardware, "usd_per_gpu_hour", None)
        roles = (getattr(self.ctx.cfg.deployment, "roles", None) or {})
        if not any(getattr(r, "hardware", None) is not None for r in roles.values()):
            return base
        cost = self.describe().get("cost_by_role") or {}
        prices = [c["usd_per_gpu_hour"] for c in cost.values()]
        if not cost or any(p is None for p in prices):
            return None
        if len(set(prices)) == 1:
            return float(prices[0])
        gpus = sum(c["gpus"] for c in cost.values())
        return sum(c["usd_per_hour"] for c in cost.values()) / gpus if gpus else None

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
                "attention_busy": None, "ffn_busy": None, "comm_exposed_fraction": frac,
                "traffic_bytes": self.traffic_bytes_summary()}

    def traffic_bytes_summary(self) -> dict[str, dict[str, float]]:
        """summary.json `traffic_bytes`: the flows the deployment sent between roles (A2F/F2A,
        KV), counted as they went, and the instances' own EP dispatch/combine and TP
        all-reduce bytes, from their iterations' token counts (the comm model's link_bytes;
        none under deployment.comm.model=none). docs/placement.md."""
        out = TrafficBytes(self.traffic_bytes.g)
        for cls, (nv, so) in self.traffic_bytes.totals.items():
            out.add(cls, nv, so)
        for inst in self.instances:
            link_bytes = getattr(getattr(inst.cost, "comm", None), "link_bytes", None)
            if link_bytes is None or not inst.rows:
                continue
            rows = np.asarray([(r[4] + r[5], r[5] == 0) for r in inst.rows], dtype=np.int64)
            # (tokens, decode only): the kernels under network.ep_kernel_mode=auto
            keys, counts = np.unique(rows, axis=0, return_counts=True)
            for (t, dec), c in zip(keys.tolist(), counts.tolist(), strict=True):
                for cls, (nv, so) in link_bytes(int(t), bool(dec)).items():
                    out.add(cls, nv, so, c)
        return out.to_dict()

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
