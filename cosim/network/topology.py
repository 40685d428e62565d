"""The compilation of a TopologyConfig into a FabricGraph (nodes, directed links, routing).

Reading topology files (topologies/*.yaml, COSIM_TOPOLOGY_PATH) and registering them as
Hydra group `topology` is config-level: cosim.config.topology_files.
"""

from __future__ import annotations

import numpy as np
from omegaconf import OmegaConf

from cosim.config.topology import TopologyConfig
from cosim.network.fabric import (
    FABRIC,
    GPU,
    LEAF,
    NIC,
    NVLINK,
    NVSWITCH,
    SPINE,
    FabricGraph,
    RailRouter,
)


def build_fabric(topo: TopologyConfig) -> FabricGraph:
    """Compile a topology into a FabricGraph: nodes, directed links (integer bit/s), routing."""
    if not isinstance(topo, TopologyConfig):
        topo = OmegaConf.to_object(topo) if OmegaConf.is_config(topo) else topo
    topo.validate()
    g = topo.gpus_per_node
    n_gpu = topo.total_gpus
    n_srv = n_gpu // g
    k = topo.nic.per_gpu
    router = RailRouter(num_gpus=n_gpu, gpus_per_node=g, nics_per_gpu=k,
                        servers_per_leaf=topo.fabric.servers_per_leaf,
                        spines=topo.fabric.spines, cross_rail=topo.fabric.cross_rail)
    multi = n_srv > 1
    n_leaf = router.num_leaves
    n_spine = topo.fabric.spines if multi else 0

    nvsw0 = n_gpu
    leaf0 = nvsw0 + n_srv
    spine0 = leaf0 + n_leaf
    node_kind = np.concatenate([
        np.full(n_gpu, GPU), np.full(n_srv, NVSWITCH), np.full(n_leaf, LEAF),
        np.full(n_spine, SPINE)]).astype(np.int8)

    gpus = np.arange(n_gpu)
    nvsw = nvsw0 + gpus // g
    srcs, dsts, bps, lat, cls, eff = [], [], [], [], [], []

    def add(s, d, rate, latency_ns, klass, efficiency):
        s = np.asarray(s)
        srcs.append(s)
        dsts.append(np.asarray(d))
        bps.append(np.broadcast_to(np.asarray(rate, dtype=np.float64), s.shape))
        lat.append(np.broadcast_to(np.asarray(latency_ns, dtype=np.float64) * 1e-9, s.shape))
        cls.append(np.full(s.shape, klass))
        eff.append(np.broadcast_to(np.asarray(efficiency, dtype=np.float64), s.shape))

    # Each server's own NVLink and NIC figures (one set unless topology.server_groups)
    figs = topo.server_figures()
    srv = gpus // g  # server of each GPU
    nv = np.array([(round(n.gb_s * 8e9), n.latency_ns, n.efficiency) for _, n, _ in figs],
                  dtype=np.float64)[srv]
    add(gpus, nvsw, nv[:, 0], nv[:, 1], NVLINK, nv[:, 2])
    add(nvsw, gpus, nv[:, 0], nv[:, 1], NVLINK, nv[:, 2])
    if multi:
        gk = np.repeat(gpus, k)  # GPU of NIC g*k + j
        rail = (gk % g) * k + np.tile(np.arange(k), n_gpu)
        leaf = leaf0 + (gk // g // topo.fabric.servers_per_leaf) * router.rails + rail
        nic = np.array([(round(c.gbps * 1e9), c.latency_ns, c.efficiency) for _, _, c in figs],
                       dtype=np.float64)[gk // g]
        add(gk, leaf, nic[:, 0], nic[:, 1], NIC, nic[:, 2])
        add(leaf, gk, nic[:, 0], nic[:, 1], NIC, nic[:, 2])
        # A rail leaf serves servers_per_leaf NICs; its uplinks carry that over the
        # oversubscription ratio, split evenly over the spines. Mixed kinds: the leaf's ports
        # run at the fastest NIC rate of the fabric (a leaf switch is built for its fastest host).
        nic_bps = max(round(c.gbps * 1e9) for _, _, c in figs)
        up_bps = round(topo.fabric.servers_per_leaf * nic_bps
                       / (topo.fabric.oversubscription * n_spine))
        lf = np.repeat(np.arange(n_leaf), n_spine) + leaf0
        sp = np.tile(np.arange(n_spine), n_leaf) + spine0
        add(lf, sp, up_bps, topo.fabric.latency_ns, FABRIC, topo.fabric.efficiency)
        add(sp, lf, up_bps, topo.fabric.latency_ns, FABRIC, topo.fabric.efficiency)

    return FabricGraph(
        name=f"{topo.name}:{n_gpu}gpu",
        num_gpus=n_gpu,
        node_kind=node_kind,
        link_src=np.concatenate(srcs).astype(np.int32),
        link_dst=np.concatenate(dsts).astype(np.int32),
        link_bps=np.concatenate(bps).astype(np.float64),
        link_latency_s=np.concatenate(lat).astype(np.float64),
        link_class=np.concatenate(cls).astype(np.int8),
        link_efficiency=np.concatenate(eff).astype(np.float64),
        router=router,
        gpus_per_node=g,
        routing=router.describe(),
    )
