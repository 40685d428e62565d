"""Iteration timeline: task graphs of one iteration, their schedule, network coupling, Perfetto export."""

from cosim.timeline.graph import (
    NO_RESOURCE,
    NO_TRAFFIC,
    Schedule,
    TaskGraph,
    graph_from_lists,
    schedule,
)
from cosim.timeline.pipeline import (
    AFD_STAGES,
    EP_STAGES,
    LayeredPipeline,
    StageSpec,
    afd_comm_hidden,
    afd_exposed_comm,
    afd_iteration_time,
    afd_pipeline,
    chain_makespan,
    ep_pipeline,
    layered_pipeline,
    megascale_min_micro_batches,
    pipeline_time,
    schedule_pipeline,
    shared_chain_makespan,
)

__all__ = [
    "AFD_STAGES", "EP_STAGES", "NO_RESOURCE", "NO_TRAFFIC", "LayeredPipeline", "Schedule", "StageSpec",
    "TaskGraph", "afd_comm_hidden", "afd_exposed_comm", "afd_iteration_time", "afd_pipeline",
    "ep_pipeline", "graph_from_lists", "layered_pipeline", "megascale_min_micro_batches",
    "chain_makespan", "pipeline_time", "schedule", "schedule_pipeline", "shared_chain_makespan",
]
