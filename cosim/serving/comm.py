"""Communication time inside one iteration of an instance (the CommModel interface).

An iteration of T tokens (decode + prefill, summed over the instance's attention-DP ranks)
moves, per MoE layer, an EP dispatch (each token to the GPUs holding its top-k experts) and a
combine (the expert outputs back), and, when attention is tensor parallel, one all-reduce of
the activations per attention layer (plus one per dense MLP layer). Every model implements

    time_s(tokens) -> seconds of communication of one iteration of `tokens` tokens
    stats() -> dict of facts for summary.json

Implementations:
- :class:`NoComm`: free communication (compute-only studies, closed-form tests).
- :class:`AlphaBetaComm`: per phase `launch + hop latencies + bytes / bandwidth` on the
  bottleneck link class (NVLink inside a server, NICs across), from the topology figures.
- :class:`FabricComm` (cosim.serving.fabric_comm): the phases' flows timed by the network
  backend (analytical or ns-3) behind the result cache.

Communication is exposed (not overlapped with compute) in the chunked deployment: the
iteration time is compute + communication. Overlap (two-batch overlap, AFD ping-pong) is the
job of cosim.timeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cosim.dtypes import dtype_bytes
from cosim.model.layout import ParallelLayout

# FP8 dispatch carries one FP32 scale per 128 values (DeepEP's FP8 dispatch format).
FP8_SCALE_BYTES_PER_128 = 4


@dataclass(frozen=True)
class TrafficShape:
    """What the communication of one iteration depends on, read from the ModelSpec."""

    hidden: int
    num_layers: int  # attention layers (TP all-reduce after each when tp > 1)
    num_moe_layers: int  # EP dispatch + combine each
    num_dense_layers: int  # dense MLP layers (TP all-reduce when tp > 1)
    num_experts: int
    topk: int

    @classmethod
    def from_spec(cls, spec: Any) -> TrafficShape:
        moe = spec.moe
        return cls(hidden=int(spec.hidden_size), num_layers=int(spec.num_attention_layers),
                   num_moe_layers=int(spec.num_moe_layers) if moe else 0,
                   num_dense_layers=int(spec.num_dense_layers),
                   num_experts=int(moe.num_experts) if moe else 0,
                   topk=int(moe.topk) if moe else 0)


def activation_bytes(dtype: str, hidden: int) -> float:
    """Bytes of one token's activation vector in `dtype` (FP8 with its block scales)."""
    b = dtype_bytes(dtype) * hidden
    if dtype == "fp8":
        b += math.ceil(hidden / 128) * FP8_SCALE_BYTES_PER_128
    return b


def expected_remote_ranks(ep: int, topk: int) -> float:
    """Mean number of *other* EP ranks a token's top-k experts land on (uniform routing).

    Each of the ep-1 other ranks holds 1/ep of the experts and is hit unless all k picks miss
    it: (ep - 1) * (1 - (1 - 1/ep)^k). Tokens are sent once per destination GPU, as DeepEP does.
    """
    if ep <= 1 or topk <= 0:
        return 0.0
    return (ep - 1) * (1.0 - (1.0 - 1.0 / ep) ** topk)


class NoComm:
    """Free communication."""

    name = "none"

    def time_s(self, tokens: int) -> float:
        return 0.0

    def stats(self) -> dict:
        return {"comm_model": self.name}


@dataclass(frozen=True)
class LinkFigures:
    """Per-GPU, per-direction link classes an instance's traffic uses."""

    nvlink_bytes_s: float  # achievable NVLink bandwidth per GPU per direction
    nvlink_hop_s: float  # GPU -> NVSwitch -> GPU latency (two hops)
    nic_bytes_s: float  # achievable scale-out bandwidth per GPU (all its NICs)
    nic_path_s: float  # latency GPU -> NIC -> leaf (-> spine -> leaf) -> NIC -> GPU
    gpus_per_node: int

    @classmethod
    def from_config(cls, topology: Any | None, hardware: Any, server: int = 0) -> LinkFigures:
        """From the topology group (preferred) or, without one, the hardware group's figures.
        A mixed-kind topology (topology.server_groups): the figures of server `server`."""
        if topology is not None and getattr(topology, "nvlink", None) is not None:
            nv, nic, fab = topology.nvlink, topology.nic, topology.fabric
            if getattr(topology, "server_groups", None):
                _, nv, nic = topology.server_figures()[server]
            spine_hops = 2 if topology.total_nodes > fab.servers_per_leaf else 0
            return cls(
                nvlink_bytes_s=float(nv.gb_s) * 1e9 * float(nv.efficiency),
                nvlink_hop_s=2 * float(nv.latency_ns) * 1e-9,
                nic_bytes_s=float(nic.gbps) / 8 * 1e9 * int(nic.per_gpu) * float(nic.efficiency),
                nic_path_s=(2 * float(nic.latency_ns) + spine_hops * float(fab.latency_ns)) * 1e-9,
                gpus_per_node=int(topology.gpus_per_node),
            )
        # No topology: the hardware datasheet figures at full line rate, no latency figures.
        return cls(
            nvlink_bytes_s=float(hardware.nvlink_gb_s) * 1e9,
            nvlink_hop_s=0.0,
            nic_bytes_s=float(hardware.nic_gbps) / 8 * 1e9 * int(hardware.nics_per_gpu),
            nic_path_s=0.0,
            gpus_per_node=int(hardware.gpus_per_node),
        )


class AlphaBetaComm:
    """Alpha-beta estimate: each phase costs launch + latency + bytes / bandwidth.

    An instance of G GPUs spans ceil(G / gpus_per_node) servers. A phase's bytes per GPU are
    split by destination: the share to GPUs of the same server crosses NVLink, the rest the
    NICs; the phase takes as long as the slower of the two (they run concurrently).

    - EP dispatch / combine (per MoE layer): each GPU holds T/G tokens and sends each to the
      expected number of other EP ranks its top-k experts live on (:func:`expected_remote_ranks`),
      times moe_tp (every tensor-parallel shard of an expert gets the token).
    - TP all-reduce (per attention layer and per dense MLP layer, tp > 1): ring all-reduce of
      the TP group's T/dp tokens: 2 (tp-1)/tp x bytes per GPU, 2 (tp-1) latency steps.
    """

    name = "alpha_beta"

    def __init__(self, layout: ParallelLayout, shape: TrafficShape, links: LinkFigures,
                 dispatch_dtype: str = "fp8", combine_dtype: str = "bfloat16",
                 launch_us: float = 5.0, activation_dtype: str = "bfloat16",
                 kernel_mode: str = "normal", ll_launch_us: float = 25.5,
                 ll_max_tokens: int = 128):
        self.layout = layout
        self.shape = shape
        self.links = links
        self.launch_s = launch_us * 1e-6
        g = layout.attention_gpus
        self.gpus = g
        gpn = max(1, min(links.gpus_per_node, g))
        # Destinations of an EP rank: (gpn - 1) others on its server, g - gpn elsewhere.
        ep = layout.ep
        ep_same = min(ep, gpn) - 1
        self.ep_local_frac = ep_same / (ep - 1) if ep > 1 else 1.0
        self.dispatch_b = activation_bytes(dispatch_dtype, shape.hidden)
        self.combine_b = activation_bytes(combine_dtype, shape.hidden)
        self.ar_b = activation_bytes(activation_dtype, shape.hidden)
        self.remote = expected_remote_ranks(ep, shape.topk) * layout.moe_tp
        # network.ep_kernel_mode (docs/network.md): low-latency kernels send one message per
        # (token, expert) not on the token's GPU - k (ep - 1) / ep copies under uniform
        # routing - each dispatch message with DeepEP's 16-byte header, in calls of at most
        # ll_max_tokens tokens per rank, each call paying ll_launch_s.
        self.kernel_mode = kernel_mode
        self.phase_aware = kernel_mode == "auto"
        self.ll_remote = (shape.topk * (ep - 1) / ep if ep > 1 else 0.0) * layout.moe_tp
        self.ll_dispatch_b = self.dispatch_b + 16
        self.ll_launch_s = ll_launch_us * 1e-6
        self.ll_max_tokens = int(ll_max_tokens)
        tp = layout.tp
        tp_same = min(tp, gpn)
        self.tp_crosses_nodes = tp_same < tp
        self.phases = 0

    def _phase_s(self, bytes_per_gpu: float, local_frac: float, launch_s: float | None = None,
                 calls: int = 1) -> float:
        """launch + latency + bytes / bandwidth of one phase (`calls` kernel calls sharing
        the bytes: each pays the launch and the latency)."""
        if calls != 1:
            return calls * self._phase_s(bytes_per_gpu / calls, local_frac, launch_s)
        lk = self.links
        t_nv = bytes_per_gpu * local_frac / lk.nvlink_bytes_s + lk.nvlink_hop_s if local_frac > 0 else 0.0
        remote = bytes_per_gpu * (1.0 - local_frac)
        t_nic = 0.0
        if remote > 0:
            if lk.nic_bytes_s <= 0:
                raise ValueError("the instance spans servers but the topology has no NIC bandwidth")
            t_nic = remote / lk.nic_bytes_s + lk.nic_path_s
        return (self.launch_s if launch_s is None else launch_s) + max(t_nv, t_nic)

    def breakdown(self, tokens: int, decode_only: bool = False) -> dict[str, float]:
        """Seconds per pattern for one iteration of `tokens` tokens (all layers)."""
        out = {"ep_dispatch": 0.0, "ep_combine": 0.0, "tp_allreduce": 0.0}
        if tokens <= 0:
            return out
        s, lay = self.shape, self.layout
        ll = self.kernel_mode == "low_latency" or (self.phase_aware and decode_only)
        if ll and lay.ep > 1 and s.num_moe_layers:
            per_gpu_tokens = tokens / self.gpus
            calls = max(1, math.ceil(per_gpu_tokens / self.ll_max_tokens))
            out["ep_dispatch"] = s.num_moe_layers * self._phase_s(
                per_gpu_tokens * self.ll_remote * self.ll_dispatch_b, self.ep_local_frac,
                self.ll_launch_s, calls)
            out["ep_combine"] = s.num_moe_layers * self._phase_s(
                per_gpu_tokens * self.ll_remote * self.combine_b, self.ep_local_frac,
                self.ll_launch_s, calls)
        elif lay.ep > 1 and s.num_moe_layers:
            per_gpu_tokens = tokens / self.gpus
            out["ep_dispatch"] = s.num_moe_layers * self._phase_s(
                per_gpu_tokens * self.remote * self.dispatch_b, self.ep_local_frac)
            out["ep_combine"] = s.num_moe_layers * self._phase_s(
                per_gpu_tokens * self.remote * self.combine_b, self.ep_local_frac)
        if lay.tp > 1:
            tp = lay.tp
            group_tokens = tokens / lay.dp
            per_gpu = 2 * (tp - 1) / tp * group_tokens * self.ar_b
            lk = self.links
            if self.tp_crosses_nodes:
                step = per_gpu / lk.nic_bytes_s + 2 * (tp - 1) * lk.nic_path_s
            else:
                step = per_gpu / lk.nvlink_bytes_s + 2 * (tp - 1) * lk.nvlink_hop_s
            out["tp_allreduce"] = (s.num_layers + s.num_dense_layers) * (self.launch_s + step)
        return out

    def time_s(self, tokens: int, decode_only: bool = False) -> float:
        self.phases += 1
        return sum(self.breakdown(tokens, decode_only).values())

    def link_bytes(self, tokens: int, decode_only: bool = False) -> dict[str, tuple[float, float]]:
        """Bytes of one iteration per traffic class, (NVLink, scale-out), all layers, from the
        same expectations `breakdown` prices (decode_only is FabricComm's kernel choice; the
        alpha-beta model has one byte count): EP bytes split by `ep_local_frac`; a TP ring
        inside one server on NVLink, across servers with one edge per server on the NICs."""
        out: dict[str, tuple[float, float]] = {}
        if tokens <= 0:
            return out
        s, lay = self.shape, self.layout
        if lay.ep > 1 and s.num_moe_layers:
            f = self.ep_local_frac
            for name, b in (("ep_dispatch", self.dispatch_b), ("ep_combine", self.combine_b)):
                total = tokens * self.remote * b * s.num_moe_layers
                out[name] = (total * f, total * (1.0 - f))
        if lay.tp > 1:
            tp = lay.tp
            total = (2 * (tp - 1) / tp * tokens / lay.dp * self.ar_b * tp * lay.dp
                     * (s.num_layers + s.num_dense_layers))
            gpn = max(1, self.links.gpus_per_node)
            servers = -(-tp // gpn)
            cross = servers / tp if servers > 1 else 0.0
            out["allreduce"] = (total * (1.0 - cross), total * cross)
        return out

    def stats(self) -> dict:
        return {"comm_model": self.name}
