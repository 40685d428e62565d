"""A topology compiled to a directed graph of nodes and links: what backends simulate.

GPUs are nodes 0..num_gpus-1 (global GPU index = node * gpus_per_node + local rank);
switches (NVSwitch planes, leaves, spines) follow. Every physical cable is two directed
links. Routing is decided here, once, so the analytical and ns-3 backends put each flow on
the same links.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

# link_class values
NVLINK, NIC, FABRIC = 0, 1, 2
LINK_CLASS_NAMES = {NVLINK: "nvlink", NIC: "nic", FABRIC: "fabric"}
# node_kind values
GPU, NVSWITCH, LEAF, SPINE = 0, 1, 2, 3


@dataclass(frozen=True)
class FabricGraph:
    name: str
    num_gpus: int
    node_kind: np.ndarray  # int8 per node
    link_src: np.ndarray  # int32 node id, one per directed link
    link_dst: np.ndarray  # int32 node id
    link_bps: np.ndarray  # float64 line rate, bits per second
    link_latency_s: np.ndarray  # float64 propagation + switch latency of the hop
    link_class: np.ndarray  # int8: NVLINK | NIC | FABRIC
    link_efficiency: np.ndarray  # float64 in (0, 1]: achievable fraction of line rate
    # Routing: a callable (src, dst, flow_index) arrays -> (indptr, link_ids) CSR of
    # directed link ids per flow, in path order. Set by the topology builder.
    router: object = field(default=None, repr=False, compare=False)

    @property
    def num_nodes(self) -> int:
        return int(self.node_kind.shape[0])

    @property
    def num_links(self) -> int:
        return int(self.link_src.shape[0])

    def routes(self, src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Paths of flows src[i] -> dst[i] as CSR (indptr int64 len n+1, link ids int32)."""
        return self.router(np.asarray(src), np.asarray(dst))  # type: ignore[misc]

    def digest(self) -> str:
        """Content hash of the graph (nodes, links, rates, latencies): a cache key part."""
        h = hashlib.sha256(self.name.encode())
        for a in (self.node_kind, self.link_src, self.link_dst, self.link_bps,
                  self.link_latency_s, self.link_class, self.link_efficiency):
            h.update(np.ascontiguousarray(a).tobytes())
        return h.hexdigest()[:16]
