"""Who answered each network lookup of a run: the run's memo, the result cache, or the backend.

A *lookup* is one flow batch whose completion times an iteration (or a KV transfer) needs:
per chunked iteration one EP dispatch and one EP combine (per MoE layer, all layers alike)
and one TP all-reduce when tp > 1; per AFD micro-batch one A2F and one F2A (plus the
coupled batches of network.mode=iteration); per P/D hand-off one KV batch. The number of
lookups is a function of the config and seed alone; what answered them depends on what the
on-disk cache held:

- `memo`: the run's own in-process results (FabricComm's per-phase results, the AFD traffic
  and iteration memos): a batch already timed in this run, on the same token grid;
- `lru`: the result cache's in-process LRU (cosim.network.cache), e.g. another instance of
  the run asked for the same batch;
- `sqlite`: the result cache on disk (earlier runs, or concurrent runs of a sweep);
- `miss`: the backend (analytical or ns-3) simulated the batch.

summary.json: `network_lookups`, `network_cache_hits` (memo + lru + sqlite),
`network_cache_hits_memo`, `network_cache_hits_lru`, `network_cache_hits_sqlite`,
`network_cache_misses`, `network_cache_hit_rate` (hits / lookups; None without lookups).
"""

from __future__ import annotations

from typing import Any


class NetworkLookups:
    """Counters of one run's network lookups by the level that answered them."""

    __slots__ = ("memo", "lru", "sqlite", "miss", "corrupt")

    def __init__(self) -> None:
        self.corrupt = 0  # cache rows that failed their checksum (dropped and recomputed)
        self.memo = 0
        self.lru = 0
        self.sqlite = 0
        self.miss = 0

    @property
    def lookups(self) -> int:
        return self.memo + self.lru + self.sqlite + self.miss

    def simulate(self, backend: Any, flows: Any) -> Any:
        """backend.simulate(flows), counted as an LRU hit, an sqlite hit or a miss.

        A CachedBackend's ResultCache counts one of hits_memory / hits_disk / misses per
        call; a backend without a cache simulates every batch (a miss).
        """
        cache = getattr(backend, "cache", None)
        if cache is None:
            self.miss += 1
            return backend.simulate(flows)
        lru, disk = cache.hits_memory, cache.hits_disk
        bad = getattr(cache, "corrupt", 0)
        result = backend.simulate(flows)
        self.corrupt += getattr(cache, "corrupt", 0) - bad
        if cache.hits_memory > lru:
            self.lru += 1
        elif cache.hits_disk > disk:
            self.sqlite += 1
        else:
            self.miss += 1
        return result

    def summary(self) -> dict[str, Any]:
        """The summary.json fields (see the module docstring)."""
        n = self.lookups
        hits = self.memo + self.lru + self.sqlite
        return {"network_lookups": n, "network_cache_hits": hits,
                "network_cache_hits_memo": self.memo, "network_cache_hits_lru": self.lru,
                "network_cache_hits_sqlite": self.sqlite, "network_cache_misses": self.miss,
                "network_cache_hit_rate": hits / n if n else None,
                "network_cache_corrupt": self.corrupt}


def run_lookups(shared: dict | None) -> NetworkLookups:
    """The run's counters, kept in SimContext.shared (a fresh one when there is no run)."""
    if shared is None:
        return NetworkLookups()
    found = shared.get("lookups")
    if found is None:
        found = shared["lookups"] = NetworkLookups()
    return found
