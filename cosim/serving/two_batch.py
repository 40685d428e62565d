"""Two-batch overlap (deployment.overlap=two_batch): an iteration as two micro-batches whose
communication hides behind each other's compute.

The mechanism is the one the frameworks ship for DeepSeek-style EP serving:
- SGLang `--enable-two-batch-overlap` (python/sglang/srt/two_batch_overlap.py): the batch is
  split in two (decode by requests, prefill by tokens) and the layer's operations are
  interleaved so micro-batch A's dispatch/combine run while B computes;
- vLLM dual-batch overlap (`--enable-dbo`, vllm/v1/worker/ubatching.py): two micro-batches
  ("ubatches") on separate compute and communication streams, yielding to each other at
  every all-to-all;
- DeepSeek's inference profile (github.com/deepseek-ai/profile-data, "two micro-batches"
  for prefill and decode; DeepEP's README "two-micro-batch overlapping" figure; the
  DeepSeek-V3 report's DualPipe overlap, arXiv 2412.19437 sec. 3.2.1).

Per layer each micro-batch runs attention -> dispatch -> experts -> combine; attention and
experts hold the GPUs' compute stream, dispatch and combine the communication stream
(cosim.timeline.EP_STAGES), tasks issued in program order. cosim.timeline schedules it
(shared_chain_makespan: schedule_pipeline's recurrence without the arrays). Stage times of
micro-batch h: its compute priced as the plain iteration prices a batch (cosim.serving
.iteration_cost) and split into the attention part and the FFN part, its communication
(the comm model at its token count) split into dispatch (+ TP all-reduce) and combine,
all spread evenly over the model's layers (as AFD spreads its stages).

Reported as AFD reports it: compute_s = the schedule with free communication (= the two
halves' compute, back to back on the compute stream), comm_s = iteration - compute_s
(the exposed communication), duration_s = the schedule's makespan. With free communication
the iteration is exactly compute(h0) + compute(h1); it is never longer than the sum of both
halves' compute and communication. A batch that cannot be split (fewer than two tokens)
runs as one micro-batch, priced as without overlap.
"""

from __future__ import annotations

from cosim.serving.instance import Instance, InstanceInfo
from cosim.serving.iteration_cost import IterationCost
from cosim.serving.scheduler import Scheduler
from cosim.timeline.pipeline import shared_chain_makespan

# attention, dispatch, experts, combine -> compute stream 0, communication stream 1
_EP_RESOURCE = [0, 1, 0, 1]


def split_plan(plan: tuple[int, int, int, int, int]) -> tuple[tuple, tuple]:
    """A rank's batch (decode requests, their context sum, prefill tokens, prefill context,
    prefill requests) as two micro-batches.

    Decode requests are split by requests (the first half gets the odd one) with the mean
    context kept; prefill tokens are split by tokens, as SGLang's two-batch overlap splits an
    extend batch, a request cut in two counting in both halves, each half attending the chunk's
    full context (conservative for the first half).
    """
    n, kv_sum, p_tok, p_kv, p_req = plan
    n0 = n - n // 2
    kv0 = kv_sum * n0 // n if n else 0
    t0 = p_tok - p_tok // 2
    t1 = p_tok - t0
    r0 = min(t0, max(1, -(-p_req // 2))) if t0 else 0
    r1 = min(t1, max(1, p_req - p_req // 2)) if t1 else 0
    return ((n0, kv0, t0, p_kv if t0 else 0, r0),
            (n - n0, kv_sum - kv0, t1, p_kv if t1 else 0, r1))


class TwoBatchInstance(Instance):
    """An instance whose iterations run as two overlapped micro-batches (module docstring)."""

    __slots__ = ("layers", "_ffn_share", "_comm_share", "_sched", "overlapped")

    def __init__(self, info: InstanceInfo, ranks: list[Scheduler], cost: IterationCost,
                 num_layers: int, prefix_routing: bool = False):
        super().__init__(info, ranks, cost, prefix_routing=prefix_routing)
        self.layers = max(1, int(num_layers))
        self._ffn_share: dict[tuple, float] = {}  # dp = 1: FFN seconds of a batch shape
        self._comm_share: dict[tuple, float] = {}  # (tokens, decode only) -> dispatch share
        self._sched: dict[tuple, tuple[float, float]] = {}
        self.overlapped = 0  # iterations that ran as two micro-batches

    # --- pricing ---------------------------------------------------------------------------
    def _ffn_s(self, p: tuple) -> float:
        """FFN seconds inside cost.whole(*p) (dp = 1): the step cost's FFN stage, which depends
        on the token and request counts and the phase only (not on the context)."""
        n, kv_sum, p_tok, p_kv, p_req = p
        key = (n, p_tok, p_req)
        v = self._ffn_share.get(key)
        if v is None:
            sc = self.cost.step_cost.cost(n, -(-kv_sum // n) if n else 0, p_tok, p_kv, p_req)
            v = self._ffn_share[key] = float(getattr(sc, "ffn_s", 0.0))
        return v

    def _dispatch_share(self, tokens: int, decode_only: bool) -> float:
        """Share of an iteration's communication before the experts (EP dispatch and TP
        all-reduce) from the comm model's breakdown; half when it has none."""
        key = (tokens, decode_only)
        v = self._comm_share.get(key)
        if v is None:
            comm = self.cost.comm
            # FabricComm.parts: the breakdown of an iteration it has just timed, without
            # counting its network lookups twice
            br = getattr(comm, "parts", None) or getattr(comm, "breakdown", None)
            v = 0.5
            if callable(br):
                b = br(tokens, decode_only) if getattr(comm, "phase_aware", False) else br(tokens)
                tot = sum(b.values())
                if tot > 0:
                    v = (b.get("ep_dispatch", 0.0) + b.get("tp_allreduce", 0.0)) / tot
            self._comm_share[key] = v
        return v

    def _half(self, plans: list[tuple]) -> tuple[float, float, int]:
        """(attention-part seconds, FFN-part seconds, tokens through the FFN and the fabric)
        of one micro-batch of the ranks (k + 1 per decode request under speculative decoding)."""
        cost = self.cost
        q = cost.q
        tokens = sum(p[0] * q + p[2] for p in plans)
        if tokens == 0:
            return 0.0, 0.0, 0
        if self.dp == 1:
            p = plans[0]
            whole = cost.whole(*p)
            f = min(self._ffn_s((p[0] * q, p[1] * q, p[2], p[3], p[4])), whole)
            return whole - f, f, tokens
        attn = 0.0
        for p in plans:
            if p[0] + p[2]:
                a = cost.attention(*p)
                if a > attn:
                    attn = a
        return attn, cost.ffn(-(-tokens // self.dp)), tokens

    def _comm(self, tokens: int, decode_only: bool) -> float:
        cost = self.cost
        return cost.comm_decode_s(tokens) if decode_only else cost.comm_s(tokens)

    def _plain(self, plans: list[tuple], decode_only: bool) -> tuple[float, float, int]:
        """(compute, communication, tokens) of the batch as one micro-batch (no overlap)."""
        a, f, tokens = self._half(plans)
        return a + f, self._comm(tokens, decode_only) + self._draft_comm(plans), tokens

    def _draft_comm(self, plans: list[tuple]) -> float:
        """A speculative draft's communication for these rank batches (0 without one)."""
        if self.cost.q == 1:
            return 0.0
        return self.cost.draft_comm_s(sum(p[0] for p in plans), sum(p[2] for p in plans))

    def iteration_time(self, h0: tuple[float, float, float, float],
                       h1: tuple[float, float, float, float]) -> tuple[float, float]:
        """(makespan, makespan with free communication) of one iteration whose micro-batches
        have (attention, dispatch, experts, combine) seconds h0 and h1 (whole model)."""
        key = (*h0, *h1)
        hit = self._sched.get(key)
        if hit is None:
            L = self.layers
            st = [[h0[s] / L, h1[s] / L] for s in range(4)]
            total = shared_chain_makespan(L, st, _EP_RESOURCE)
            zero = [0.0, 0.0]
            free = shared_chain_makespan(L, [st[0], zero, st[2], zero], _EP_RESOURCE)
            if len(self._sched) > 200_000:
                self._sched.clear()
            hit = self._sched[key] = (total, free)
        return hit

    # --- iterations ------------------------------------------------------------------------
    def start(self, now: float) -> float | None:
        plans: list[tuple] = []
        _, n_all, pt_all, pr_all, wait, run, used, tmax = self.plan_ranks(now, plans)
        tokens = n_all + pt_all
        if tokens == 0:
            self.busy = False
            return None
        halves = [split_plan(p) for p in plans]
        first = [h[0] for h in halves]
        second = [h[1] for h in halves]
        decode_only = pt_all == 0  # the iteration's kernels (network.ep_kernel_mode=auto)
        if sum(p[0] + p[2] for p in second) == 0:
            comp, comm, _ = self._plain(plans, decode_only)
            dur = comp + comm
        else:
            hs = []
            for part in (first, second):
                a, f, tok = self._half(part)
                c = self._comm(tok, decode_only) + self._draft_comm(part)
                d = self._dispatch_share(tok, decode_only) * c
                hs.append((a, d, f, c - d))
            total, comp = self.iteration_time(hs[0], hs[1])
            dur = total
            comm = total - comp
            self.overlapped += 1
        self.rows.append((now, dur, comp, comm, n_all, pt_all, pr_all, wait, run, used, tmax))
        self.busy = True
        return dur
