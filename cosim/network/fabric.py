"""A topology compiled to a directed graph of nodes and links: what backends simulate.

GPUs are nodes 0..num_gpus-1 (global GPU index = node * gpus_per_node + local rank);
switches (NVSwitch planes, leaves, spines) follow. Every physical cable is two directed
links. Routing is decided here, once, so the analytical and ns-3 backends put each flow on
the same links.

Node order: GPUs [0, G*N), one NVSwitch per server [.., +N), leaves (rail r of leaf group q is
leaf q*R + r, R = rails), spines. Link order (directed): GPU->NVSwitch (one per GPU),
NVSwitch->GPU, GPU->leaf (one per NIC, NIC k of GPU g at g*K + k), leaf->GPU, leaf->spine
(leaf*S + s), spine->leaf. A single-server topology has no NIC, leaf or spine.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cosim.network.flows import FlowBatch

# link_class values
NVLINK, NIC, FABRIC = 0, 1, 2
LINK_CLASS_NAMES = {NVLINK: "nvlink", NIC: "nic", FABRIC: "fabric"}
# node_kind values
GPU, NVSWITCH, LEAF, SPINE = 0, 1, 2, 3
NODE_KIND_NAMES = {GPU: "gpu", NVSWITCH: "nvswitch", LEAF: "leaf", SPINE: "spine"}


@dataclass(frozen=True)
class FabricGraph:
    name: str
    num_gpus: int
    node_kind: np.ndarray  # int8 per node
    link_src: np.ndarray  # int32 node id, one per directed link
    link_dst: np.ndarray  # int32 node id
    link_bps: np.ndarray  # float64 line rate, bits per second (integral values)
    link_latency_s: np.ndarray  # float64 propagation + switch latency of the hop
    link_class: np.ndarray  # int8: NVLINK | NIC | FABRIC
    link_efficiency: np.ndarray  # float64 in (0, 1]: achievable fraction of line rate
    # Routing: a callable (src, dst) arrays -> (indptr, link_ids) CSR of directed link ids
    # per flow, in path order. Set by the topology builder.
    router: object = field(default=None, repr=False, compare=False)
    gpus_per_node: int = 0  # GPUs per NVLink domain (0: unknown)
    # How the router chooses paths (algorithm and its parameters). Part of the digest: two
    # graphs with the same links but different routing give different results.
    routing: str = ""

    @property
    def num_nodes(self) -> int:
        return int(self.node_kind.shape[0])

    @property
    def num_links(self) -> int:
        return int(self.link_src.shape[0])

    @property
    def link_capacity_bps(self) -> np.ndarray:
        """Achievable rate of each directed link: line rate x efficiency, bits per second."""
        return self.link_bps * self.link_efficiency

    def routes(self, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Paths of flows src[i] -> dst[i] as CSR (indptr int64 len n+1, link ids int32)."""
        return self.router(np.asarray(src), np.asarray(dst))  # type: ignore[misc]

    def digest(self) -> str:
        """Content hash of the graph (nodes, links, rates, latencies, routing): a cache key part."""
        h = hashlib.sha256(self.name.encode())
        for a in (self.node_kind, self.link_src, self.link_dst, self.link_bps,
                  self.link_latency_s, self.link_class, self.link_efficiency):
            h.update(np.ascontiguousarray(a).tobytes())
        if self.routing:
            h.update(self.routing.encode())
        return h.hexdigest()[:16]

    def node_label(self, node: int) -> str:
        """Human name of a node, e.g. 'gpu12', 'nvswitch1', 'leaf3', 'spine0'."""
        kind = int(self.node_kind[node])
        first = int(np.argmax(self.node_kind == kind))
        return f"{NODE_KIND_NAMES[kind]}{node - first}"


def _mix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Deterministic 64-bit hash of (src, dst) pairs (splitmix64 finaliser), vectorised."""
    x = src.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    x ^= dst.astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
    x ^= x >> np.uint64(30)
    x *= np.uint64(0xBF58476D1CE4E5B9)
    x ^= x >> np.uint64(27)
    x *= np.uint64(0x94D049BB133111EB)
    x ^= x >> np.uint64(31)
    return x


@dataclass(frozen=True)
class RailRouter:
    """Deterministic routing on a rail-optimised two-tier fabric (see module docstring).

    - Same server: GPU -> NVSwitch -> GPU.
    - Other server: NIC k = hash(src, dst) mod nics_per_gpu. Same rail and same leaf:
      GPU -> leaf -> GPU. Otherwise GPU -> leaf -> spine -> leaf -> GPU with the spine chosen
      by hash(src, dst) mod spines (ECMP; every flow of a pair takes one path, as a
      per-flow hash in a switch would). With cross_rail="pxn", a flow to another rail first
      crosses NVLink to the source server's GPU on the destination's rail (NCCL PXN), then
      stays on that rail.
    """

    num_gpus: int
    gpus_per_node: int
    nics_per_gpu: int
    servers_per_leaf: int
    spines: int
    cross_rail: str  # spine | pxn

    @property
    def num_servers(self) -> int:
        return self.num_gpus // self.gpus_per_node

    @property
    def rails(self) -> int:
        return self.gpus_per_node * self.nics_per_gpu

    @property
    def num_leaves(self) -> int:
        if self.num_servers <= 1:
            return 0
        groups = -(-self.num_servers // self.servers_per_leaf)
        return self.rails * groups

    def describe(self) -> str:
        return (f"rail-ecmp-v1;nics_per_gpu={self.nics_per_gpu};servers_per_leaf="
                f"{self.servers_per_leaf};spines={self.spines};cross_rail={self.cross_rail}")

    # Link id bases (see module docstring for the layout).
    def _bases(self) -> tuple[int, int, int, int, int, int]:
        n, k = self.num_gpus, self.nics_per_gpu
        nv_up, nv_down = 0, n
        nic_up = 2 * n
        nic_down = nic_up + n * k
        f_up = nic_down + n * k
        f_down = f_up + self.num_leaves * self.spines
        return nv_up, nv_down, nic_up, nic_down, f_up, f_down

    def __call__(self, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        src = np.asarray(src, dtype=np.int64).ravel()
        dst = np.asarray(dst, dtype=np.int64).ravel()
        if src.shape != dst.shape:
            raise ValueError(f"routes: src and dst differ in length ({src.size} vs {dst.size})")
        n = src.size
        bad = (src < 0) | (src >= self.num_gpus) | (dst < 0) | (dst >= self.num_gpus)
        if bad.any():
            i = int(np.argmax(bad))
            raise ValueError(f"routes: flow {i} has endpoint outside GPUs 0..{self.num_gpus - 1} "
                             f"(src={src[i]}, dst={dst[i]})")
        same = src == dst
        if same.any():
            i = int(np.argmax(same))
            raise ValueError(f"routes: flow {i} has src == dst == {src[i]}; drop local flows")

        g = self.gpus_per_node
        nv_up, nv_down, nic_up, nic_down, f_up, f_down = self._bases()
        ns, nd = src // g, dst // g
        ls, ld = src % g, dst % g
        path = np.full((n, 6), -1, dtype=np.int64)
        intra = ns == nd
        path[intra, 0] = nv_up + src[intra]
        path[intra, 1] = nv_down + dst[intra]

        inter = ~intra
        if inter.any():
            s, d = src[inter], dst[inter]
            nsi, ndi, lsi, ldi = ns[inter], nd[inter], ls[inter], ld[inter]
            h = _mix(s, d)
            k = (h % np.uint64(self.nics_per_gpu)).astype(np.int64)
            spine = ((h >> np.uint64(20)) % np.uint64(self.spines)).astype(np.int64)
            kk = self.nics_per_gpu
            rail_d = ldi * kk + k
            rows = np.flatnonzero(inter)
            if self.cross_rail == "pxn":
                relay = (lsi != ldi)
                sender = np.where(relay, nsi * g + ldi, s)  # GPU whose NIC leaves the server
                path[rows[relay], 0] = nv_up + s[relay]
                path[rows[relay], 1] = nv_down + sender[relay]
                rail_s = rail_d
            else:
                sender = s
                rail_s = lsi * kk + k
            path[rows, 2] = nic_up + sender * kk + k
            leaf_s = (nsi // self.servers_per_leaf) * self.rails + rail_s
            leaf_d = (ndi // self.servers_per_leaf) * self.rails + rail_d
            via_spine = leaf_s != leaf_d
            r = rows[via_spine]
            path[r, 3] = f_up + leaf_s[via_spine] * self.spines + spine[via_spine]
            path[r, 4] = f_down + leaf_d[via_spine] * self.spines + spine[via_spine]
            path[rows, 5] = nic_down + d * kk + k

        used = path >= 0
        indptr = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(used.sum(axis=1), out=indptr[1:])
        return indptr, path[used].astype(np.int32)


def link_bytes(graph: FabricGraph, src: np.ndarray, dst: np.ndarray,
               size: np.ndarray) -> np.ndarray:
    """Bytes each directed link carries for flows (src, dst, size): float64 per link."""
    indptr, ids = graph.routes(src, dst)
    per_entry = np.repeat(np.asarray(size, dtype=np.float64), np.diff(indptr))
    return np.bincount(ids, weights=per_entry, minlength=graph.num_links)


def domain_bytes(src: np.ndarray, dst: np.ndarray, size: np.ndarray,
                 gpus_per_node: int) -> tuple[float, float]:
    """(bytes of the flows whose endpoints share an NVLink domain, bytes of those that cross
    servers): GPU g is in domain g // gpus_per_node. By endpoints, whatever the route."""
    g = max(int(gpus_per_node), 1)
    intra = (np.asarray(src) // g) == (np.asarray(dst) // g)
    sz = np.asarray(size, dtype=np.float64)
    return float(sz[intra].sum()), float(sz[~intra].sum())


def link_class_rates(graph: FabricGraph, flows: FlowBatch, latency_s: float) -> dict[str, Any]:
    """Per-GPU egress bytes over NVLink and NIC up-links, and GB/s over latency_s."""
    per_link = link_bytes(graph, flows.src, flows.dst, flows.size)
    out: dict[str, Any] = {}
    gpu_links = graph.link_src < graph.num_gpus  # GPU -> switch links
    for cls, name in ((NVLINK, "nvlink"), (NIC, "nic")):
        sel = gpu_links & (graph.link_class == cls)
        per_gpu = np.bincount(graph.link_src[sel], weights=per_link[sel],
                              minlength=graph.num_gpus)
        senders = per_gpu[per_gpu > 0]
        mean = float(senders.mean()) if senders.size else 0.0
        rate = mean / latency_s if latency_s > 0 else 0.0
        out[f"{name}_bytes_per_gpu"] = mean
        out[f"{name}_gb_s_per_gpu"] = rate / 1e9
        out[f"{name}_gbps_per_gpu"] = rate * 8 / 1e9
        out[f"{name}_gpus"] = int(senders.size)
    return out
