"""Analytical backend: max-min fair shares, latency, start times, bandwidth bounds."""

from __future__ import annotations

import numpy as np
import pytest

from cosim.config.topology_files import get_topology
from cosim.network.analytical import AnalyticalBackend, maxmin_rates, padded_paths
from cosim.network.fabric import NVLINK, FabricGraph, link_bytes
from cosim.network.flows import FlowBatch
from cosim.network.topology import build_fabric
from cosim.traffic.all_to_all import all_to_all_flows


class PathTable:
    """Router for hand-made graphs: fixed link lists per (src, dst)."""

    def __init__(self, paths):
        self.paths = paths

    def __call__(self, src, dst):
        rows = [self.paths[int(s), int(d)] for s, d in zip(src, dst, strict=True)]
        indptr = np.r_[0, np.cumsum([len(r) for r in rows])].astype(np.int64)
        return indptr, np.array([x for r in rows for x in r], dtype=np.int32)


def line_graph(bps=(8e9, 16e9), latency_s=(1e-6, 2e-6), efficiency=1.0):
    """GPUs 0,1,2 and a switch 3; link 0: 0->3, link 1: 3->1, link 2: 3->2, link 3: 2->3."""
    rates = [bps[0], bps[0], bps[1], bps[1]]
    lat = [latency_s[0], latency_s[0], latency_s[1], latency_s[1]]
    paths = {(0, 1): [0, 1], (0, 2): [0, 2], (2, 1): [3, 1]}
    return FabricGraph(
        name="line", num_gpus=3, node_kind=np.array([0, 0, 0, 1], np.int8),
        link_src=np.array([0, 3, 3, 2], np.int32), link_dst=np.array([3, 1, 2, 3], np.int32),
        link_bps=np.array(rates), link_latency_s=np.array(lat),
        link_class=np.full(4, NVLINK, np.int8), link_efficiency=np.full(4, efficiency),
        router=PathTable(paths), routing="table")


def test_single_flow_is_size_over_rate_plus_latency():
    g = line_graph(efficiency=0.5)
    r = AnalyticalBackend(g, rtol=0).simulate(FlowBatch.from_arrays([0], [1], [1_000_000]))
    # 8 Gb/s x 0.5 = 0.5 GB/s; two hops of 1 us
    assert r.finish[0] == pytest.approx(1_000_000 / 0.5e9 + 2e-6, rel=1e-12)


def test_two_flows_on_one_link_each_get_half():
    g = line_graph()
    flows = FlowBatch.from_arrays([0, 0], [1, 2], [1_000_000, 1_000_000])
    r = AnalyticalBackend(g, rtol=0).simulate(flows)
    drain = 2_000_000 / 1e9  # both share link 0 at 1 GB/s: each at 0.5 GB/s
    assert r.finish[0] == pytest.approx(drain + 2e-6, rel=1e-12)
    assert r.finish[1] == pytest.approx(drain + 1e-6 + 2e-6, rel=1e-12)


def test_maxmin_gives_leftover_to_unconstrained_flow():
    # Links: A cap 10 shared by flows 0,1; B cap 100 carries flows 1,2.
    paths = padded_paths(np.array([0, 1, 3, 4]), np.array([0, 0, 1, 1]), pad=2)
    rates, _ = maxmin_rates(paths, np.array([10.0, 100.0, np.inf]))
    assert rates.tolist() == [5.0, 5.0, 95.0]


def test_maxmin_chain_matches_sequential_filling():
    # A chain of links with rising capacity: the parallel rounds must equal plain filling.
    rng = np.random.default_rng(1)
    n_links, n_flows = 12, 40
    cap = np.append(rng.uniform(1, 10, n_links), np.inf)
    lens = rng.integers(1, 4, n_flows)
    ids = np.concatenate([rng.choice(n_links, k, replace=False) for k in lens])
    indptr = np.r_[0, np.cumsum(lens)]
    rates, _ = maxmin_rates(padded_paths(indptr, ids, pad=n_links), cap)
    # reference: one global bottleneck per round
    ref = np.full(n_flows, np.nan)
    rem = cap[:-1].copy()
    left = set(range(n_flows))
    paths = [ids[indptr[i]:indptr[i + 1]] for i in range(n_flows)]
    while left:
        cnt = np.zeros(n_links)
        for f in left:
            cnt[paths[f]] += 1
        share = np.where(cnt > 0, rem / np.maximum(cnt, 1), np.inf)
        link = int(np.argmin(share))
        for f in [f for f in left if link in paths[f]]:
            ref[f] = share[link]
            rem[paths[f]] -= share[link]
            left.discard(f)
    assert np.allclose(rates, ref, rtol=1e-9)
    used = np.bincount(ids, weights=np.repeat(rates, lens), minlength=n_links)
    assert (used <= cap[:-1] * (1 + 1e-9)).all()


def test_late_flow_shares_after_it_starts():
    g = line_graph()
    # Flow 0 alone at 1 GB/s for 0.5 ms (500 kB), then both share: 500 kB each left at 0.5 GB/s.
    flows = FlowBatch.from_arrays([0, 0], [1, 2], [1_000_000, 500_000], start=[0.0, 0.5e-3])
    r = AnalyticalBackend(g, rtol=0).simulate(flows)
    assert r.finish[0] == pytest.approx(1.5e-3 + 2e-6, rel=1e-12)
    assert r.finish[1] == pytest.approx(1.5e-3 + 3e-6, rel=1e-12)


def test_frame_serialisation_adds_per_hop_time():
    g = line_graph()
    r = AnalyticalBackend(g, frame_bytes=1000, rtol=0).simulate(
        FlowBatch.from_arrays([0], [1], [1_000_000]))
    assert r.finish[0] == pytest.approx(1e-3 + 2e-6 + 2 * 8000 / 8e9, rel=1e-12)


def test_all_to_all_64_gpus_equals_nic_bound():
    g = build_fabric(get_topology("dgx_h800_ib", num_nodes=8))
    flows = all_to_all_flows(np.arange(64), 1 << 20)
    r = AnalyticalBackend(g).simulate(flows)
    assert len(flows) == 4032
    nic_Bps = 400e9 * 0.94 / 8
    bound = 56 * (1 << 20) / nic_Bps  # 56 remote peers through one NIC
    assert r.makespan == pytest.approx(bound, rel=2e-3)  # + ~2 us of latency


@pytest.mark.parametrize("rtol", [0.0, 0.01])
def test_never_faster_than_link_bound(rtol):
    g = build_fabric(get_topology("dgx_h800_ib", num_nodes=2))
    rng = np.random.default_rng(3)
    n = 300
    src = rng.integers(0, 16, n)
    dst = (src + rng.integers(1, 16, n)) % 16
    flows = FlowBatch.from_arrays(src, dst, rng.integers(1e4, 1e6, n),
                                  start=rng.uniform(0, 1e-4, n))
    r = AnalyticalBackend(g, rtol=rtol).simulate(flows)
    per_link = link_bytes(g, flows.src, flows.dst, flows.size)
    bound = (per_link * 8 / g.link_capacity_bps).max()
    assert r.makespan >= bound * (1 - rtol)
    ip, ids = g.routes(flows.src, flows.dst)
    single = flows.size * 8 / np.minimum.reduceat(g.link_capacity_bps[ids], ip[:-1])
    assert (r.finish - flows.start >= single * (1 - rtol)).all()


def test_rtol_stays_close_to_exact():
    g = build_fabric(get_topology("dgx_h800_ib", num_nodes=2))
    src, dst = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    keep = src != dst
    sizes = np.random.default_rng(0).integers(1 << 16, 1 << 21, keep.sum())
    flows = FlowBatch.from_arrays(src[keep], dst[keep], sizes)
    exact = AnalyticalBackend(g, rtol=0).simulate(flows)
    fast = AnalyticalBackend(g, rtol=0.01).simulate(flows)
    assert fast.stats["events"] < exact.stats["events"]
    assert np.allclose(fast.finish, exact.finish, rtol=0.03)
    assert fast.makespan == pytest.approx(exact.makespan, rel=0.01)


@pytest.mark.parametrize("field,src,dst,size,start", [
    ("size", [0], [1], [-5], [0.0]),
    ("start", [0], [1], [10], [np.nan]),
    ("dst", [0], [7], [10], [0.0]),
])
def test_bad_flows_are_refused_naming_the_field(field, src, dst, size, start):
    with pytest.raises(ValueError, match=f"flows.{field}"):
        AnalyticalBackend(line_graph()).simulate(FlowBatch.from_arrays(src, dst, size, start))


def test_flows_that_need_no_network_finish_at_their_start():
    # Same rule as the ns-3 backend: an empty flow or a GPU's copy to itself touches no link.
    g = line_graph()
    alone = AnalyticalBackend(g, rtol=0).simulate(FlowBatch.from_arrays([0], [1], [1_000_000]))
    mixed = AnalyticalBackend(g, rtol=0).simulate(FlowBatch.from_arrays(
        [0, 0, 1], [1, 1, 1], [1_000_000, 0, 500], [0.0, 3e-6, 5e-6]))
    assert mixed.finish[0] == alone.finish[0]
    assert mixed.finish[1] == 3e-6 and mixed.finish[2] == 5e-6


def test_empty_batch():
    r = AnalyticalBackend(line_graph()).simulate(FlowBatch.from_arrays([], [], []))
    assert r.finish.size == 0 and r.makespan == 0.0
