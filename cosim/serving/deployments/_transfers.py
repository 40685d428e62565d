"""How long a batch of flows takes, for the disaggregated deployments (pd, afd, pd_afd),
and their common base class (roles and options checked, one TransferTimer over all GPUs).

`deployment.comm.model` picks the model (as for chunked's in-instance communication):
- `none`: free communication (compute-only studies, closed-form tests);
- `alpha_beta`: per flow, launch + path latency + the bytes its source sends (or its
  destination receives) on the flow's link class over that class's bandwidth, from the
  topology figures (cosim.serving.comm.LinkFigures) - no backend;
- `fabric` / `auto` with `network.backend` analytical or ns3: the flows go to the network
  backend (behind the result cache) built over the topology's fabric; each transfer adds
  `deployment.comm.launch_us` (launch and synchronisation, as chunked's FabricComm does per phase).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cosim.config.deployment_disagg import parse_options, validate_disagg
from cosim.errors import ConfigError
from cosim.network.flows import FlowBatch, FlowResult, NetworkBackend
from cosim.serving.deployments.base import Deployment, SimContext


class TransferTimer:
    """Completion times of FlowBatches under the configured communication model."""

    def __init__(self, cfg: Any, num_gpus: int, shared: dict | None = None):
        d = cfg.deployment.comm
        backend = getattr(cfg.network, "backend", "alpha_beta")
        model = d.model
        if model == "auto":
            model = "alpha_beta" if backend == "alpha_beta" else "fabric"
        self.model = model
        self.mode = getattr(cfg.network, "mode", "phase")
        self.launch_s = float(d.launch_us) * 1e-6
        self.backend: NetworkBackend | None = None
        self._owns_backend = False
        from cosim.serving.network_lookups import run_lookups

        self.lookups = run_lookups(shared)  # the run's counters (a batch to the backend is one)
        self.calls = 0
        self.flows = 0
        # output.flows (cosim.serving.flow_record): the run's recorder, and the backend's own
        # answer (no launch) for the last batch, which a caller may record
        self.recorder = shared.get("flow_recorder") if shared is not None else None
        self.last_raw: tuple[FlowBatch, np.ndarray] | None = None
        topo = getattr(cfg, "topology", None)
        if topo is not None and hasattr(topo, "total_gpus") and num_gpus > topo.total_gpus:
            raise ConfigError("topology.num_nodes",
                              f"deployment {cfg.deployment.kind!r} needs {num_gpus} GPUs, the "
                              f"topology has {topo.total_gpus} ({topo.total_nodes} nodes of "
                              f"{topo.gpus_per_node})")
        if model == "fabric":
            if backend not in ("analytical", "ns3"):
                raise ConfigError("deployment.comm.model",
                                  f"fabric needs network.backend analytical or ns3, got {backend!r}")
            from cosim.network.backend import make_backend
            from cosim.network.topology import build_fabric

            # One backend per run (an ns-3 server is a process): share the run's
            # (SimContext.shared; run_simulation closes it), else own one (closed in close()).
            self._owns_backend = shared is None
            store = {} if shared is None else shared
            if "backend" not in store:
                store["graph"] = build_fabric(topo)
                store["backend"] = make_backend(cfg.network, store["graph"])
            self.graph = store["graph"]
            self.backend = store["backend"]
        elif model == "alpha_beta":
            from cosim.serving.comm import LinkFigures

            self.links = LinkFigures.from_config(topo, cfg.hardware)
            # a mixed-kind topology: per server (NVLink bandwidth and hop, NIC bandwidth and
            # latency to the leaf), so that a flow sees its own servers' links
            self._per_server: np.ndarray | None = None
            if getattr(topo, "server_groups", None):
                figs = [LinkFigures.from_config(topo, cfg.hardware, s)
                        for s in range(topo.total_nodes)]
                self._per_server = np.array([(f.nvlink_bytes_s, f.nvlink_hop_s, f.nic_bytes_s,
                                              f.nic_path_s) for f in figs])
        elif model != "none":
            raise ConfigError("deployment.comm.model", f"unknown comm model {model!r}")

    @property
    def free(self) -> bool:
        return self.model == "none"

    def finish(self, flows: FlowBatch, record: tuple | None = None) -> np.ndarray:
        """Per-flow completion time (seconds, origin of flows.start).

        record = (key, traffic class): with output.flows, keep the backend's answer under key.
        """
        n = len(flows)
        if n == 0:
            return np.zeros(0)
        self.calls += 1
        self.flows += n
        if self.model == "none":
            return flows.start.astype(np.float64).copy()
        if self.backend is not None:
            # a transfer is a collective launch (kernel + synchronisation) before its bytes move
            raw = self.lookups.simulate(self.backend, flows).finish
            if self.recorder is not None:
                self.last_raw = (flows, raw)
                if record is not None:
                    self.recorder.pattern(record[0], flows, raw, record[1], self.backend.name)
            return raw + self.launch_s
        return self._alpha_beta(flows)

    def simulate(self, flows: FlowBatch) -> FlowResult:
        """The NetworkBackend interface (cosim.timeline couples with this, launch included)."""
        return FlowResult(finish=self.finish(flows), stats={"transfer_model": self.model})

    @property
    def name(self) -> str:
        return self.model

    def makespan(self, flows: FlowBatch) -> float:
        """Time from the batch's time zero to its last byte."""
        f = self.finish(flows)
        return float(f.max()) if f.size else 0.0

    def _alpha_beta(self, flows: FlowBatch) -> np.ndarray:
        lk = self.links
        gpn = max(int(lk.gpus_per_node), 1)
        inter = (flows.src // gpn) != (flows.dst // gpn)
        per = self._per_server
        if per is None:
            bw = np.where(inter, lk.nic_bytes_s, lk.nvlink_bytes_s)
            lat = np.where(inter, lk.nic_path_s, lk.nvlink_hop_s)
        else:  # mixed kinds: the slower end's NIC; half of each end's NIC path latency
            s, d = per[flows.src // gpn], per[flows.dst // gpn]
            bw = np.where(inter, np.minimum(s[:, 2], d[:, 2]), s[:, 0])
            lat = np.where(inter, (s[:, 3] + d[:, 3]) / 2, s[:, 1])
        # Flows from one GPU (or into one GPU) on one link class share its bandwidth.
        size = flows.size.astype(np.float64)
        n_gpu = int(max(flows.src.max(), flows.dst.max())) + 1
        out_b = np.zeros((n_gpu, 2))
        in_b = np.zeros((n_gpu, 2))
        cls = inter.astype(np.int64)
        np.add.at(out_b, (flows.src, cls), size)
        np.add.at(in_b, (flows.dst, cls), size)
        share = np.maximum(out_b[flows.src, cls], in_b[flows.dst, cls])
        return flows.start + self.launch_s + lat + share / bw

    def stats(self) -> dict:
        """Facts for summary.json's `comm` (the cache hits are in network_cache_*, for the run)."""
        return {"transfer_model": self.model, "transfer_batches": self.calls,
                "transfer_flows": self.flows}

    def close(self) -> None:
        if self.backend is not None and self._owns_backend:
            self.backend.close()
        self.backend = None


class TransferStatsView:
    """A TransferTimer's facts for summary.json's `comm` entry, as a cost-model-like object."""

    def __init__(self, timer: TransferTimer):
        self.comm = timer

    def source_seconds(self) -> dict[str, float]:
        return {}

    def stats(self) -> dict:
        return {}


class DisaggDeployment(Deployment):
    """Base of the kinds whose roles exchange flows (pd, afd, pd_afd).

    `__init__` checks deployment.roles and parses deployment.options (`self.opts`); the
    subclass sizes itself and calls `self.start_transfers(num_gpus)`; `close()` releases the
    timer's backend.
    """

    def __init__(self, ctx: SimContext):
        super().__init__(ctx)
        d = ctx.cfg.deployment
        validate_disagg(d, "deployment")
        self.opts = parse_options(self.kind, d.options, "deployment.options")
        self.timer: TransferTimer | None = None

    def start_transfers(self, num_gpus: int) -> TransferTimer:
        """Record the deployment's GPU count and build its TransferTimer over them."""
        self.num_gpus = num_gpus
        self.timer = TransferTimer(self.ctx.cfg, num_gpus, self.ctx.shared)
        return self.timer

    def close(self) -> None:
        if self.timer is not None:
            self.timer.close()
