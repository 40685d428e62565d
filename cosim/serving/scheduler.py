"""Continuous batching with chunked prefill over a paged KV cache (one instance).

Every iteration the scheduler forms a batch: all decoding requests (one token each), then
prefill chunks within the token budget: first the requests already prefilling (admission
order), then new admissions from the FCFS waiting queue while the running-request limit and
the KV cache allow (a watermark of blocks stays free). Prefill of a request starts after its
cached prefix (prefix hit, whole blocks); the iteration that finishes its prompt samples its
first token, and it decodes from the next iteration on.

Decoding is tracked per instance with O(1) work per iteration, not per request: request r
joining decode at iteration j with K0 tokens of KV attends K0 + (s - j) + 1 tokens at
iteration s and finishes at iteration j + remaining - 1, so the decode set keeps
sum(K0 + 1 - j) and two heaps: of finish iterations and of the iterations where a request's KV
crosses into a new block. When no block is free for that, the most recently admitted running
request is preempted (recompute, as vLLM does): its full blocks stay in the prefix cache, its
other blocks are freed, and it goes to the head of the waiting queue to prefill its prompt and
generated tokens again.

Policies (`policy`, deployment.scheduler.policy; docs/serving.md, "Scheduler policies"):

- ``mixed`` (default, vLLM V1): the iteration above; admission reserves the prompt's blocks.
- ``guaranteed_no_evict`` (TensorRT-LLM's default capacity scheduler, GUARANTEED_NO_EVICT):
  a request is admitted only if the blocks of its prompt *and* of every token it will still
  generate fit next to what the running requests were promised; decode growth draws on that
  reservation, so no request is ever preempted.
- ``prefill_first`` (SGLang without --enable-mixed-chunk): an iteration runs prefill chunks
  only, with the whole token budget, whenever any can be formed, and decodes otherwise; the
  decode clock advances only on iterations that decode.

Speculative decoding (`tokens_per_step` E > 1, deployment.speculative): a step emits E
tokens on average, so the request finishes at iteration j + ceil(remaining / E) - 1, attends
K0 + 1 + E (s - j) tokens at iteration s (the decode set keeps sum(K0 + 1 - E j)) and crosses
into a new block whenever that passes a block boundary. With E = 1 every quantity stays the
integer of the paragraph above.

Hooks for disaggregated deployments: `prefill_only` (a request leaves after its prefill and
keeps its KV blocks until `release()`, e.g. until a P->D transfer ends) and `enqueue_decode()`
(a request arrives with its KV computed elsewhere and only decodes here).
"""

from __future__ import annotations

import math
from collections import deque
from heapq import heappop, heappush
from itertools import chain

from cosim.serving.kv_cache import KVCache
from cosim.serving.request_state import RequestState
from cosim.workload.block_hashes import BlockHasher

POLICIES = ("mixed", "guaranteed_no_evict", "prefill_first")


class KVExhaustedError(RuntimeError):
    """A request cannot fit an empty KV cache (the memory plan should have caught it)."""


class Scheduler:
    """Batch formation and request bookkeeping of one instance."""

    def __init__(self, iid: int, kv: KVCache, hasher: BlockHasher, state: RequestState, *,
                 token_budget: int, max_running: int, chunked_prefill: bool = True,
                 watermark: float = 0.01, prefill_only: bool = False, policy: str = "mixed",
                 tokens_per_step: float = 1.0, batch_wait_iters: int = 0,
                 batch_wait_ratio: float = 0.0):
        self.iid = iid
        self.kv = kv
        self.B = kv.block_tokens
        self.hasher = hasher
        self.state = state
        self.token_budget = int(token_budget)
        self.max_running = int(max_running)
        self.chunked = bool(chunked_prefill)
        self.watermark_blocks = int(math.ceil(watermark * kv.capacity))
        self.prefill_only = bool(prefill_only)
        if policy not in POLICIES:
            raise ValueError(f"unknown scheduler policy {policy!r}; use one of {', '.join(POLICIES)}")
        self.policy = policy
        # a prefill-only rank hands requests off after their prompt: nothing to reserve
        self.reserve_output = policy == "guaranteed_no_evict" and not self.prefill_only
        self.prefill_first = policy == "prefill_first"
        self.reserved = 0  # guaranteed_no_evict: blocks promised to running requests, not taken
        self.future: dict[int, int] = {}  # per request: its promised, not yet taken blocks
        self._prefill_iter = False  # prefill_first: the iteration in flight ran no decode
        # Set by the instance for one plan (attention-DP balance, Instance._adp_gate): run no
        # prefill chunk and admit nothing this iteration.
        self.hold_prefill = False
        # Batch waiting (TensorRT-LLM; deployment.scheduler.batch_wait_*): context work waits in
        # iterations that also decode, until the batch would hold batch_wait_ratio x the token
        # budget or it has waited batch_wait_iters such iterations.
        self.batch_wait_iters = int(batch_wait_iters)
        self.batch_wait_tokens = float(batch_wait_ratio) * self.token_budget
        self.batch_wait = self.batch_wait_iters > 0 or batch_wait_ratio > 0
        self._bw_count = 0
        self.batch_waits = 0  # iterations whose context work batch waiting held back
        # Speculative decoding (deployment.speculative): a decode step emits E tokens on
        # average, so a request with R tokens to go decodes in ceil(R / E) steps and its context
        # grows by E per step. kv_rate stays the int 1 without it (today's integer path).
        self.kv_rate: float = 1 if tokens_per_step == 1 else float(tokens_per_step)

        self.waiting: deque[int] = deque()  # FCFS, preempted requests at the head
        self.decode_waiting: deque[int] = deque()  # KV computed elsewhere (disaggregated)
        self.prefilling: dict[int, None] = {}  # admitted, prompt not done; admission order
        self.running: dict[int, None] = {}  # prefilling + decoding, admission order
        self.handoff: dict[int, None] = {}  # prefill_only: done, KV held until release()
        self.held: dict[int, list[int]] = {}  # registered block hashes a request references
        self.private: dict[int, int] = {}  # unregistered blocks a request holds
        # decode set (see module docstring)
        self.dec_join: dict[int, int] = {}
        self.dec_k0: dict[int, int] = {}
        self.dec_fin: dict[int, int] = {}
        self.n_dec = 0
        self.kv_off = 0
        self.fin_heap: list[tuple[int, int, int]] = []
        self.blk_heap: list[tuple[int, int, int]] = []
        self.tick = 0
        self.chunks: list[tuple[int, int]] = []  # prefill chunks of the iteration in flight
        self.preemptions = 0
        self.kv_stalls = 0  # iterations whose next admission had to wait for KV blocks
        self._blocked_avail = -1  # free+evictable blocks when admission last failed

    # --- arrivals ----------------------------------------------------------------------------
    def enqueue(self, rid: int) -> None:
        """A request to prefill and decode here."""
        self.waiting.append(rid)

    def enqueue_decode(self, rid: int) -> None:
        """A request whose prompt was prefilled elsewhere (state.ctx_len tokens of KV)."""
        self.decode_waiting.append(rid)

    @property
    def load(self) -> int:
        """Requests queued or running here (what least-loaded routing compares)."""
        return len(self.waiting) + len(self.decode_waiting) + len(self.running)

    @property
    def has_work(self) -> bool:
        return bool(self.n_dec or self.prefilling or self.waiting or self.decode_waiting)

    # --- batch formation ---------------------------------------------------------------------
    def plan(self, now: float) -> tuple[int, int, int, int, int] | None:
        """Form the next iteration's batch at time `now`.

        Returns (decode requests, their summed context, prefill tokens, mean prefill context at
        the end of the chunks, prefill requests), or None when there is nothing to run.
        """
        s = self.tick
        bh = self.blk_heap
        if bh and bh[0][0] <= s:
            self._grow_blocks(s)
        if self.waiting or self.prefilling or self.decode_waiting:
            return self._plan_mixed(now, s)
        n = self.n_dec
        if n == 0:
            return None
        return n, self.kv_sum(n, s), 0, 0, 0

    def kv_sum(self, n: int, s: int) -> int:
        """Summed context of the n decoding requests at iteration s (module docstring)."""
        r = self.kv_rate
        return self.kv_off + n * s if r == 1 else int(self.kv_off + n * s * r)

    def _plan_mixed(self, now: float, s: int) -> tuple[int, int, int, int, int] | None:
        st = self.state
        dw = self.decode_waiting
        while dw and len(self.running) < self.max_running and self._admit_decode(dw[0], s):
            dw.popleft()
        n = self.n_dec
        pf = self.prefill_first
        budget = self.token_budget if pf else self.token_budget - n
        chunks: list[tuple[int, int]] = []
        ctx_end = 0
        hold = self.hold_prefill
        if self.batch_wait and n and not hold and (self.prefilling or self.waiting):
            hold = self._batch_wait_holds(n, budget)
        if not hold:
            ctx_len, computed = st.ctx_len, st.computed
            for rid in self.prefilling:
                if budget <= 0:
                    break
                rem = ctx_len[rid] - computed[rid]
                if rem > budget:
                    if self.chunked:
                        rem = budget
                    elif chunks:
                        break
                chunks.append((rid, rem))
                budget -= rem
                ctx_end += computed[rid] + rem
            waiting = self.waiting
            while budget > 0 and waiting and len(self.running) < self.max_running:
                rid = waiting[0]
                if not self._admit(rid, now):
                    break
                waiting.popleft()
                self.prefilling[rid] = None
                rem = ctx_len[rid] - computed[rid]
                if rem > budget:
                    if self.chunked:
                        rem = budget
                    elif chunks:
                        break  # admitted; its whole prompt runs next iteration
                chunks.append((rid, rem))
                budget -= rem
                ctx_end += computed[rid] + rem
        self.chunks = chunks
        p_req = len(chunks)
        if pf:
            self._prefill_iter = p_req > 0
            if p_req:  # a prefill-only iteration: the decode set waits
                p_tok = sum(c for _, c in chunks)
                return 0, 0, p_tok, -(-ctx_end // p_req), p_req
        if p_req == 0:
            if n == 0:
                if (self.waiting and not self.running and not self.handoff
                        and not self.hold_prefill):
                    raise KVExhaustedError(
                        f"instance {self.iid}: request {self.waiting[0]} does not fit the empty "
                        f"KV cache ({self.kv.capacity} blocks of {self.B} tokens)")
                return None
            return n, self.kv_sum(n, s), 0, 0, 0
        p_tok = sum(c for _, c in chunks)
        return n, self.kv_sum(n, s), p_tok, -(-ctx_end // p_req), p_req

    def _batch_wait_holds(self, n: int, budget: int) -> bool:
        """TensorRT-LLM's _waiting_requests: hold this iteration's context work unless the
        batch (n decode tokens + the context tokens that fit the budget) reaches the token
        threshold or the wait has lasted batch_wait_iters iterations."""
        st = self.state
        ctx = 0
        for rid in chain(self.prefilling, self.waiting):  # stops once past the budget
            rem = st.ctx_len[rid] - st.computed[rid]
            if ctx + rem > budget:
                if self.chunked:
                    ctx = budget
                break
            ctx += rem
        if self._bw_count >= self.batch_wait_iters or n + ctx >= self.batch_wait_tokens:
            self._bw_count = 0
            return False
        self._bw_count += 1
        self.batch_waits += 1
        return True

    def _admit(self, rid: int, now: float) -> bool:
        """Reserve KV for a waiting request's prompt (after its prefix hit); False if no room."""
        kv = self.kv
        if self.running and kv.free + len(kv.lru) <= self._blocked_avail:
            self.kv_stalls += 1
            return False  # nothing was freed since the last failed try
        st = self.state
        B = self.B
        L = st.ctx_len[rid]
        nblk = -(-L // B)
        # At least one token is computed even on a full hit (its logits give the next token).
        hashes = self.hasher.hashes(rid, 0, (L - 1) // B)
        hit, idle = kv.match(hashes)
        need = nblk - hit
        avail = kv.free + len(kv.lru) - idle
        future = 0
        if self.reserve_output:
            # the blocks its remaining output will take (KV of all but the last token)
            final = L + st.output[rid] - st.generated[rid] - 1
            future = max(0, -(-final // B) - nblk)
            avail -= self.reserved + future
        if need > avail - (self.watermark_blocks if self.running and not self.reserve_output
                           else 0):
            if not self.running and not self.handoff and need > avail:
                raise KVExhaustedError(
                    f"instance {self.iid}: request {rid} needs {nblk} KV blocks of {B} tokens, "
                    f"the cache has {kv.capacity}")
            self._blocked_avail = kv.free + len(kv.lru)
            self.kv_stalls += 1
            return False
        self._blocked_avail = -1
        if future:
            self.reserved += future
            self.future[rid] = future
        got = hashes[:hit]
        kv.acquire(got)
        kv.allocate(need)
        self.held[rid] = got
        self.private[rid] = need
        st.computed[rid] = hit * B
        if st.scheduled_s[rid] != st.scheduled_s[rid]:  # NaN: first admission
            st.scheduled_s[rid] = now
            st.cached_tokens[rid] = hit * B
        st.instance[rid] = self.iid
        self.running[rid] = None
        return True

    def _admit_decode(self, rid: int, s: int) -> bool:
        kv = self.kv
        st = self.state
        need = -(-st.ctx_len[rid] // self.B)
        future = 0
        extra = self.watermark_blocks if self.running else 0
        if self.reserve_output:
            final = st.ctx_len[rid] + st.output[rid] - st.generated[rid]
            future = max(0, -(-final // self.B) - need)
            extra = self.reserved + future
        if need > kv.free + len(kv.lru) - extra:
            if not self.running and need + future > kv.free + len(kv.lru):
                raise KVExhaustedError(f"instance {self.iid}: request {rid} needs {need + future} "
                                       f"KV blocks, the cache has {kv.capacity}")
            return False
        if future:
            self.reserved += future
            self.future[rid] = future
        kv.allocate(need)
        self.held[rid] = []
        self.private[rid] = need
        st.instance[rid] = self.iid
        self.running[rid] = None
        self._join_decode(rid, s)
        return True

    def _grow_blocks(self, s: int) -> None:
        """Give a new block to each decoding request whose KV crosses a block boundary at s."""
        bh, kv, B = self.blk_heap, self.kv, self.B
        while bh and bh[0][0] <= s:
            t, rid, j = heappop(bh)
            if self.dec_join.get(rid) != j:
                continue  # finished or preempted since
            f = self.future.get(rid, 0)
            if f:  # guaranteed_no_evict: the block was promised at admission
                self.future[rid] = f - 1
                self.reserved -= 1
            while not kv.allocate(1):
                victim = next(reversed(self.running))  # the newest admission goes first
                self._preempt(victim, s)
                if victim == rid:
                    break
            else:
                self.private[rid] += 1
                nxt = t + B if self.kv_rate == 1 else self._next_block(t, j, self.dec_k0[rid])
                if nxt <= self.dec_fin[rid]:
                    heappush(bh, (nxt, rid, j))

    # --- iteration end -----------------------------------------------------------------------
    def complete(self, now: float) -> tuple[list[int], list[int]]:
        """Apply the iteration that just ended at `now`.

        Returns (finished request ids, handed-off request ids); both usually empty.
        """
        s = self.tick
        st = self.state
        finished: list[int] = []
        handed: list[int] = []
        pf_iter = self._prefill_iter
        if pf_iter:  # prefill_first: no decode ran, the decode clock stays at s
            self._prefill_iter = False
            s -= 1
        if self.chunks:
            B = self.B
            for rid, c in self.chunks:
                done = st.computed[rid] + c
                st.computed[rid] = done
                st.prefill_tokens[rid] += c
                if done < st.ctx_len[rid]:
                    continue
                del self.prefilling[rid]
                self._register(rid, done // B)
                g = st.generated[rid] + 1
                st.generated[rid] = g
                if st.first_token_s[rid] != st.first_token_s[rid]:
                    st.first_token_s[rid] = now
                if self.prefill_only and g < st.output[rid]:
                    del self.running[rid]
                    self.handoff[rid] = None
                    st.ctx_len[rid] = done
                    handed.append(rid)
                elif g >= st.output[rid]:
                    self._release(rid)
                    del self.running[rid]
                    self._finished(rid, now, finished)
                else:
                    self._join_decode(rid, s + 1)
            self.chunks = []
        fh = self.fin_heap
        while fh and fh[0][0] <= s and not pf_iter:
            _, rid, j = heappop(fh)
            if self.dec_join.get(rid) != j:
                continue
            self._leave_decode(rid, s + 1, finished=True)
            self._release(rid)
            del self.running[rid]
            self._finished(rid, now, finished)
        self.tick = s + 1
        return finished, handed

    def _finished(self, rid: int, now: float, out: list[int]) -> None:
        st = self.state
        st.finish_s[rid] = now
        st.completed += 1
        out.append(rid)

    def release(self, rid: int) -> None:
        """Free the KV of a handed-off request (prefill_only), e.g. after its transfer."""
        del self.handoff[rid]
        self._release(rid)

    # --- decode set --------------------------------------------------------------------------
    def _join_decode(self, rid: int, j: int) -> None:
        st = self.state
        k0 = st.ctx_len[rid]
        r = self.kv_rate
        left = st.output[rid] - st.generated[rid]
        fin = j + (left if r == 1 else max(1, math.ceil(left / r - 1e-9))) - 1
        self.dec_join[rid] = j
        self.dec_k0[rid] = k0
        self.dec_fin[rid] = fin
        self.n_dec += 1
        self.kv_off += k0 + 1 - j * r
        heappush(self.fin_heap, (fin, rid, j))
        # first iteration that writes into a new block
        nb = j + (-k0) % self.B if r == 1 else self._next_block(j - 1, j, k0)
        if nb <= fin:
            heappush(self.blk_heap, (nb, rid, j))

    def _next_block(self, t: int, j: int, k0: int) -> int:
        """Speculative decoding: the first iteration after t whose E tokens cross into a new
        block of a request that joined at j with k0 tokens (KV = k0 + E (s - j + 1) after s)."""
        r, B = self.kv_rate, self.B
        x = (-k0) % B  # free slots in its last block at join
        m = 0 if t < j else math.ceil(((t - j) * r - x) / B - 1e-9) + 1
        while True:
            nb = j + int((x + B * m) // r)
            if nb > t:
                return nb
            m += 1

    def _leave_decode(self, rid: int, s_next: int, finished: bool = False) -> None:
        """Remove from the decode set, having executed iterations j..s_next-1; register its KV."""
        j = self.dec_join.pop(rid)
        k0 = self.dec_k0.pop(rid)
        del self.dec_fin[rid]
        self.n_dec -= 1
        r = self.kv_rate
        self.kv_off -= k0 + 1 - j * r
        steps = s_next - j
        st = self.state
        if r != 1:  # E tokens per step; a finished request has all its tokens
            left = st.output[rid] - st.generated[rid]
            steps = left if finished else min(left, int(steps * r))
        st.generated[rid] += steps
        self._register(rid, (k0 + steps) // self.B)

    # --- KV bookkeeping ----------------------------------------------------------------------
    def _register(self, rid: int, n_full: int) -> None:
        held = self.held[rid]
        a = len(held)
        if n_full > a:
            hs = self.hasher.hashes(rid, a, n_full)
            self.kv.register(hs)
            held.extend(hs)
            self.private[rid] -= len(hs)

    def _release(self, rid: int) -> None:
        self.kv.release(self.held.pop(rid), self.private.pop(rid))
        if self.future:
            self.reserved -= self.future.pop(rid, 0)

    def _preempt(self, rid: int, s: int) -> None:
        """Recompute preemption: free the request's KV (full blocks stay cached), requeue it."""
        st = self.state
        if rid in self.dec_join:
            self._leave_decode(rid, s)
        else:
            del self.prefilling[rid]
            self._register(rid, st.computed[rid] // self.B)
        st.ctx_len[rid] = st.prompt[rid] + st.generated[rid]
        st.computed[rid] = 0
        self._release(rid)
        del self.running[rid]
        st.preemptions[rid] += 1
        st.preempted_total += 1
        self.preemptions += 1
        self.waiting.appendleft(rid)
        self._blocked_avail = -1
