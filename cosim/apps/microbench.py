"""cosim-microbench: time one communication pattern on a network backend, JSON out.

    cosim-microbench network=analytical topology=dgx_h800_ib topology.num_nodes=8 \
        pattern=ep_dispatch tokens=4096 hidden=7168 topk=8 dtype=fp8 ep=64

Bandwidth figures follow DeepEP's convention: bytes each GPU sends over a link class
(its NVLink up-link to the NVSwitch, or its NIC up-link to the leaf) divided by the
completion time of the whole pattern, averaged over the GPUs that send on that class.
Reported both in GB/s (1e9 bytes/s, as DeepEP and NCCL print) and Gb/s (1e9 bits/s).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from omegaconf import MISSING, OmegaConf

from cosim.config.apps import app_schema
from cosim.config.network import NetworkConfig
from cosim.config.topology import TopologyConfig
from cosim.dtypes import DType
from cosim.errors import ConfigError, require
from cosim.network.backend import make_backend
from cosim.network.fabric import FabricGraph, link_class_rates
from cosim.network.flows import FlowBatch
from cosim.network.topology import build_fabric
from cosim.traffic.all_to_all import all_to_all_flows
from cosim.traffic.allreduce import nvls_allreduce_flows, rail_rings, ring_allreduce_flows
from cosim.traffic.ep_alltoall import deepep_bytes_per_gpu, ep_flows, expert_placement, token_bytes
from cosim.traffic.expert_routing import route_tokens
from cosim.traffic.kv_transfer import kv_transfer_flows
from cosim.traffic.m2n import m2n_flows

PATTERNS = ("ep_dispatch", "ep_combine", "all_to_all", "m2n", "allreduce", "kv_transfer")
_DTYPE_ALIASES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp8": "fp8", "fp4": "fp4"}


@app_schema("microbench_schema")
@dataclass
class MicrobenchConfig:
    topology: TopologyConfig = MISSING
    network: NetworkConfig = MISSING
    pattern: str = "ep_dispatch"  # ep_dispatch|ep_combine|all_to_all|m2n|allreduce|kv_transfer
    # Tokens per GPU (EP), per attention GPU (m2n), per request (kv_transfer).
    tokens: int = 4096
    hidden: int = 7168
    topk: int = 8
    num_experts: int = 256
    # Group-limited routing: experts in num_groups equal groups, a token uses topk_groups of
    # them. 0 = one group per server of the EP group, as DeepEP's benchmark routes (a token
    # reaches at most topk_groups nodes); DeepSeek-V3 itself has 8 groups.
    num_groups: int = 0
    topk_groups: int = 4
    dtype: str | None = None  # fp8|bf16|fp4; null: fp8 for dispatch/a2f, bf16 otherwise
    ep: int = 0  # GPUs in the EP group (first ep GPUs); 0: all GPUs of the topology
    dedup: str = "node"  # expert (flat) | gpu | node (DeepEP normal internode)
    imbalance: float = 0.0  # Zipf exponent of expert popularity (0 = uniform)
    seed: int = 0
    # all_to_all: bytes per pair (0: each GPU sends tokens*hidden*dtype split evenly over
    # the others); allreduce: message size (0: tokens*hidden*dtype)
    bytes: int = 0
    m2n_attn: int = 0  # m2n: attention GPUs (the first ones; 0 = half); FFN GPUs follow
    m2n_mode: str = "topk"  # topk | split | broadcast
    m2n_direction: str = "a2f"  # a2f | f2a
    allreduce: str = "ring"  # ring | nvls
    kv_bytes_per_token: int = 70272  # DeepSeek-V3 MLA KV per token (BF16, 61 layers)
    kv_layers: int = 1
    kv_requests: int = 0  # 0: one request per GPU of the first half to the second half
    repeat: int = 1  # run the batch this many times (cache / warm-up studies)

    def validate(self) -> None:
        require(self.pattern in PATTERNS, "pattern",
                f"unknown pattern {self.pattern!r}; use one of {', '.join(PATTERNS)}")
        for name in ("tokens", "hidden", "topk", "num_experts", "repeat", "kv_layers"):
            require(getattr(self, name) >= 1, name, f"must be >= 1, got {getattr(self, name)}")
        require(self.dtype is None or self.dtype in _DTYPE_ALIASES, "dtype",
                f"unknown dtype {self.dtype!r}; use fp8, bf16 or fp4")
        require(self.dedup in ("expert", "gpu", "node"), "dedup",
                f"unknown {self.dedup!r}; use expert, gpu or node")
        require(self.imbalance >= 0, "imbalance", f"must be >= 0, got {self.imbalance}")
        require(self.m2n_mode in ("topk", "split", "broadcast"), "m2n_mode",
                f"unknown {self.m2n_mode!r}; use topk, split or broadcast")
        require(self.m2n_direction in ("a2f", "f2a"), "m2n_direction",
                f"unknown {self.m2n_direction!r}; use a2f or f2a")
        require(self.allreduce in ("ring", "nvls"), "allreduce",
                f"unknown {self.allreduce!r}; use ring or nvls")


def _dtype(cfg: MicrobenchConfig, default: str) -> DType:
    return DType(_DTYPE_ALIASES[cfg.dtype or default])


def _routing_args(cfg: MicrobenchConfig, ep: int, gpus_per_node: int) -> dict[str, Any]:
    groups = cfg.num_groups or max(1, -(-ep // gpus_per_node))
    require(cfg.num_experts % groups == 0, "num_groups",
            f"{groups} groups do not divide num_experts={cfg.num_experts}")
    return {"imbalance": cfg.imbalance, "seed": cfg.seed, "num_groups": groups,
            "topk_groups": min(cfg.topk_groups, groups)}


def deepep_figures(cfg: MicrobenchConfig, graph: FabricGraph, latency_s: float) -> dict:
    """EP patterns: GB/s per GPU counted as DeepEP's benchmark counts bytes (see
    cosim.traffic.ep_alltoall.deepep_bytes_per_gpu), for comparison with its tables."""
    ep = cfg.ep or graph.num_gpus
    gpus = np.arange(ep)
    args = _routing_args(cfg, ep, graph.gpus_per_node)
    routing = route_tokens(cfg.tokens * ep, cfg.num_experts, cfg.topk, **args)
    dispatch = cfg.pattern == "ep_dispatch"
    bpt = token_bytes(cfg.hidden, _dtype(cfg, "fp8" if dispatch else "bf16"))
    rdma, nvl = deepep_bytes_per_gpu(routing, np.repeat(gpus, cfg.tokens),
                                     expert_placement(cfg.num_experts, gpus),
                                     graph.gpus_per_node, bpt)
    return {"deepep_rdma_gb_s_per_gpu": rdma / latency_s / 1e9 if ep > graph.gpus_per_node else None,
            "deepep_nvl_gb_s_per_gpu": nvl / latency_s / 1e9}


def pattern_flows(cfg: MicrobenchConfig, graph: FabricGraph) -> FlowBatch:
    """The flows of cfg.pattern on graph's GPUs."""
    n = graph.num_gpus
    g = graph.gpus_per_node
    ep = cfg.ep or n
    require(1 <= ep <= n, "ep", f"must be in [1, {n}] (GPUs of topology {graph.name}); "
            "grow the fabric with topology.num_nodes")
    gpus = np.arange(ep)
    if cfg.pattern in ("ep_dispatch", "ep_combine"):
        require(ep >= 2, "ep", "needs >= 2 GPUs")
        # any ep up to the experts: E mod ep GPUs hold one more (cosim.experts.place_experts)
        require(cfg.num_experts >= ep, "num_experts",
                f"{cfg.num_experts} experts cannot fill ep={ep} GPUs")
        dispatch = cfg.pattern == "ep_dispatch"
        return ep_flows(cfg.tokens, cfg.hidden, cfg.topk, cfg.num_experts, gpus, g,
                        direction="dispatch" if dispatch else "combine",
                        dtype=_dtype(cfg, "fp8" if dispatch else "bf16"), mode=cfg.dedup,
                        **_routing_args(cfg, ep, g))
    msg = cfg.bytes or cfg.tokens * token_bytes(cfg.hidden, _dtype(cfg, "bf16"))
    if cfg.pattern == "all_to_all":
        return all_to_all_flows(gpus, cfg.bytes or cfg.tokens * token_bytes(
            cfg.hidden, _dtype(cfg, "bf16")) // max(ep - 1, 1))
    if cfg.pattern == "allreduce":
        if cfg.allreduce == "nvls":
            return nvls_allreduce_flows(gpus, msg, g)
        whole = ep % g == 0 and ep > g
        rings = rail_rings(gpus, g, g) if whole else [gpus]
        return ring_allreduce_flows(msg, rings)
    if cfg.pattern == "m2n":
        m = cfg.m2n_attn or ep // 2
        require(1 <= m < ep, "m2n_attn", f"must leave FFN GPUs: 1 <= m2n_attn < {ep}")
        ffn = gpus[m:]
        experts = cfg.num_experts
        require(cfg.m2n_mode != "topk" or experts % ffn.size == 0, "num_experts",
                f"{experts} is not a multiple of the {ffn.size} FFN GPUs")
        a2f = cfg.m2n_direction == "a2f"
        bpt = token_bytes(cfg.hidden, _dtype(cfg, "fp8" if a2f else "bf16"))
        return m2n_flows(gpus[:m], ffn, cfg.tokens, bpt, direction=cfg.m2n_direction,
                         mode=cfg.m2n_mode, topk=cfg.topk, num_experts=experts,
                         imbalance=cfg.imbalance, seed=cfg.seed)
    # kv_transfer: GPU i of the first half (prefill) -> GPU i of the second half (decode)
    half = ep // 2
    require(half >= 1, "ep", "kv_transfer needs >= 2 GPUs")
    reqs = cfg.kv_requests or half
    src = np.arange(reqs) % half
    return kv_transfer_flows(src, src + half, np.full(reqs, cfg.tokens),
                             cfg.kv_bytes_per_token, layers=cfg.kv_layers)


def run_microbench(cfg: MicrobenchConfig) -> dict[str, Any]:
    """Build fabric, flows and backend from cfg, time the pattern, return the figures."""
    cfg.validate()
    cfg.topology.validate()
    cfg.network.validate()
    graph = build_fabric(cfg.topology)
    flows = pattern_flows(cfg, graph)
    if len(flows) == 0:
        raise ConfigError("pattern", f"{cfg.pattern} on {graph.num_gpus} GPUs produces no flows")
    backend = make_backend(cfg.network, graph)
    try:
        walls = []
        for _ in range(cfg.repeat):
            t0 = time.perf_counter()
            result = backend.simulate(flows)
            walls.append(time.perf_counter() - t0)
        cache_stats = backend.stats() if hasattr(backend, "stats") else None
    finally:
        backend.close()
    latency = result.makespan - float(flows.start.min())
    out: dict[str, Any] = {
        "pattern": cfg.pattern,
        "backend": cfg.network.backend,
        "topology": graph.name,
        "gpus": int(np.unique(np.concatenate([flows.src, flows.dst])).size),
        "flows": len(flows),
        "bytes_total": int(flows.size.sum()),
        "latency_s": latency,
        **link_class_rates(graph, flows, latency),
        "wall_s": walls[0],
        "wall_s_runs": walls,
        "backend_stats": {k: v for k, v in result.stats.items()
                          if isinstance(v, (int, float, str, bool)) or v is None},
    }
    if cfg.pattern in ("ep_dispatch", "ep_combine"):
        out.update(deepep_figures(cfg, graph, latency))
    for key in ("events", "packet_hops"):
        if key in result.stats:
            out[key] = result.stats[key]
    if cache_stats is not None:
        out["cache"] = cache_stats
    return out


def microbench_task(cfg: Any) -> dict[str, Any]:
    """Hydra task of cosim-microbench: print the figures as JSON and return them."""
    obj = OmegaConf.to_object(cfg) if OmegaConf.is_config(cfg) else cfg
    out = run_microbench(obj)
    print(json.dumps(out, indent=2))
    return out
