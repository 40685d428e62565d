"""A serving instance: GPUs with one parallel layout, iterating in lock step.

An instance has `layout.dp` attention-DP ranks. Each rank is a :class:`Scheduler` with its own
KV cache, waiting queue and batch (requests are placed on a rank when they arrive: the rank
with the longest cached prefix when prefix-aware, else the least loaded one, rotating on
ties). All ranks run each iteration together, because every MoE layer exchanges the tokens of
all ranks: the iteration lasts the slowest rank's attention plus the FFN and the communication
of all the instance's tokens (cosim.serving.iteration_cost).

The interface deployments use (see docs/serving.md, "Writing a deployment"):

    inst.enqueue(rid) / inst.enqueue_decode(rid)   add work
    inst.start(now) -> duration or None           form and price the next iteration
    inst.plan_ranks(now[, plans]) -> counts        form the ranks' batches (plans: for other pricing)
    inst.complete(now) -> (finished, handed_off)  apply the iteration that ended at `now`
    inst.release(rid)                             free a handed-off request's KV
    inst.busy                                      an iteration is in flight
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cosim.model.layout import ParallelLayout
from cosim.serving.iteration_cost import IterationCost
from cosim.serving.scheduler import Scheduler

ITERATION_COLUMNS = ("start_s", "duration_s", "compute_s", "comm_s", "decode_requests",
                     "prefill_tokens", "prefill_requests", "waiting", "running",
                     "kv_used_blocks", "rank_tokens_max")


@dataclass
class InstanceInfo:
    """Static facts of an instance (for summaries and tables)."""

    iid: int
    role: str
    layout: ParallelLayout
    first_gpu: int  # global GPU index of its first GPU (instances own contiguous GPU ranges)
    num_gpus: int


class Instance:
    """One serving instance (see the module docstring)."""

    __slots__ = ("info", "iid", "ranks", "dp", "cost", "busy", "rows", "end_event",
                 "_rr", "_rank_of", "prefix_routing", "adp_timeout", "adp_batch_wait",
                 "_adp_wait", "_adp_batch", "adp_held")

    def __init__(self, info: InstanceInfo, ranks: list[Scheduler], cost: IterationCost,
                 prefix_routing: bool = False):
        self.info = info
        self.iid = info.iid
        self.ranks = ranks
        self.dp = len(ranks)
        self.cost = cost
        self.busy = False
        self.rows: list[tuple] = []  # one per iteration, ITERATION_COLUMNS
        self.end_event = None  # the deployment's reusable IterationEnd event for this instance
        self._rr = 0
        self._rank_of: dict[int, Scheduler] = {}
        self.prefix_routing = prefix_routing
        # attention-DP balance (SchedulerConfig.adp_balance_*; 0: off) and its counters
        self.adp_timeout = 0
        self.adp_batch_wait = 0
        self._adp_wait = 0
        self._adp_batch = 0
        self.adp_held = 0  # iterations whose context requests the balance held back

    def set_adp_balance(self, timeout_iters: int, batching_wait_iters: int = 0) -> None:
        """Hold context requests until every rank has one (TensorRT-LLM's attention-DP balance)."""
        if self.dp > 1:
            self.adp_timeout = int(timeout_iters)
            self.adp_batch_wait = int(batching_wait_iters)

    def _adp_gate(self) -> None:
        """Decide whether this iteration runs context requests (TensorRT-LLM 1.1,
        PyExecutor._balance_adp_requests): only when every rank has one scheduled and a free
        batch slot; otherwise they wait, until the waiting counter (which also counts
        iterations with no context request anywhere) reaches the timeout or some rank with work
        has no decode request. A rank with nothing at all counts as decoding: TensorRT-LLM
        pads it with a dummy generation request (_pad_attention_dp_dummy_request)."""
        all_ctx = all_gen = slots = True
        any_ctx = False
        for sch in self.ranks:
            ctx = bool(sch.waiting or sch.prefilling)
            n = sch.n_dec
            if ctx:
                any_ctx = True
            else:
                all_ctx = False
            if n == 0 and (ctx or sch.decode_waiting):
                all_gen = False
            if n >= sch.max_running:
                slots = False
        hold = False
        if slots and all_ctx:
            self._adp_wait = 0
            if all_gen:
                if self._adp_batch < self.adp_batch_wait:
                    self._adp_batch += 1
                    hold = True
                else:
                    self._adp_batch = 0
        else:
            self._adp_wait += 1
            hold = True
            if self._adp_wait >= self.adp_timeout or not all_gen:
                self._adp_wait = 0
                hold = False
        if hold and any_ctx:
            self.adp_held += 1
        for sch in self.ranks:
            sch.hold_prefill = hold

    # --- work in ------------------------------------------------------------------------------
    def pick_rank(self, rid: int) -> Scheduler:
        """The rank a new request goes to."""
        ranks = self.ranks
        if self.dp == 1:
            return ranks[0]
        if self.prefix_routing:
            r0 = ranks[0]
            hashes = r0.hasher.hashes(rid, 0, (r0.state.ctx_len[rid] - 1) // r0.B)
            if hashes:
                best, key = None, None
                for r in ranks:
                    k = (r.kv.match(hashes)[0], -r.load)
                    if key is None or k > key:
                        best, key = r, k
                if key[0] > 0:
                    return best
        start = self._rr
        self._rr = (start + 1) % self.dp
        # the least loaded rank (Scheduler.load), the first one from `start` on, wrapping
        loads = [len(r.waiting) + len(r.decode_waiting) + len(r.running) for r in ranks]
        low = min(loads)
        try:
            return ranks[loads.index(low, start)]
        except ValueError:  # none from `start` to the end: the first one from 0
            return ranks[loads.index(low)]

    def enqueue(self, rid: int) -> None:
        r = self.pick_rank(rid)
        self._rank_of[rid] = r
        r.enqueue(rid)

    def enqueue_decode(self, rid: int) -> None:
        r = self.pick_rank(rid)
        self._rank_of[rid] = r
        r.enqueue_decode(rid)

    def release(self, rid: int) -> None:
        """Free the KV a handed-off request still holds (prefill_only ranks)."""
        self._rank_of.pop(rid).release(rid)

    def prefix_match(self, hashes: list[int]) -> int:
        """Longest cached prefix (blocks) of `hashes` on any rank."""
        return max(r.kv.match(hashes)[0] for r in self.ranks)

    @property
    def load(self) -> int:
        n = 0
        for r in self.ranks:  # Scheduler.load, inlined (the router asks at every arrival)
            n += len(r.waiting) + len(r.decode_waiting) + len(r.running)
        return n

    @property
    def kv_capacity_blocks(self) -> int:
        return sum(r.kv.capacity for r in self.ranks)

    # --- iterations ---------------------------------------------------------------------------
    def start(self, now: float) -> float | None:
        """Form and price the next iteration; None (and not busy) when there is no work."""
        cost = self.cost
        if self.dp == 1:
            sch = self.ranks[0]
            p = sch.plan(now)
            if p is None:
                self.busy = False
                return None
            n, kv_sum, p_tok, p_kv, p_req = p
            comp = cost.whole(n, kv_sum, p_tok, p_kv, p_req)
            tokens = n + p_tok
            if cost.q == 1:
                comm = cost.comm_s(tokens) if p_tok else cost.comm_decode_s(tokens)
            else:  # speculative decoding: k + 1 verified positions per decode request
                vt = n * cost.q + p_tok
                comm = ((cost.comm_s(vt) if p_tok else cost.comm_decode_s(vt))
                        + cost.draft_comm_s(n, p_tok))
            dur = comp + comm
            kv = sch.kv
            self.rows.append((now, dur, comp, comm, n, p_tok, p_req, len(sch.waiting),
                              len(sch.running), kv.capacity - kv.free, tokens))
            self.busy = True
            return dur
        attn, n_all, pt_all, pr_all, wait, run, used, tmax = self.plan_ranks(now)
        tokens = n_all + pt_all
        if tokens == 0:
            self.busy = False
            return None
        if cost.q == 1:
            comp = attn + cost.ffn(-(-tokens // self.dp))
            comm = cost.comm_s(tokens) if pt_all else cost.comm_decode_s(tokens)
        else:  # speculative decoding: k + 1 verified positions per decode request
            vt = n_all * cost.q + pt_all
            comp = attn + cost.ffn(-(-vt // self.dp))
            comm = ((cost.comm_s(vt) if pt_all else cost.comm_decode_s(vt))
                    + cost.draft_comm_s(n_all, pt_all))
        dur = comp + comm
        self.rows.append((now, dur, comp, comm, n_all, pt_all, pr_all, wait, run, used, tmax))
        self.busy = True
        return dur

    def plan_ranks(self, now: float, plans: list | None = None) -> tuple[float, int, int, int, int,
                                                                         int, int, int]:
        """Form every rank's batch for the iteration starting at `now`.

        Returns (attention seconds of the slowest rank, decode requests, prefill tokens, prefill
        requests, waiting, running, KV blocks used, most tokens on one rank), the counts summed
        over all ranks (the iteration row's columns). With a `plans` list, each rank's
        Scheduler.plan tuple is appended to it instead of pricing its attention (0.0 returned).
        """
        if self.adp_timeout:
            self._adp_gate()
        cost = self.cost
        attention = cost.attention
        decode_attention = cost.decode_attention
        attn = 0.0
        n_all = pt_all = pr_all = wait = run = used = tmax = 0
        for sch in self.ranks:
            s = sch.tick
            bh = sch.blk_heap
            # Hot path (a rank that only decodes, no block due): Scheduler.plan inlined.
            if not (sch.waiting or sch.prefilling or sch.decode_waiting or (bh and bh[0][0] <= s)):
                kv = sch.kv
                run += len(sch.running)
                used += kv.capacity - kv.free
                n = sch.n_dec
                if n:
                    kvs = sch.kv_off + n * s if sch.kv_rate == 1 else sch.kv_sum(n, s)
                    if plans is None:
                        a = decode_attention(n, kvs)
                        if a > attn:
                            attn = a
                    else:
                        plans.append((n, kvs, 0, 0, 0))
                    if n > tmax:
                        tmax = n
                    n_all += n
                continue
            p = sch.plan(now)  # may admit, preempt or allocate: count afterwards
            kv = sch.kv
            wait += len(sch.waiting)
            run += len(sch.running)
            used += kv.capacity - kv.free
            if p is None:
                continue
            n, kv_sum, p_tok, p_kv, p_req = p
            if plans is None:
                a = attention(n, kv_sum, p_tok, p_kv, p_req)
                if a > attn:
                    attn = a
            else:
                plans.append(p)
            t = n + p_tok
            if t > tmax:
                tmax = t
            n_all += n
            pt_all += p_tok
            pr_all += p_req
        return attn, n_all, pt_all, pr_all, wait, run, used, tmax

    def complete(self, now: float) -> tuple[list[int], list[int]]:
        """Apply the iteration that ended at `now`: (finished ids, handed-off ids)."""
        if self.dp == 1:
            fin, hand = self.ranks[0].complete(now)
        else:
            fin, hand = [], []
            for sch in self.ranks:
                s = sch.tick
                fh = sch.fin_heap
                if not sch.chunks and not (fh and fh[0][0] <= s):
                    sch.tick = s + 1  # nothing ends on this rank: Scheduler.complete inlined
                    continue
                f, h = sch.complete(now)
                if f:
                    fin.extend(f)
                if h:
                    hand.extend(h)
        if fin:
            rank_of = self._rank_of
            for rid in fin:
                del rank_of[rid]
        return fin, hand

    def iteration_columns(self) -> dict[str, np.ndarray]:
        """This instance's iterations as columns (ITERATION_COLUMNS plus `instance`)."""
        n = len(self.rows)
        if n == 0:
            cols = {c: np.zeros(0) for c in ITERATION_COLUMNS}
        else:
            arr = np.asarray(self.rows, dtype=np.float64)
            cols = {c: arr[:, i] for i, c in enumerate(ITERATION_COLUMNS)}
        for c in ITERATION_COLUMNS[4:]:
            cols[c] = cols[c].astype(np.int64)
        cols["instance"] = np.full(n, self.iid, dtype=np.int64)
        return cols
