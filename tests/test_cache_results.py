"""Result cache: size grid, bit-identical hits, order independence, sqlite sharing."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
import pytest

from cosim.config.network import NetworkConfig
from cosim.config.topology_files import get_topology
from cosim.network.analytical import AnalyticalBackend
from cosim.network.backend import make_backend
from cosim.network.cache import CachedBackend, ResultCache, bucket_sizes
from cosim.network.flows import FlowBatch
from cosim.network.topology import build_fabric


@pytest.fixture(scope="module")
def graph():
    return build_fabric(get_topology("dgx_h800_ib", num_nodes=2))


def batch(seed=0, n=200):
    rng = np.random.default_rng(seed)
    src = rng.integers(0, 16, n)
    dst = (src + rng.integers(1, 16, n)) % 16
    return FlowBatch.from_arrays(src, dst, rng.integers(1, 5_000_000, n))


class Counting:
    """Wraps a backend to count how often it is really asked."""

    def __init__(self, inner):
        self.inner, self.name, self.calls = inner, inner.name, 0

    def simulate(self, flows):
        self.calls += 1
        return self.inner.simulate(flows)

    def close(self):
        pass


def cached(graph, path, **kw):
    inner = Counting(AnalyticalBackend(graph))
    return CachedBackend(inner, ResultCache(path), graph.digest(), "analytical-test", **kw), inner


@pytest.mark.parametrize("pct", [0.5, 2.0, 5.0])
def test_grid_rounds_up_within_one_step(pct):
    sizes = np.unique(np.random.default_rng(1).integers(1, 10**10, 20000))
    b = bucket_sizes(sizes, pct)
    assert (b >= sizes).all()
    assert (b <= np.ceil(sizes * (1 + pct / 100)) + 1).all()
    assert np.unique(b).size < sizes.size  # buckets are shared
    assert (bucket_sizes(b, pct) == b).all()  # grid points are fixed points


def test_hit_is_bit_identical_and_skips_backend(graph, tmp_path):
    be, inner = cached(graph, tmp_path / "c.sqlite")
    flows = batch()
    first = be.simulate(flows)
    second = be.simulate(flows)
    assert inner.calls == 1 and second.stats["cache_hit"] and not first.stats["cache_hit"]
    assert first.finish.tobytes() == second.finish.tobytes()
    assert be.stats()["hits"] == 1 and be.stats()["misses"] == 1


def test_hit_from_disk_in_a_new_process_state(graph, tmp_path):
    path = tmp_path / "c.sqlite"
    be, _ = cached(graph, path)
    first = be.simulate(batch())
    be.close()
    be2, inner2 = cached(graph, path)
    again = be2.simulate(batch())
    assert inner2.calls == 0 and be2.stats()["hits_disk"] == 1
    assert first.finish.tobytes() == again.finish.tobytes()


def test_permuted_batch_hits_and_maps_back(graph, tmp_path):
    be, inner = cached(graph, tmp_path / "c.sqlite")
    flows = batch()
    first = be.simulate(flows)
    perm = np.random.default_rng(9).permutation(len(flows))
    shuffled = FlowBatch(*(getattr(flows, f)[perm] for f in ("src", "dst", "size", "start", "tag")))
    second = be.simulate(shuffled)
    assert inner.calls == 1
    assert second.finish.tobytes() == first.finish[perm].tobytes()


def test_bucketed_result_is_conservative_and_grid_reported(graph, tmp_path):
    be, _ = cached(graph, tmp_path / "c.sqlite", grid_percent=2.0)
    flows = batch()
    approx = be.simulate(flows)
    exact = AnalyticalBackend(graph).simulate(flows)
    assert approx.stats["cache_grid_percent"] == 2.0
    assert approx.makespan >= exact.makespan * (1 - 0.01)  # rtol of the solver
    assert approx.makespan <= exact.makespan * 1.03


def test_nearby_batches_share_a_bucket(graph, tmp_path):
    be, inner = cached(graph, tmp_path / "c.sqlite", grid_percent=5.0)
    flows = FlowBatch.from_arrays([0, 1], [9, 10], [1_000_000, 2_000_000])
    grown = FlowBatch.from_arrays([0, 1], [9, 10], [1_000_100, 2_000_100])
    be.simulate(flows)
    be.simulate(grown)
    assert inner.calls == 1


def test_exact_mode_keys_on_exact_sizes(graph, tmp_path):
    be, inner = cached(graph, tmp_path / "c.sqlite", exact=True)
    be.simulate(FlowBatch.from_arrays([0], [9], [1_000_000]))
    r = be.simulate(FlowBatch.from_arrays([0], [9], [1_000_001]))
    assert inner.calls == 2 and r.stats["cache_grid_percent"] is None


def test_other_graph_or_variant_misses(graph, tmp_path):
    path = tmp_path / "c.sqlite"
    be, _ = cached(graph, path)
    be.simulate(batch())
    other = build_fabric(get_topology("dgx_h800_ib", num_nodes=3))
    be2, inner2 = cached(other, path)
    be2.simulate(batch())
    assert inner2.calls == 1


def _worker(path, seed, out):
    g = build_fabric(get_topology("dgx_h800_ib", num_nodes=2))
    be, _ = cached(g, path)
    for s in range(6):
        be.simulate(batch(seed=s))
    out.put(be.stats()["misses"] + be.stats()["hits"])


def test_concurrent_processes_share_sqlite(tmp_path):
    path = tmp_path / "shared.sqlite"
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(path, i, q)) for i in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert all(p.exitcode == 0 for p in procs)
    assert [q.get(timeout=5) for _ in procs] == [6, 6]
    rc = ResultCache(path)
    assert rc._db().execute("SELECT COUNT(*) FROM results_v2").fetchone()[0] == 6
    assert rc._db().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_make_backend_wraps_cache_from_config(graph, tmp_path):
    cfg = NetworkConfig(backend="analytical")
    cfg.cache.path = str(tmp_path / "c.sqlite")
    be = make_backend(cfg, graph)
    be.simulate(batch())
    be.simulate(batch())
    assert be.stats()["hits"] == 1
    be.close()
    cfg.cache.enabled = False
    assert isinstance(make_backend(cfg, graph), AnalyticalBackend)


class _NaNBackend:
    name = "nan"

    def simulate(self, flows):
        from cosim.network.flows import FlowResult

        return FlowResult(finish=np.full(len(flows), np.nan), stats={})


@pytest.mark.parametrize("finish", [np.nan, -1.0])
def test_nan_or_early_finish_times_are_rejected_and_never_cached(tmp_path, finish):
    from cosim.network.cache import CachedBackend, ResultCache
    from cosim.network.flows import FlowBatch, FlowResult, InvalidResult

    class Bad(_NaNBackend):
        def simulate(self, flows):
            return FlowResult(finish=np.full(len(flows), finish), stats={})

    cache = ResultCache(tmp_path / "c.sqlite")
    backend = CachedBackend(Bad(), cache, "g", "v")
    with pytest.raises(InvalidResult, match="not cached"):
        backend.simulate(FlowBatch.from_arrays([0], [1], [100]))
    with pytest.raises(InvalidResult):  # a second ask is not answered from the cache
        backend.simulate(FlowBatch.from_arrays([0], [1], [100]))
    assert cache.stats()["hits"] == 0


@pytest.mark.parametrize("edit", ["UPDATE results_v2 SET stats = '{\"x\": 1}'",
                                  "UPDATE results_v2 SET finish = substr(finish, 1, 5)",
                                  "UPDATE results_v2 SET checksum = 'x'"])
def test_a_corrupt_cache_row_is_dropped_recomputed_and_counted(tmp_path, edit):
    path = tmp_path / "c.sqlite"
    first = ResultCache(path, memory_entries=0)
    first.put("k", np.array([1.0, 2.0]), '{"events": 3}')
    first._db().execute(edit)
    first.close()
    again = ResultCache(path, memory_entries=0)
    assert again.get("k") is None  # never returned
    assert again.stats()["corrupt"] == 1 and again.stats()["misses"] == 1
    assert again._db().execute("SELECT COUNT(*) FROM results_v2").fetchone()[0] == 0
    again.put("k", np.array([1.0, 2.0]), '{"events": 3}')  # recomputed entry is good again
    finish, stats = again.get("k")
    assert finish.tolist() == [1.0, 2.0] and again.stats()["corrupt"] == 1


@pytest.mark.parametrize("damage", ["edited rows", "truncated blobs", "not a database"])
def test_a_damaged_cache_changes_no_result_of_a_run_and_is_counted(tmp_path, damage):
    import sqlite3

    from cosim.api import simulate
    from cosim.metrics import CACHE_HISTORY_KEYS

    path = tmp_path / "net.sqlite"
    over = ["workload.num_requests=8", "output.progress=false", f"network.cache.path={path}"]
    first = simulate(over)
    assert first.summary["network_cache_misses"] > 0  # it wrote rows
    if damage == "not a database":
        for suffix in ("-wal", "-shm"):
            (tmp_path / f"net.sqlite{suffix}").unlink(missing_ok=True)
        path.write_bytes(b"\x00garbage" * 512)
    else:
        edit = ("finish = randomblob(length(finish))" if damage == "edited rows"
                else "finish = substr(finish, 1, length(finish) - 3)")
        with sqlite3.connect(path) as conn:
            conn.execute(f"UPDATE results_v2 SET {edit}")
    again = simulate(over)
    assert again.summary["network_cache_corrupt"] >= 1
    if damage == "not a database":
        assert len(list(tmp_path.glob("net.sqlite.corrupt-*"))) == 1
    history = {"sim_wall_s", *CACHE_HISTORY_KEYS}
    assert ({k: v for k, v in first.summary.items() if k not in history}
            == {k: v for k, v in again.summary.items() if k not in history})
    assert first.requests.equals(again.requests)
    third = simulate(over)  # the recomputed rows are good again
    assert third.summary["network_cache_corrupt"] == 0 and third.summary["network_cache_misses"] == 0
