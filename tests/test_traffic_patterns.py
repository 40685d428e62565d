"""Traffic generators: byte accounting, dedup semantics, routing skew, collectives."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cosim.traffic.all_to_all import all_to_all_flows
from cosim.traffic.allreduce import nvls_allreduce_flows, rail_rings, ring_allreduce_flows
from cosim.traffic.ep_alltoall import (
    deepep_bytes_per_gpu,
    ep_flows,
    ep_token_counts,
    expert_placement,
    token_bytes,
)
from cosim.traffic.expert_routing import route_tokens
from cosim.traffic.kv_transfer import kv_transfer_flows
from cosim.traffic.m2n import m2n_flows
from cosim.traffic.tags import FlowTag

G = 8  # GPUs per node


def test_token_bytes_per_dtype():
    assert token_bytes(7168, "fp8") == 7168 + 56 * 4  # FP32 scale per 128 channels
    assert token_bytes(7168, "bfloat16") == 2 * 7168
    assert token_bytes(7168, "fp4") == 7168 // 2 + 7168 // 16


def test_routing_distinct_seeded_and_group_limited():
    r = route_tokens(2000, 256, 8, seed=5, num_groups=8, topk_groups=4)
    assert r.shape == (2000, 8)
    assert (np.sort(r, axis=1)[:, 1:] != np.sort(r, axis=1)[:, :-1]).all()
    assert (route_tokens(2000, 256, 8, seed=5, num_groups=8, topk_groups=4) == r).all()
    groups = r // 32
    assert max(len(set(row)) for row in groups.tolist()) <= 4


def _gumbel_top_k(n, num_experts, topk, imbalance, seed, num_groups, topk_groups):
    """Reference: perturb log-popularity with Gumbel noise, keep the topk_groups groups of the
    best keys (DeepSeek-V3's group limit), then the topk best experts."""
    from cosim.traffic.expert_routing import expert_popularity

    rng = np.random.default_rng(seed)
    keys = np.log(expert_popularity(num_experts, imbalance, rng)) + rng.gumbel(size=(n, num_experts))
    g = keys.reshape(n, num_groups, -1)
    drop = np.argsort(-g.max(axis=2), axis=1)[:, topk_groups:]
    np.put_along_axis(g, drop[:, :, None], -np.inf, axis=1)
    return np.argsort(-keys, axis=1)[:, :topk]


@pytest.mark.parametrize("case", [(8, 3, 1, 1, 2.0), (8, 4, 4, 2, 1.5), (12, 3, 3, 2, 0.0)])
def test_routing_draws_the_sets_of_gumbel_top_k_with_its_group_limit(case):
    num_experts, topk, groups, topk_groups, imbalance = case
    n = 100_000
    fast = route_tokens(n, num_experts, topk, imbalance=imbalance, seed=3, num_groups=groups,
                        topk_groups=topk_groups)
    ref = _gumbel_top_k(n, num_experts, topk, imbalance, 3, groups, topk_groups)
    code = num_experts ** np.arange(topk)
    a = np.bincount(np.sort(fast, axis=1) @ code, minlength=num_experts ** topk)
    b = np.bincount(np.sort(ref, axis=1) @ code, minlength=num_experts ** topk)
    seen = (a + b) > 0
    chi2 = float((((a - b) ** 2)[seen] / (a + b)[seen]).sum())  # two-sample, df = sets - 1
    df = int(seen.sum()) - 1
    assert chi2 < df + 5 * math.sqrt(2 * df)


def test_routing_streams_share_the_popularity_but_not_the_draws():
    a = route_tokens(20000, 64, 4, seed=2, imbalance=1.0)
    b = route_tokens(20000, 64, 4, seed=2, imbalance=1.0, stream=1)
    assert not (a == b).all()
    ca, cb = (np.bincount(r.ravel(), minlength=64) for r in (a, b))
    assert np.argmax(ca) == np.argmax(cb) and np.corrcoef(ca, cb)[0, 1] > 0.95


def test_imbalance_skews_expert_load():
    flat = np.bincount(route_tokens(20000, 64, 4, seed=0).ravel(), minlength=64)
    skew = np.bincount(route_tokens(20000, 64, 4, seed=0, imbalance=1.2).ravel(), minlength=64)
    assert skew.max() / skew.mean() > 2 * flat.max() / flat.mean()
    assert flat.sum() == skew.sum() == 80000


def tokens_by_tag(src, dst, tokens, tag):
    return {t: int(tokens[tag == t].sum()) for t in FlowTag}


def test_modes_account_tokens_consistently():
    routing = route_tokens(512, 64, 8, seed=1)
    token_gpu = np.repeat(np.arange(16), 32)
    eg = expert_placement(64, np.arange(16))
    dest = eg[routing]
    remote_copies = int((dest != token_gpu[:, None]).sum())
    s, d, t, tag = ep_token_counts(routing, token_gpu, eg, G, "expert")
    assert t.sum() == remote_copies and (s != d).all()
    # gpu: one copy per distinct destination GPU
    uniq = sum(len(set(row) - {g}) for row, g in zip(dest.tolist(), token_gpu.tolist(), strict=True))
    s, d, t, tag = ep_token_counts(routing, token_gpu, eg, G, "gpu")
    assert t.sum() == uniq
    # node: one RDMA copy per distinct remote node, to the rail peer
    s, d, t, tag = ep_token_counts(routing, token_gpu, eg, G, "node")
    rdma = tag == FlowTag.EP_RDMA
    remote_nodes = sum(len(set((np.array(row) // G).tolist()) - {g // G})
                       for row, g in zip(dest.tolist(), token_gpu.tolist(), strict=True))
    assert t[rdma].sum() == remote_nodes
    assert (s[rdma] // G != d[rdma] // G).all() and (s[rdma] % G == d[rdma] % G).all()
    fwd = tag == FlowTag.EP_FORWARD
    assert (s[fwd] // G == d[fwd] // G).all()
    direct = tag == FlowTag.EP_DIRECT
    assert (s[direct] // G == d[direct] // G).all()
    # every (token, destination GPU) pair is delivered: direct + forwarded + kept by relay
    kept = uniq - t[direct].sum() - t[fwd].sum()
    assert 0 <= kept <= t[rdma].sum()


def test_node_dedup_cuts_nic_bytes():
    kw = dict(ep_gpus=np.arange(32), gpus_per_node=G, seed=2)
    gpu = ep_flows(256, 7168, 8, 256, mode="gpu", **kw)
    node = ep_flows(256, 7168, 8, 256, mode="node", **kw)
    inter = lambda f: f.size[f.src // G != f.dst // G].sum()  # noqa: E731
    assert inter(node) < 0.6 * inter(gpu)


def test_combine_mirrors_dispatch_with_its_dtype():
    kw = dict(ep_gpus=np.arange(16), gpus_per_node=G, seed=3, mode="node")
    d = ep_flows(128, 7168, 8, 64, direction="dispatch", dtype="fp8", **kw)
    c = ep_flows(128, 7168, 8, 64, direction="combine", dtype="bfloat16", **kw)
    assert (d.src == c.dst).all() and (d.dst == c.src).all()
    assert np.allclose(c.size / d.size, token_bytes(7168, "bfloat16") / token_bytes(7168, "fp8"))


def test_deepep_counts_include_own_node():
    routing = route_tokens(64, 16, 2, seed=0)
    token_gpu = np.repeat(np.arange(16), 4)
    rdma, nvl = deepep_bytes_per_gpu(routing, token_gpu, expert_placement(16, np.arange(16)),
                                     G, 1)
    nodes = np.mean([len(set((np.array(r) // G).tolist())) for r in routing.tolist()]) * 4
    assert rdma == pytest.approx(nodes)
    pairs = sum(len(set(r)) for r in routing.tolist())  # one expert per GPU here
    assert nvl == pytest.approx(pairs / 16)


def test_m2n_modes():
    attn, ffn = np.arange(4), np.arange(4, 12)
    b = m2n_flows(attn, ffn, 100, 10, mode="broadcast")
    assert len(b) == 32 and (b.size == 1000).all()
    s = m2n_flows(attn, ffn, 100, 10, mode="split")
    assert s.size.sum() == 4 * 1000 and set(s.size.tolist()) == {120, 130}
    t = m2n_flows(attn, ffn, 100, 10, mode="topk", topk=8, num_experts=64)
    assert np.isin(t.src, attn).all() and np.isin(t.dst, ffn).all()
    assert t.size.sum() <= 4 * 100 * 8 * 10
    back = m2n_flows(attn, ffn, 100, 20, mode="topk", topk=8, num_experts=64, direction="f2a")
    assert (back.src == t.dst).all() and (back.size == 2 * t.size).all()
    assert (back.tag == FlowTag.F2A).all()


def test_ring_allreduce_per_edge_volume():
    f = ring_allreduce_flows(8_000_000, [np.arange(8)])
    assert len(f) == 8 and (f.size == 2 * 7 / 8 * 8_000_000).all()
    assert (f.dst == (f.src + 1) % 8).all()


def test_rail_rings_cross_servers_on_one_rail():
    rings = rail_rings(np.arange(32), G, channels=G)
    assert len(rings) == G
    for ring in rings:
        assert sorted(ring.tolist()) == list(range(32))
        nxt = np.roll(ring, -1)
        cross = ring // G != nxt // G
        assert (ring[cross] % G == nxt[cross] % G).all()
    f = ring_allreduce_flows(8_000_000, rings)
    assert f.size.sum() == pytest.approx(2 * 31 / 32 * 8_000_000 * 32, rel=1e-6)


def test_nvls_moves_size_up_and_down():
    f = nvls_allreduce_flows(np.arange(8), 1000, G)
    assert (np.bincount(f.src) == 1).all() and (f.size == 1000).all()
    with pytest.raises(ValueError, match="one NVLink domain"):
        nvls_allreduce_flows(np.arange(4, 12), 1000, G)


def test_kv_transfer_split_over_layers():
    f = kv_transfer_flows([0, 1], [8, 9], [1000, 10], 70272, layers=4, layer_interval_s=1e-4)
    assert len(f) == 8
    assert f.size[:4].sum() >= 1000 * 70272
    assert np.allclose(f.start[:4], [0, 1e-4, 2e-4, 3e-4])
    with pytest.raises(ValueError, match="same"):
        kv_transfer_flows([0], [0], [10], 1.0)


def test_all_to_all_pairs():
    f = all_to_all_flows(np.arange(5), 7)
    assert len(f) == 20 and (f.src != f.dst).all() and (f.size == 7).all()


def test_node_mode_relay_above_every_token_and_expert_gpu():
    # Token on GPU 7 (local rank 7), its expert on GPU 8 (node 1): the rail peer that takes
    # the RDMA copy is GPU 15, above every token and expert GPU; the pairs must stay intact.
    src, dst, tokens, tag = ep_token_counts(np.array([[1]]), np.array([7]), np.array([0, 8]),
                                            gpus_per_node=8, mode="node")
    flows = sorted(zip(src.tolist(), dst.tolist(), tokens.tolist(), tag.tolist(), strict=True))
    assert flows == [(7, 15, 1, FlowTag.EP_RDMA), (15, 8, 1, FlowTag.EP_FORWARD)]
