"""Small hand-built FabricGraphs (a star, a two-level tree) for the ns-3 tests."""

from __future__ import annotations

from collections import deque

import numpy as np

from cosim.network.fabric import FABRIC, GPU, LEAF, NIC, SPINE, FabricGraph


class TableRouter:
    """Shortest paths (BFS, lowest link id first) between every GPU pair, as CSR rows."""

    def __init__(self, num_nodes: int, link_src: np.ndarray, link_dst: np.ndarray, gpus: int):
        out = [[] for _ in range(num_nodes)]
        for lid, (s, d) in enumerate(zip(link_src.tolist(), link_dst.tolist(), strict=True)):
            out[s].append((d, lid))
        self.paths = {}
        for s in range(gpus):
            prev = {s: None}
            q = deque([s])
            while q:
                u = q.popleft()
                for v, lid in out[u]:
                    if v not in prev:
                        prev[v] = (u, lid)
                        q.append(v)
            for d in range(gpus):
                path, v = [], d
                while prev.get(v) is not None:
                    u, lid = prev[v]
                    path.append(lid)
                    v = u
                self.paths[s, d] = path[::-1]

    def __call__(self, src, dst):
        rows = [self.paths[int(s), int(d)] for s, d in zip(src, dst, strict=True)]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        indptr[1:] = np.cumsum([len(r) for r in rows])
        links = np.array([x for r in rows for x in r], dtype=np.int32)
        return indptr, links


def _graph(name, num_gpus, kinds, pairs, bps, latency_s, klass):
    src, dst = [], []
    for a, b in pairs:  # each cable is two directed links
        src += [a, b]
        dst += [b, a]
    src, dst = np.array(src, np.int32), np.array(dst, np.int32)
    n = src.shape[0]
    return FabricGraph(
        name=name, num_gpus=num_gpus, node_kind=np.array(kinds, np.int8), link_src=src,
        link_dst=dst, link_bps=np.repeat(np.asarray(bps, float), 2),
        link_latency_s=np.full(n, latency_s), link_class=np.repeat(np.asarray(klass, np.int8), 2),
        link_efficiency=np.ones(n), router=TableRouter(len(kinds), src, dst, num_gpus),
        routing="bfs")


def star(num_gpus: int = 4, gbps: float = 100.0, latency_s: float = 1e-6) -> FabricGraph:
    """`num_gpus` GPUs on one switch (node num_gpus)."""
    sw = num_gpus
    return _graph(f"star{num_gpus}", num_gpus, [GPU] * num_gpus + [LEAF],
                  [(g, sw) for g in range(num_gpus)], [gbps * 1e9] * num_gpus, latency_s,
                  [NIC] * num_gpus)


def tree(leaves: int = 2, per_leaf: int = 2, gbps: float = 100.0, uplink_gbps: float = 100.0,
         latency_s: float = 1e-6) -> FabricGraph:
    """Two levels: `leaves` leaves of `per_leaf` GPUs, all leaves on one spine."""
    g = leaves * per_leaf
    spine = g + leaves
    pairs = [(i, g + i // per_leaf) for i in range(g)] + [(g + k, spine) for k in range(leaves)]
    return _graph(f"tree{leaves}x{per_leaf}", g, [GPU] * g + [LEAF] * leaves + [SPINE], pairs,
                  [gbps * 1e9] * g + [uplink_gbps * 1e9] * leaves, latency_s,
                  [NIC] * g + [FABRIC] * leaves)
