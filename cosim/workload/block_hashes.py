"""Content hashes of KV-cache blocks, so that prefix reuse works by block identity.

A block's hash stands for its tokens *and everything before them* (as vLLM's chained block
hashes and Mooncake's hash_ids do), so equal hashes at equal positions mean reusable KV.
Hashes are int64 built from (kind, id, block index):

- shared prefix (pool) blocks: every session drawing shared prefix g has the same first blocks;
- session blocks: a session's context grows append-only, so block i keeps its hash over turns;
- trace blocks: a trace hash_id covers `trace_block_tokens`; it is split into
  trace_block_tokens / block_tokens cache blocks, or, when cache blocks are larger, a cache
  block is named by the last (chained) hash id it covers;
- unique blocks: tokens no other request can have (a trace request's own output).
"""

from __future__ import annotations

import numpy as np

from cosim.errors import ConfigError
from cosim.workload.requests import RequestTable

POOL, SESSION, TRACE, UNIQUE = 1, 2, 3, 4
_KIND_SHIFT = 60
_ID_SHIFT = 28  # block index < 2**28 (2.7e8 blocks): far beyond any context
_SUB_SHIFT = 8  # trace sub-block index < 256


class BlockHasher:
    """Hashes of the full KV blocks of each request's context (prompt, then output)."""

    def __init__(self, table: RequestTable, block_tokens: int,
                 field_name: str = "deployment.scheduler.kv_block_tokens"):
        self.table = table
        self.block_tokens = int(block_tokens)
        self._trace = table.trace_hashes is not None
        self._sub = self._group = 1
        if self._trace:
            tb = int(table.trace_block_tokens)
            if tb % self.block_tokens == 0 and tb // self.block_tokens <= 1 << _SUB_SHIFT:
                self._sub = tb // self.block_tokens  # cache blocks per trace hash id
            elif self.block_tokens % tb == 0:
                # a cache block spans `_group` trace blocks (e.g. 64-token cache blocks over
                # Bailian's 16-token hash ids): trace hash ids are chained (an id stands for
                # its block and everything before it), so the id of the last trace block a
                # cache block covers identifies that cache block and its whole prefix
                self._group = self.block_tokens // tb
            else:
                raise ConfigError(field_name,
                                  f"{self.block_tokens} must divide the trace's hash block of "
                                  f"{tb} tokens (at most 256 cache blocks per hash id) or be a "
                                  f"multiple of it")
        # Python ints per row, read once per request (not per token).
        self._session = table.session.tolist()
        self._pool = table.pool_id.tolist()
        self._pool_blocks = (table.pool_tokens // self.block_tokens).tolist()

    def pool_chains(self) -> list[list[int]]:
        """Block hashes (from block 0) of each shared prefix of the pool that the requests use,
        by pool id; full blocks only (a partial block is never shared)."""
        blocks: dict[int, int] = {}
        for pool, nb in zip(self._pool, self._pool_blocks, strict=True):
            if pool >= 0 and nb > 0:
                blocks[pool] = max(blocks.get(pool, 0), nb)
        return [[(POOL << _KIND_SHIFT) | (pool << _ID_SHIFT) | i for i in range(nb)]
                for pool, nb in sorted(blocks.items())]

    def hashes(self, rid: int, start: int, stop: int) -> list[int]:
        """Hashes of blocks start..stop-1 of request `rid`'s context."""
        if stop <= start:
            return []
        i = np.arange(start, stop, dtype=np.int64)
        if self._trace:
            t = self.table
            lo, hi = int(t.trace_hash_ptr[rid]), int(t.trace_hash_ptr[rid + 1])
            j = (i + 1) * self._group - 1 if self._group > 1 else i // self._sub
            inside = j < hi - lo
            ids = t.trace_hashes[lo + np.minimum(j, max(hi - lo - 1, 0))] if hi > lo else j
            h = np.where(inside,
                         (TRACE << _KIND_SHIFT) | (ids << _SUB_SHIFT) | (i % self._sub),
                         (UNIQUE << _KIND_SHIFT) | (rid << _ID_SHIFT) | i)
            return h.tolist()
        own = (SESSION << _KIND_SHIFT) | (self._session[rid] << _ID_SHIFT) | i
        pool = self._pool[rid]
        if pool >= 0:
            shared = (POOL << _KIND_SHIFT) | (pool << _ID_SHIFT) | i
            own = np.where(i < self._pool_blocks[rid], shared, own)
        return own.tolist()
