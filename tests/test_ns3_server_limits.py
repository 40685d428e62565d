"""cosim-ns3-server's per-request budget and its bounded topology LRU (a real server process).

A batch over its event or wall budget is abandoned with an error reply and the next request
gets the same answer as before; loading more distinct topologies than the LRU holds keeps
both the topologies and ns-3's node count bounded (evicted ones are freed by resetting ns-3).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ns3_graphs import star, tree  # noqa: E402
from ns3_server_proc import ServerProc, exchange  # noqa: E402

from cosim.network.ns3 import fuzz, wire  # noqa: E402
from cosim.network.ns3.server.main import default_max_links  # noqa: E402

pytest.importorskip("ns3", reason="the ns3 wheel (Linux x86-64) is not installed")


def test_default_topology_limit_follows_the_available_memory():
    gib = 1 << 30
    assert default_max_links(8, 16 * gib) == 16 * gib // (5000 * 17)
    assert default_max_links(8, 32 * gib) == 2 * default_max_links(8, 16 * gib)
    assert default_max_links(1, 1 << 20) == 1024  # floor
    assert default_max_links(8, 1 << 50) == wire.MAX_LINKS  # protocol cap


def test_request_budget_params_are_checked():
    assert wire.budget_params({}) == (None, None)
    assert wire.budget_params({"max_events": 5, "max_wall_s": 2}) == (5, 2.0)
    for bad in ({"max_events": 0}, {"max_events": 1.5}, {"max_events": True},
                {"max_wall_s": 0}, {"max_wall_s": "1"}, {"max_wall_s": 1e9}):
        with pytest.raises(wire.WireError, match="params.max_"):
            wire.budget_params(bad)


@pytest.fixture(scope="module")
def server():
    s = ServerProc("--endpoint", "tcp://127.0.0.1:*", "--max-topologies", "2")
    yield s
    s.close()


def _simulate(ctx, arrays, rid, **params):
    return wire.encode("simulate", request_id=rid, topology=ctx.digest,
                       params={**fuzz.PARAMS, **params}, arrays=arrays)


@pytest.mark.ns3
def test_a_batch_over_its_budget_is_abandoned_and_the_server_carries_on(server):
    ctx = fuzz.context_of(tree(leaves=2, per_leaf=2))
    sock = server.socket()
    try:
        assert exchange(sock, fuzz.load_topology(ctx)).header["ok"]
        batch = ctx.batch(np.random.default_rng(3), n=6)
        batch["size"] = np.full(6, 1_000_000, np.int64)  # ~670 packets, thousands of events
        first = exchange(sock, _simulate(ctx, batch, 1))
        assert first.header["ok"], first.header
        assert first.header["result"]["events"] > 1000
        for rid, budget in ((2, {"max_events": 200}), (3, {"max_wall_s": 1e-9})):
            r = exchange(sock, _simulate(ctx, batch, rid, **budget))
            assert r.header["ok"] is False and r.header["id"] == rid
            assert r.header["error"].startswith("simulation abandoned: ")
            assert ("events" if "max_events" in budget else "wall clock") in r.header["error"]
            again = exchange(sock, _simulate(ctx, batch, rid + 10))
            assert again.header["ok"], again.header
            assert again.arrays["finish_s"].tobytes() == first.arrays["finish_s"].tobytes()
            assert again.header["result"]["events"] == first.header["result"]["events"]
        ping = exchange(sock, wire.encode("ping", request_id="p")).header["result"]
        assert ping["abandoned"] == 2 and ping["resets"] >= 2
    finally:
        sock.close()


def _distinct_star(k: int):
    """A 128-GPU star whose link rates differ per k (so each is a distinct topology)."""
    return fuzz.context_of(star(128, gbps=100.0 + k))


@pytest.mark.ns3
def test_more_distinct_topologies_than_the_lru_holds_stay_bounded(server):
    sock = server.socket()
    try:
        rng = np.random.default_rng(5)
        nodes, rss = [], []
        for k in range(40):
            ctx = _distinct_star(k)
            assert exchange(sock, fuzz.load_topology(ctx, rid=k)).header["ok"]
            r = exchange(sock, _simulate(ctx, ctx.batch(rng, n=4), 1000 + k))
            assert r.header["ok"], r.header
            p = exchange(sock, wire.encode("ping", request_id="p")).header["result"]
            assert len(p["topologies"]) <= 2 and p["max_topologies"] == 2
            nodes.append(p["ns3_nodes"])
            rss.append(p["rss_bytes"])
        # Two live stars of 129 nodes, plus evicted ones until they outnumber the live links.
        assert max(nodes) <= 5 * 129, nodes
        assert p["resets"] >= 10
        # Without freeing (--max-topologies 100) RSS grew ~1 MB per load of such a star, 30 MB
        # over these 30 loads; freed, it stays within a fraction of a MB. A generous bound:
        assert rss[-1] - rss[9] < 4 * 2**20, [x // 2**20 for x in rss]
        # A topology that was evicted and reloaded answers as a fresh server would.
        ctx = _distinct_star(0)
        batch = ctx.batch(np.random.default_rng(9), n=4)
        assert exchange(sock, fuzz.load_topology(ctx, rid="again")).header["ok"]
        a = exchange(sock, _simulate(ctx, batch, 2000))
        fresh = ServerProc("--endpoint", "tcp://127.0.0.1:*")
        try:
            s2 = fresh.socket()
            assert exchange(s2, fuzz.load_topology(ctx)).header["ok"]
            b = exchange(s2, _simulate(ctx, batch, 2000))
            s2.close()
        finally:
            fresh.close()
        assert a.arrays["finish_s"].tobytes() == b.arrays["finish_s"].tobytes()
    finally:
        sock.close()


@pytest.mark.ns3
def test_a_tcp_batch_over_its_budget_is_abandoned_and_tcp_still_works(server):
    ctx = fuzz.context_of(tree(leaves=2, per_leaf=2))
    sock = server.socket()
    try:
        assert exchange(sock, fuzz.load_topology(ctx)).header["ok"]
        batch = ctx.batch(np.random.default_rng(4), n=3)
        tcp = {"transport": "tcp"}
        first = exchange(sock, _simulate(ctx, batch, 1, **tcp))
        assert first.header["ok"], first.header
        r = exchange(sock, _simulate(ctx, batch, 2, max_events=50, **tcp))
        assert r.header["error"].startswith("simulation abandoned: "), r.header
        again = exchange(sock, _simulate(ctx, batch, 3, **tcp))
        assert again.header["ok"], again.header
        assert again.arrays["finish_s"].tobytes() == first.arrays["finish_s"].tobytes()
    finally:
        sock.close()


def test_the_limits_quoted_in_docs_are_the_codes():
    from cosim.network.ns3.client import LOCAL_WALL_FRACTION
    from cosim.network.ns3.server import main

    page = " ".join((Path(__file__).parents[1] / "docs/ns3.md").read_text().split())
    assert main.DEFAULT_MAX_EVENTS == 10**9 and "(default 10^9 ns-3 events)" in page
    assert f"`--max-wall-s` (default {main.DEFAULT_MAX_WALL_S:g} s," in page
    assert f"`--max-topologies` topologies (default {main.DEFAULT_MAX_TOPOLOGIES})" in page
    assert f"`BYTES_PER_LINK` = {main.BYTES_PER_LINK}" in page
    assert f"`--max-wall-s` = {LOCAL_WALL_FRACTION:g} x `network.ns3.timeout_s`" in page
    assert main.default_max_links(3, 7 * 10**9) == 7 * 10**9 // (main.BYTES_PER_LINK * 7)
