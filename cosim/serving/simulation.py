"""Build and run one serving simulation from a config: workload -> deployment -> engine -> metrics."""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cosim.config.profiles import apply_profile
from cosim.errors import ConfigError
from cosim.model.layout import ParallelLayout
from cosim.serving.comm import AlphaBetaComm, LinkFigures, NoComm, TrafficShape
from cosim.serving.deployments import get_deployment, known_deployments
from cosim.serving.deployments.base import Deployment, SimContext
from cosim.serving.engine import Engine
from cosim.serving.events import RequestArrival
from cosim.serving.expert_layouts import ExpertLayouts
from cosim.serving.request_state import RequestState
from cosim.workload.arrivals import WorkloadDriver
from cosim.workload.build import build_workload

StepCostFactory = Callable[[Any, ParallelLayout], Any]  # (spec, layout) -> StepCostModel-like
CommFactory = Callable[[ParallelLayout, int], Any]  # (layout, first GPU) -> CommModel


@dataclass
class SimOutput:
    """What one run produces (summary.json, requests.parquet, iterations.parquet)."""

    summary: dict
    requests: pd.DataFrame
    iterations: pd.DataFrame
    artifacts: dict = field(default_factory=dict)  # extra files: name -> JSON-able object
    flows: Any = None  # output.flows: the flow trace (RecordedFlows) for flows.parquet


# Step cost models shared by the runs of one process (a sweep's or a search's runs in one
# worker), keyed by everything they may depend on: hardware, compute settings, model, layout
# and the deployment config (its options can shape pricing); not the workload, the SLO or
# the network, so a search's runs of one candidate at several loads share one. Their memos
# are pure functions of an iteration's shape: a later run with the same key prices the
# shapes an earlier one met without recomputing them, and its results are unchanged.
_STEP_COSTS: OrderedDict[tuple, Any] = OrderedDict()
_STEP_COSTS_MAX = 32


def default_step_cost_factory(cfg: Any) -> StepCostFactory:
    """B's StepCostModel over the configured hardware and compute settings (process-shared)."""
    from cosim.compute import ComputeModel, StepCostModel

    base = (repr(cfg.hardware), repr(cfg.compute), repr(cfg.deployment))
    compute: list = []

    def factory(spec: Any, layout: ParallelLayout):
        key = (*base, repr(spec), repr(layout))
        hit = _STEP_COSTS.get(key)
        if hit is not None:
            _STEP_COSTS.move_to_end(key)
            return hit
        if not compute:
            compute.append(ComputeModel(cfg.hardware, cfg.compute))
        model = _STEP_COSTS[key] = StepCostModel(spec, compute[0], layout)
        while len(_STEP_COSTS) > _STEP_COSTS_MAX:
            _STEP_COSTS.popitem(last=False)
        return model

    return factory


def make_comm_factory(cfg: Any, spec: Any, notes: dict) -> tuple[CommFactory, dict]:
    """The CommModel factory the config asks for, and the run's shared network objects.

    `shared` becomes SimContext.shared: `shared["backend"]`, when present, is the network
    backend of the run (close it at the end); `shared["lookups"]` counts its lookups.
    """
    d = cfg.deployment.comm
    choice = d.model
    backend = getattr(cfg.network, "backend", "alpha_beta")
    if choice == "auto":
        choice = "alpha_beta" if backend == "alpha_beta" else "fabric"
    from cosim.serving.network_lookups import NetworkLookups

    shared: dict = {"lookups": NetworkLookups()}
    if choice == "none":
        notes["comm_model"] = "none"
        return (lambda layout, first: NoComm()), shared
    if choice == "fabric":
        from cosim.serving.fabric_comm import FabricComm, fabric_available

        if backend == "alpha_beta":
            raise ConfigError("deployment.comm.model",
                              "fabric needs network=analytical or network=ns3, not alpha_beta")
        if not fabric_available():
            raise ConfigError("deployment.comm.model",
                              "fabric needs cosim.traffic and cosim.network.backend; "
                              "use deployment.comm.model=alpha_beta")
        notes["comm_model"] = f"fabric:{backend}"

        def fabric(layout: ParallelLayout, first: int):
            return FabricComm.from_config(cfg, spec, layout, first, shared)

        return fabric, shared
    notes["comm_model"] = "alpha_beta"
    shape = TrafficShape.from_spec(spec)
    act = str(getattr(spec.precision.activation, "value", spec.precision.activation))
    topo = getattr(cfg, "topology", None)
    links = LinkFigures.from_config(topo, cfg.hardware)
    mixed = bool(getattr(topo, "server_groups", None))
    net = cfg.network

    def alpha_beta(layout: ParallelLayout, first: int):
        # a mixed-kind topology: the figures of the instance's first server (an instance
        # sits on servers of its role's kind: Deployment.check_one_kind_per_server)
        lk = LinkFigures.from_config(topo, cfg.hardware, first // topo.gpus_per_node) \
            if mixed else links
        return AlphaBetaComm(layout, shape, lk, d.dispatch_dtype, d.combine_dtype,
                             d.launch_us, act, kernel_mode=net.ep_kernel_mode,
                             ll_launch_us=net.ep_low_latency_us,
                             ll_max_tokens=net.ep_low_latency_max_tokens)

    return alpha_beta, shared


def role_step_costs(cfg: Any, spec: Any, custom: StepCostFactory | None):
    """(hardware, layout) -> step cost model of a role on its own GPU kind (a role's
    `hardware`): B's StepCostModel over that hardware's tables, one compute model per kind.
    A custom step_cost_factory prices every role (it knows no hardware)."""
    if custom is not None:
        return lambda hardware, layout: custom(spec, layout)
    factories: dict[str, StepCostFactory] = {}

    def on(hardware: Any, layout: ParallelLayout):
        key = repr(hardware)
        f = factories.get(key)
        if f is None:
            f = factories[key] = default_step_cost_factory(dataclasses.replace(cfg, hardware=hardware))
        return f(spec, layout)

    return on


def prepare(cfg: Any, step_cost_factory: StepCostFactory | None = None,
            comm_factory: CommFactory | None = None) -> tuple[Deployment, SimContext, dict]:
    """Validate `cfg` and build the workload and the deployment (nothing runs yet)."""
    from cosim.config import apply_kind_overrides, to_object, validate
    from cosim.model.spec import ModelSpec

    cfg = to_object(apply_kind_overrides(cfg, known_deployments()))
    profile = apply_profile(cfg)  # compute.profile=framework: the framework's defaults
    validate(cfg)
    spec = ModelSpec.from_config(cfg.model)
    max_ctx = int(spec.max_context)
    if max_ctx <= 0:
        raise ConfigError("model.max_context", "unknown: set it or max_position_embeddings")
    cfg.workload.check_context(max_ctx)
    cfg.deployment.check_model(spec.moe.num_experts if spec.moe is not None else None)
    table = build_workload(cfg.workload, max_ctx, cfg.seed)
    state = RequestState(table)
    driver = WorkloadDriver(table, cfg.workload.arrival)
    notes: dict = {"profile": profile} if profile else {}
    if comm_factory is None:
        comm_factory, shared = make_comm_factory(cfg, spec, notes)
    else:
        from cosim.serving.network_lookups import NetworkLookups

        shared = {"lookups": NetworkLookups()}
        notes["comm_model"] = "custom"
    custom = step_cost_factory
    if step_cost_factory is None:
        step_cost_factory = default_step_cost_factory(cfg)
    if getattr(getattr(cfg, "output", None), "flows", False):
        from cosim.serving.flow_record import new_recorder

        shared["flow_recorder"] = new_recorder()
    min_tokens = int((table.prompt_tokens + table.output_tokens).max())
    experts = ExpertLayouts(spec, cfg.deployment.experts)
    shared["experts"] = experts
    on_hw = role_step_costs(cfg, spec, custom)
    ctx = SimContext(cfg=cfg, spec=spec, table=table, state=state, driver=driver,
                     step_cost_for=lambda layout: step_cost_factory(spec, experts(layout)),
                     comm_for=lambda layout, first: comm_factory(experts(layout), first),
                     min_kv_tokens=min_tokens, notes=notes, shared=shared,
                     step_cost_on=lambda hw, layout: on_hw(hw, experts(layout)),
                     expert_layout=experts)
    try:
        dep = get_deployment(cfg.deployment.kind)(ctx)
        if dep.feasible and cfg.workload.warm_prefixes:
            dep.warm_prefix_caches()
    except BaseException:
        if shared.get("backend") is not None:  # e.g. an ns-3 server already started
            shared["backend"].close()
        raise
    return dep, ctx, shared


def run_simulation(cfg: Any, *, step_cost_factory: StepCostFactory | None = None,
                   comm_factory: CommFactory | None = None,
                   progress: Callable[[float, int], None] | None = None) -> SimOutput:
    """Simulate `cfg` (a composed DictConfig or a Config dataclass) to the last request.

    `progress(now, completed)` is called about four times per wall second.
    """
    from cosim.metrics import iterations_frame, requests_frame, summarize

    wall0 = time.perf_counter()
    dep, ctx, shared = prepare(cfg, step_cost_factory, comm_factory)
    try:
        engine = Engine()
        if dep.feasible:
            times, rids = ctx.driver.initial()
            for t, rid in zip(times.tolist(), rids.tolist(), strict=True):
                engine.schedule(t, RequestArrival(dep, rid))
            cb = None
            if progress is not None:
                state = ctx.state

                def cb(now: float) -> None:
                    progress(now, state.completed)

            engine.run(progress=cb)
        wall = time.perf_counter() - wall0
        requests = requests_frame(ctx.table, ctx.state, ctx.cfg.slo, ctx.cfg.workload.name)
        for name, col in dep.request_columns().items():
            requests[name] = col
        iterations = iterations_frame(dep.instances)
        comm_stats: dict = {}
        for cm in dep.cost_models():
            for k, v in cm.comm.stats().items():
                # counters (ints) add up over the cost models; other facts (a grid percent,
                # a mode) are the same for all of them
                if isinstance(v, int) and not isinstance(v, bool) and k in comm_stats:
                    comm_stats[k] += v
                else:
                    comm_stats[k] = v
        network = shared["lookups"].summary()
        network["network_server_restarts"] = int(getattr(shared.get("backend"), "restarts", 0))
        summary = summarize(ctx, dep, requests, iterations, wall, engine.events_handled,
                            comm_stats, network)
        artifacts = dep.artifacts()
        flows = None
        if shared.get("flow_recorder") is not None:
            from cosim.serving.flow_record import flow_table

            flows = flow_table(shared["flow_recorder"], ctx.cfg, shared.get("graph"))
            summary["flow_trace"] = {"groups": shared["flow_recorder"].groups,
                                     "rows": shared["flow_recorder"].rows}
    finally:
        try:
            dep.close()
        finally:
            backend = shared.get("backend")
            if backend is not None:
                backend.close()
    return SimOutput(summary=summary, requests=requests, iterations=iterations,
                     artifacts=artifacts, flows=flows)
