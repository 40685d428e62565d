"""Result cache in front of any network backend: sqlite on disk (shared by a sweep's
processes), an in-memory LRU in front of it.

Key = graph digest + backend variant (name, transport, fidelity knobs) + flow-batch
signature. The signature is a hash of the batch in a canonical order (sorted by start, src,
dst, size), so the same flows listed in another order hit the same entry. Flow sizes are
rounded UP to a geometric grid (bucket_sizes) before keying and before the backend runs,
so batches that differ by a few tokens share one result and the returned finish times are
those of the rounded-up batch: conservative. `exact` keys on exact sizes instead.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import sqlite3
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from cosim.network.flows import FlowBatch, FlowResult, check_finish

SCHEMA_VERSION = 1
log = logging.getLogger(__name__)


def bucket_sizes(size: np.ndarray, grid_percent: float) -> np.ndarray:
    """Round each size up to the grid ceil((1 + grid_percent/100)^k) bytes (int64, >= size)."""
    size = np.asarray(size, dtype=np.int64)
    if size.size == 0:
        return size.copy()
    base = 1.0 + grid_percent / 100.0
    # Smallest k with ceil(base^k) >= size: start a step below the float estimate and
    # climb, so that grid points map to themselves despite rounding.
    k = np.maximum(np.floor(np.log(np.maximum(size, 1)) / math.log(base)) - 1, 0)
    out = np.ceil(base ** k).astype(np.int64)
    out[size == 0] = 0  # nothing to send stays nothing (it needs no network at all)
    low = out < size
    while low.any():
        k[low] += 1
        out[low] = np.ceil(base ** k[low]).astype(np.int64)
        low = out < size
    return out


def _canonical_order(flows: FlowBatch) -> np.ndarray:
    return np.lexsort((flows.size, flows.dst, flows.src, flows.start))


def batch_signature(flows: FlowBatch, order: np.ndarray | None = None) -> str:
    """Hash of (start, src, dst, size) of every flow in canonical order (tags excluded)."""
    if order is None:
        order = _canonical_order(flows)
    h = hashlib.sha256()
    h.update(np.int64(len(flows)).tobytes())
    for a, dt in ((flows.start, "<f8"), (flows.src, "<i4"), (flows.dst, "<i4"),
                  (flows.size, "<i8")):
        h.update(np.ascontiguousarray(a[order], dtype=dt).tobytes())
    return h.hexdigest()


CACHE_SCHEMA = 2  # v2: each row carries a sha256 of (schema, key, finish, stats)


def _checksum(key: str, blob: bytes, stats_json: str) -> str:
    h = hashlib.sha256(f"cosim-cache-v{CACHE_SCHEMA}\0{key}\0".encode())
    h.update(blob)
    h.update(b"\0" + stats_json.encode())
    return h.hexdigest()


def _inode(path: Path) -> int | None:
    try:
        return path.stat().st_ino
    except OSError:
        return None


class ResultCache:
    """sqlite (WAL) + LRU store of finish-time arrays keyed by strings.

    Every row carries the schema version and a checksum; a row that fails the check (an
    edited or truncated entry) is deleted, counted in `corrupt` and treated as a miss, so
    the batch is recomputed: never returned, never fatal. A file that is not a database
    is moved aside (`<name>.corrupt-<time>-<pid>`), counted once and logged, and an empty
    cache starts in its place.
    """

    def __init__(self, path: str | Path | None = None, memory_entries: int = 4096):
        if path is None:
            from cosim.paths import cache_dir

            path = cache_dir() / "network.sqlite"
        self.path = Path(path)
        self.memory_entries = int(memory_entries)
        self._lru: OrderedDict[str, tuple[bytes, str]] = OrderedDict()
        self._conn: sqlite3.Connection | None = None
        self._pid = -1
        self.hits_memory = 0
        self.hits_disk = 0
        self.misses = 0
        self.corrupt = 0

    def _db(self) -> sqlite3.Connection:
        # A connection must not cross fork(): reopen in a child process of a sweep.
        if self._conn is None or self._pid != os.getpid():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            inode = _inode(self.path)
            try:
                conn = self._open()
            except sqlite3.DatabaseError as e:
                # Not a database (a truncated or overwritten file): set it aside, counted
                # and logged, and start an empty cache: a bad file is never fatal. Another
                # process of the sweep may have replaced it already: then just reopen.
                self.corrupt += 1
                if _inode(self.path) == inode:
                    aside = self._set_aside()
                    log.warning("network cache %s is unreadable (%s); moved to %s, starting "
                                "an empty one", self.path, e, aside)
                conn = self._open()
            self._conn, self._pid = conn, os.getpid()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(f"CREATE TABLE IF NOT EXISTS results_v{CACHE_SCHEMA} (key TEXT "
                         "PRIMARY KEY, finish BLOB NOT NULL, stats TEXT NOT NULL, created "
                         "REAL NOT NULL, checksum TEXT NOT NULL)")
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def _set_aside(self) -> Path:
        """Rename the unreadable file (and its -wal/-shm companions) to <name>.corrupt-<t>."""
        stamp = f"corrupt-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        aside = self.path.with_name(f"{self.path.name}.{stamp}")
        for suffix in ("", "-wal", "-shm"):
            try:
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
            except FileNotFoundError:  # absent companion, or another process moved it
                pass
        return aside

    def get(self, key: str) -> tuple[np.ndarray, str] | None:
        """(finish array, stats JSON) stored under key, or None."""
        item = self._lru.get(key)
        if item is not None:
            self._lru.move_to_end(key)
            self.hits_memory += 1
            return np.frombuffer(item[0], dtype="<f8").copy(), item[1]
        try:
            row = self._db().execute(f"SELECT finish, stats, checksum FROM "
                                     f"results_v{CACHE_SCHEMA} WHERE key = ?", (key,)).fetchone()
        except sqlite3.DatabaseError as e:  # a damaged page: this lookup is a miss
            self.corrupt += 1
            self.misses += 1
            log.warning("network cache %s: lookup failed (%s); recomputing", self.path, e)
            return None
        if row is None:
            self.misses += 1
            return None
        blob, stats_json, checksum = row
        ok = (isinstance(blob, bytes) and isinstance(stats_json, str) and len(blob) % 8 == 0
              and checksum == _checksum(key, blob, stats_json))
        if ok:
            finish = np.frombuffer(blob, dtype="<f8")
            ok = bool(np.all(np.isfinite(finish)))
        if not ok:
            self.corrupt += 1
            self.misses += 1
            try:
                self._db().execute(f"DELETE FROM results_v{CACHE_SCHEMA} WHERE key = ?",
                                   (key,))
            except sqlite3.DatabaseError:  # the next lookup of the key checks it again
                pass
            return None
        self.hits_disk += 1
        self._remember(key, blob, stats_json)
        return finish.copy(), stats_json

    def put(self, key: str, finish: np.ndarray, stats_json: str) -> None:
        blob = np.ascontiguousarray(finish, dtype="<f8").tobytes()
        # OR IGNORE: a concurrent run that computed the same batch keeps its (equal) entry.
        try:
            self._db().execute(f"INSERT OR IGNORE INTO results_v{CACHE_SCHEMA} VALUES "
                               "(?, ?, ?, ?, ?)",
                               (key, blob, stats_json, time.time(),
                                _checksum(key, blob, stats_json)))
        except sqlite3.DatabaseError as e:  # a damaged file: keep the result in memory only
            log.warning("network cache %s: store failed (%s)", self.path, e)
        self._remember(key, blob, stats_json)

    def _remember(self, key: str, blob: bytes, stats_json: str) -> None:
        if self.memory_entries <= 0:
            return
        self._lru[key] = (blob, stats_json)
        self._lru.move_to_end(key)
        while len(self._lru) > self.memory_entries:
            self._lru.popitem(last=False)

    def stats(self) -> dict:
        """Hit/miss counters of this process (for summary.json)."""
        hits = self.hits_memory + self.hits_disk
        total = hits + self.misses
        return {"hits": hits, "hits_memory": self.hits_memory, "hits_disk": self.hits_disk,
                "misses": self.misses, "corrupt": self.corrupt, "hit_rate": hits / total if total else 0.0,
                "path": str(self.path)}

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None


class CachedBackend:
    """A NetworkBackend that answers from a ResultCache and asks `inner` on a miss."""

    def __init__(self, inner, cache: ResultCache, graph_digest: str, variant: str,
                 grid_percent: float = 2.0, exact: bool = False):
        self.inner = inner
        self.name = inner.name
        self.cache = cache
        self.grid_percent = float(grid_percent)
        self.exact = bool(exact)
        grid = "exact" if self.exact else f"grid{self.grid_percent:g}%"
        self._prefix = f"v{SCHEMA_VERSION}|{graph_digest}|{variant}|{grid}|"

    def simulate(self, flows: FlowBatch) -> FlowResult:
        """Finish times of `flows` (of their sizes rounded up to the grid unless exact)."""
        import json

        t0 = time.perf_counter()
        sized = flows if self.exact else FlowBatch(
            src=flows.src, dst=flows.dst, size=bucket_sizes(flows.size, self.grid_percent),
            start=flows.start, tag=flows.tag)
        order = _canonical_order(sized)
        key = self._prefix + batch_signature(sized, order)
        grid_info = {"cache_grid_percent": None if self.exact else self.grid_percent}
        found = self.cache.get(key)
        if found is not None:
            canon, stats_json = found
            finish = np.empty_like(canon)
            finish[order] = canon
            stats = dict(json.loads(stats_json), cache_hit=True, **grid_info,
                         wall_s=time.perf_counter() - t0)
            return FlowResult(finish=finish, stats=stats)
        result = self.inner.simulate(sized)
        finish = np.asarray(result.finish, dtype=np.float64)
        check_finish(sized, finish, getattr(self.inner, "name", "network"))  # never cache NaN
        self.cache.put(key, finish[order], json.dumps(_jsonable(result.stats)))
        stats = dict(result.stats, cache_hit=False, **grid_info)
        return FlowResult(finish=finish, stats=stats)

    def stats(self) -> dict:
        return dict(self.cache.stats(), grid_percent=None if self.exact else self.grid_percent)

    @property
    def restarts(self) -> int:
        """The inner backend's server restarts (0 for a backend without servers)."""
        return int(getattr(self.inner, "restarts", 0))

    def close(self) -> None:
        self.inner.close()
        self.cache.close()


def _jsonable(stats: dict) -> dict:
    out = {}
    for k, v in stats.items():
        if isinstance(v, (np.integer,)):
            v = int(v)
        elif isinstance(v, (np.floating,)):
            v = float(v)
        if isinstance(v, (str, int, float, bool)) or v is None:
            out[k] = v
    return out
