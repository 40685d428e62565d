"""FabricGraph built from a topology: links, rates, deterministic rail-aware routing."""

from __future__ import annotations

import numpy as np
import pytest

from cosim.config.topology_files import get_topology
from cosim.network.fabric import FABRIC, LEAF, NIC, NVLINK, NVSWITCH, SPINE
from cosim.network.topology import build_fabric


def fabric(name="dgx_h800_ib", **over):
    fab = dict(over.pop("fabric", {}))
    nic = dict(over.pop("nic", {}))
    return build_fabric(get_topology(name, **over, **({"fabric": fab} if fab else {}),
                                     **({"nic": nic} if nic else {})))


def all_pairs(n):
    s, d = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    keep = s != d
    return s[keep], d[keep]


def check_paths(graph, src, dst):
    """Every path starts at src, ends at dst and is connected; returns (indptr, ids)."""
    ip, ids = graph.routes(src, dst)
    ls, ld = graph.link_src[ids], graph.link_dst[ids]
    assert (ls[ip[:-1]] == src).all() and (ld[ip[1:] - 1] == dst).all()
    inner = np.ones(ids.size, dtype=bool)
    inner[ip[:-1]] = False
    assert (ls[inner] == ld[np.flatnonzero(inner) - 1]).all()
    return ip, ids


def test_node_and_link_counts():
    g = fabric(num_nodes=4)  # 32 GPUs, 4 NVSwitches, 8 rail leaves, 16 spines
    kinds = np.bincount(g.node_kind, minlength=4)
    assert list(kinds) == [32, 4, 8, 16]
    assert (g.node_kind[:32] == 0).all() and g.node_kind[32] == NVSWITCH
    assert g.num_links == 2 * 32 + 2 * 32 + 2 * 8 * 16
    assert (g.link_bps == np.round(g.link_bps)).all()  # integer bits per second


def test_rates_from_topology_units():
    g = fabric(num_nodes=2)
    nv = g.link_bps[g.link_class == NVLINK]
    nic = g.link_bps[g.link_class == NIC]
    assert (nv == 200e9 * 8).all() and (nic == 400e9).all()
    assert np.allclose(g.link_capacity_bps[g.link_class == NIC], 400e9 * 0.94)
    # Leaf uplinks: 32 servers x 400 Gb/s over 16 spines, 1:1
    assert (g.link_bps[g.link_class == FABRIC] == 32 * 400e9 / 16).all()


def test_oversubscription_shrinks_uplinks():
    g = fabric(num_nodes=2, fabric={"oversubscription": 4.0})
    assert (g.link_bps[g.link_class == FABRIC] == 32 * 400e9 / 16 / 4).all()


def test_single_server_has_no_scale_out():
    g = fabric(num_nodes=1)
    assert set(np.unique(g.link_class)) == {NVLINK}
    assert not np.isin(g.node_kind, [LEAF, SPINE]).any()


@pytest.mark.parametrize("over", [
    {},
    {"fabric": {"cross_rail": "pxn"}},
    {"nic": {"per_gpu": 2}},
    {"fabric": {"servers_per_leaf": 2}},  # several leaf groups per rail
    {"fabric": {"servers_per_leaf": 3, "cross_rail": "pxn"}, "nic": {"per_gpu": 2}},
])
def test_all_pairs_routes_are_connected_paths(over):
    g = fabric(num_nodes=5, **over)
    src, dst = all_pairs(g.num_gpus)
    check_paths(g, src, dst)


def test_intra_node_uses_nvlink_inter_node_uses_nics():
    g = fabric(num_nodes=2)
    ip, ids = check_paths(g, np.array([0, 0, 0]), np.array([5, 8, 13]))
    paths = [g.link_class[ids[ip[i]:ip[i + 1]]].tolist() for i in range(3)]
    assert paths[0] == [NVLINK, NVLINK]
    assert paths[1] == [NIC, NIC]  # same rail (local rank 0): one leaf, no spine
    assert paths[2] == [NIC, FABRIC, FABRIC, NIC]  # other rail: via a spine


def test_pxn_crosses_nvlink_then_stays_on_rail():
    g = fabric(num_nodes=2, fabric={"cross_rail": "pxn"})
    ip, ids = check_paths(g, np.array([0]), np.array([13]))
    assert g.link_class[ids].tolist() == [NVLINK, NVLINK, NIC, NIC]
    assert g.link_dst[ids[1]] == 5  # relay: GPU of rank 5 (dst's rail) on the source server


def test_routing_is_deterministic_and_spreads_over_spines():
    g = fabric(num_nodes=8)
    src, dst = all_pairs(g.num_gpus)
    a = g.routes(src, dst)
    b = g.routes(src, dst)
    assert all((x == y).all() for x, y in zip(a, b, strict=True))
    up = a[1][(g.link_class[a[1]] == FABRIC) & (g.node_kind[g.link_dst[a[1]]] == SPINE)]
    per_spine = np.bincount(g.link_dst[up] - g.link_dst[up].min())
    assert per_spine.size == 16 and per_spine.min() > 0.5 * per_spine.mean()


def test_digest_tracks_links_and_routing():
    base = fabric(num_nodes=2)
    assert base.digest() == fabric(num_nodes=2).digest()
    assert base.digest() != fabric(num_nodes=3).digest()
    assert base.digest() != fabric(num_nodes=2, fabric={"cross_rail": "pxn"}).digest()


@pytest.mark.parametrize("src,dst,match", [([0], [0], "src == dst"), ([0], [16], "outside"),
                                           ([-1], [3], "outside")])
def test_bad_endpoints_are_refused(src, dst, match):
    with pytest.raises(ValueError, match=match):
        fabric(num_nodes=2).routes(np.array(src), np.array(dst))
