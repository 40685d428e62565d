"""output.flows: the run's FlowRecorder (cosim.network.flow_trace) and its flows.parquet table.

Where the run records (each hands the recorder what the backend timed, then a use per point
in the run; docs/replay.md):

- Deployment.start / on_iteration_end: `at(instance, iteration, start time)` before an
  instance prices its next iteration;
- chunked (FabricComm): per iteration one EP dispatch and one EP combine group standing for
  every MoE layer, one all-reduce group standing for every layer (tp > 1); time zero is the
  iteration's start (the chunked cost model has no per-layer timeline);
- afd / pd_afd decode (AFDTimer): network.mode=phase, one A2F and one F2A group per
  micro-batch standing for all layers; network.mode=iteration, the iteration's final coupled
  batch as one group (every layer and micro-batch, start offsets from the timeline);
- pd / pd_afd (KVTransfers): one KV group per hand-off, time zero at the prefill iteration's
  start (layer-wise streaming) or its end.

Every replica (every AFD unit) is timed on the first one's GPUs (a symmetric fabric): the
recorded src/dst are the GPUs the backend timed, and `instance` says whose iteration it was.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from cosim.network.backend import backend_variant
from cosim.network.flow_trace import FlowRecorder, RecordedFlows
from cosim.traffic.tags import FlowTag


def new_recorder() -> FlowRecorder:
    """A FlowRecorder that names tags as cosim.traffic.tags.FlowTag does (lower case)."""
    return FlowRecorder({int(t): t.name.lower() for t in FlowTag})


def flow_table(recorder: FlowRecorder, cfg: Any, graph: Any) -> RecordedFlows:
    """The recorder's rows with the run's topology, backend and serving facts as metadata."""
    net = cfg.network
    cache = getattr(net, "cache", None)
    grid = None
    if cache is not None and cache.enabled and not cache.exact:
        grid = float(cache.grid_percent)
    topo = cfg.topology
    d = cfg.deployment
    meta = {
        "topology": {
            "name": topo.name,
            "graph": getattr(graph, "name", None),
            "num_gpus": int(topo.total_gpus),
            "gpus_per_node": int(topo.gpus_per_node),
            "digest": graph.digest() if graph is not None else None,
            "config": dataclasses.asdict(topo) if dataclasses.is_dataclass(topo) else None,
        },
        "backend": getattr(net, "backend", None),
        "backend_variant": backend_variant(net),
        "network_mode": getattr(net, "mode", "phase"),
        # the backend timed sizes rounded up to this grid (cosim.network.cache.bucket_sizes)
        "cache_grid_percent": grid,
        # the serving model adds this per transfer; completion_s does not include it
        "launch_us": float(d.comm.launch_us),
        "comm_model": d.comm.model,
        "deployment": d.kind,
        "model": getattr(cfg.model, "name", None),
        "hardware": getattr(cfg.hardware, "name", None),
        "workload": getattr(cfg.workload, "name", None),
        "num_requests": int(getattr(cfg.workload, "num_requests", 0) or 0),
        "seed": int(cfg.seed),
        "replicas_timed_on_first": True,
    }
    return recorder.recorded(meta)
