"""Paged KV cache of one instance with prefix reuse by block hashes and LRU eviction.

Blocks are counted, not placed: what matters for serving is how many blocks are free, which
hashed blocks exist (for prefix hits) and which of those nobody uses (evictable, oldest
first). Every block is in exactly one of three states:

- free: holds nothing;
- private: held by one request, content not (yet) registered under a hash (a prompt being
  prefilled, decode tokens, a partial last block);
- registered: content known by its hash; `refs[h]` requests use it; at 0 references it sits
  in the LRU list and is evicted (oldest first) when a block is needed.

Invariant: free + private + len(refs) == capacity (checked by `check()` and the tests).
"""

from __future__ import annotations

from collections import OrderedDict


class KVCache:
    """Block accounting of one instance's KV cache (capacity in blocks of `block_tokens`)."""

    __slots__ = ("capacity", "block_tokens", "free", "private", "refs", "lru",
                 "evictions", "hit_blocks", "peak_used")

    def __init__(self, capacity_blocks: int, block_tokens: int):
        if capacity_blocks < 1:
            raise ValueError(f"KV cache needs at least one block, got {capacity_blocks}")
        self.capacity = int(capacity_blocks)
        self.block_tokens = int(block_tokens)
        self.free = self.capacity
        self.private = 0
        self.refs: dict[int, int] = {}
        self.lru: OrderedDict[int, None] = OrderedDict()
        self.evictions = 0
        self.hit_blocks = 0
        self.peak_used = 0

    # --- queries ---------------------------------------------------------------------------
    @property
    def used(self) -> int:
        """Blocks holding something (private or registered, evictable ones included)."""
        return self.capacity - self.free

    @property
    def available(self) -> int:
        """Blocks a request could get now: free plus evictable."""
        return self.free + len(self.lru)

    def match(self, hashes: list[int]) -> tuple[int, int]:
        """(leading blocks of `hashes` present, how many of those are evictable right now)."""
        refs, lru = self.refs, self.lru
        n = idle = 0
        for h in hashes:
            if h not in refs:
                break
            n += 1
            if h in lru:
                idle += 1
        return n, idle

    # --- updates ---------------------------------------------------------------------------
    def acquire(self, hashes: list[int]) -> None:
        """Reference registered blocks (a prefix hit); evictable ones stop being evictable."""
        refs, lru = self.refs, self.lru
        for h in hashes:
            c = refs[h]
            if c == 0:
                del lru[h]
            refs[h] = c + 1
        self.hit_blocks += len(hashes)

    def allocate(self, n: int) -> bool:
        """Take `n` private blocks, evicting LRU blocks as needed; False (nothing taken) if short."""
        if n <= 0:
            return True
        if n > self.free + len(self.lru):
            return False
        short = n - self.free
        if short > 0:
            lru, refs = self.lru, self.refs
            for _ in range(short):
                h, _ = lru.popitem(last=False)
                del refs[h]
            self.evictions += short
            self.free += short
        self.free -= n
        self.private += n
        used = self.capacity - self.free
        if used > self.peak_used:
            self.peak_used = used
        return True

    def register(self, hashes: list[int]) -> int:
        """Turn private blocks of one request into registered blocks with these hashes.

        The request keeps a reference to each. Where another request registered the same
        hash meanwhile, the duplicate private block is freed and the existing one referenced.
        Returns the number of duplicates freed.
        """
        refs, lru = self.refs, self.lru
        dup = 0
        for h in hashes:
            c = refs.get(h)
            if c is None:
                refs[h] = 1
            else:
                if c == 0:
                    del lru[h]
                refs[h] = c + 1
                dup += 1
        self.private -= len(hashes)
        self.free += dup
        return dup

    def release(self, hashes: list[int], private_blocks: int) -> None:
        """Drop one request's references and free its private blocks."""
        refs, lru = self.refs, self.lru
        # Tail blocks first, so they are evicted before the head of the same prefix (a hit
        # needs the whole chain from block 0; losing the head would strand the tail).
        for h in reversed(hashes):
            c = refs[h] - 1
            refs[h] = c
            if c == 0:
                lru[h] = None  # most recently used end
        self.private -= private_blocks
        self.free += private_blocks

    def warm(self, chains: list[list[int]]) -> int:
        """Make prefix chains resident before the run, unreferenced (evictable), as far as the
        free blocks allow; returns the blocks made resident.

        A chain is a prefix's block hashes from block 0. Chains go in whole or as their leading
        blocks (a hit needs the chain from block 0), in the order given; each chain's tail is
        put first into the LRU list, so that eviction strips tails before heads (as `release`).
        Already registered hashes are skipped. Warm blocks are not prefix hits: `hit_blocks`
        counts what requests reuse.
        """
        refs, lru = self.refs, self.lru
        placed = 0
        for chain in chains:
            fresh = [h for h in chain if h not in refs]
            take = fresh[:self.free]
            for h in reversed(take):
                refs[h] = 0
                lru[h] = None
            self.free -= len(take)
            placed += len(take)
            if not self.free:
                break
        used = self.capacity - self.free
        if used > self.peak_used:
            self.peak_used = used
        return placed

    def check(self) -> None:
        """Raise AssertionError if the block accounting is inconsistent."""
        assert self.free >= 0 and self.private >= 0, (self.free, self.private)
        assert self.free + self.private + len(self.refs) == self.capacity, (
            self.free, self.private, len(self.refs), self.capacity)
        assert all(c >= 0 for c in self.refs.values())
        assert sum(1 for c in self.refs.values() if c == 0) == len(self.lru)
