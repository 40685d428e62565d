"""Time of one iteration of an instance: compute (the step cost model) + communication.

The compute side is B's StepCostModel (cosim.compute.step_cost), whose arguments are per
attention-DP rank (one GPU of a TP group):

    cost(decode_batch, decode_kv_len, prefill_tokens, prefill_kv_len, prefill_requests)
    attention_cost(same)   the attention + other stages of that rank
    ffn_cost(tokens)       the FFN stage for `tokens` per rank (the MoE sees tokens x dp)

`decode_kv_len` is the mean context the decode requests attend, `prefill_kv_len` the mean
context of the prefill requests at the end of their chunks.

An instance with attention DP (dp > 1) runs its ranks in lock step: every MoE layer needs the
tokens of all ranks, so the iteration takes the slowest rank's attention plus the FFN of the
instance's tokens:

    compute = max_r attention(rank r's batch) + ffn(ceil(total tokens / dp))
    (dp = 1: cost(...) of the one rank)

Decode iterations recur with almost the same shape, so costs are memoised here. The mean decode
context moves by about one token per iteration; it is looked up on a grid of
`kv_grid_tokens` and interpolated linearly between the two neighbouring grid points (decode
attention reads the KV cache, so its time is close to affine in the context: the
interpolation error is far below the grid's). `kv_grid_tokens=0` prices exact lengths.
"""

from __future__ import annotations

from typing import Any, Protocol


class StepCostLike(Protocol):
    def cost(self, decode_batch: int, decode_kv_len: int, prefill_tokens: int,
             prefill_kv_len: int, prefill_requests: int) -> Any: ...

    def attention_cost(self, decode_batch: int, decode_kv_len: int, prefill_tokens: int,
                       prefill_kv_len: int, prefill_requests: int) -> Any: ...

    def ffn_cost(self, tokens: int) -> Any: ...


class CommLike(Protocol):
    name: str  # models with `memoised = True` keep their own results (see IterationCost)

    def time_s(self, tokens: int) -> float: ...  # phase_aware models: (tokens, decode_only)

    def stats(self) -> dict: ...


def _model_bucket(step_cost: Any):
    """The argument grid of a StepCostModel (identity for other cost models)."""
    bits = getattr(step_cost, "bits", None)
    below = getattr(step_cost, "exact_below", None)
    if bits is None or below is None:
        return lambda x: x
    from cosim.compute.step_cost import bucket

    return lambda x: bucket(x, bits, below)


class IterationCost:
    """Memoised compute + communication time of an instance's iterations."""

    def __init__(self, step_cost: StepCostLike, comm: CommLike, kv_grid_tokens: int = 256):
        self.step_cost = step_cost
        # Prefill arguments go on the step cost model's own grid (StepCostModel buckets them
        # anyway), so iterations it cannot tell apart share one memo entry here too.
        self._pbucket = _model_bucket(step_cost)
        self.comm = comm
        self.grid = int(kv_grid_tokens)
        # key -> [seconds, uses, StepCost]; the uses weight compute_sources
        self._whole: dict[tuple, list] = {}
        self._attn: dict[tuple, list] = {}
        self._ffn: dict[int, list] = {}
        self._comm: dict[int, float] = {}
        # A comm model that memoises (and counts its network lookups) itself is asked every
        # iteration; others are memoised here.
        self.comm_s = comm.time_s if getattr(comm, "memoised", False) else self._comm_memo
        # Decode-only iterations: a comm model whose kernels depend on the phase
        # (`phase_aware`: network.ep_kernel_mode=auto) is asked with decode_only=True;
        # for the others it is comm_s itself.
        self.comm_decode_s = self.comm_s
        if getattr(comm, "phase_aware", False):
            self._comm_dec: dict[int, float] = {}
            self.comm_decode_s = ((lambda t: comm.time_s(t, decode_only=True))
                                  if getattr(comm, "memoised", False) else self._comm_decode_memo)
        self._whole_dec: dict[int, list] = {}
        self._attn_dec: dict[int, list] = {}
        # Tokens each decode request puts through the FFN and the fabric per iteration: 1,
        # or k + 1 verified positions under speculative decoding (cosim.serving.speculative).
        self.q = 1

    # --- lookups -------------------------------------------------------------------------------
    def _lookup(self, memo: dict, fn, n: int, kv_sum: int, p_tok: int, p_kv: int, p_req: int) -> float:
        if p_tok:
            b = self._pbucket
            p_tok, p_kv, p_req = b(p_tok), b(p_kv), b(p_req)
            if n and not self.grid:
                n = b(n)
        if n == 0:
            key = (0, 0, p_tok, p_kv, p_req)
            e = memo.get(key)
            if e is None:
                sc = fn(*key)
                e = memo[key] = [float(sc.total_s), 0.0, sc]
            e[1] += 1.0
            return e[0]
        g = self.grid
        if g == 0:
            key = (n, -(-kv_sum // n), p_tok, p_kv, p_req)
            e = memo.get(key)
            if e is None:
                sc = fn(*key)
                e = memo[key] = [float(sc.total_s), 0.0, sc]
            e[1] += 1.0
            return e[0]
        m = kv_sum / n
        k = int(m // g)
        lo = k * g if k else 1
        hi = (k + 1) * g
        a = memo.get((n, lo, p_tok, p_kv, p_req))
        if a is None:
            sc = fn(n, lo, p_tok, p_kv, p_req)
            a = memo[(n, lo, p_tok, p_kv, p_req)] = [float(sc.total_s), 0.0, sc]
        b = memo.get((n, hi, p_tok, p_kv, p_req))
        if b is None:
            sc = fn(n, hi, p_tok, p_kv, p_req)
            b = memo[(n, hi, p_tok, p_kv, p_req)] = [float(sc.total_s), 0.0, sc]
        f = (m - lo) / (hi - lo)
        a[1] += 1.0 - f
        b[1] += f
        return a[0] + f * (b[0] - a[0])

    def whole(self, n: int, kv_sum: int, p_tok: int = 0, p_kv: int = 0, p_req: int = 0) -> float:
        """Compute seconds of one rank's iteration (dp = 1): n decode requests with kv_sum context."""
        if p_tok == 0 and self.grid and n:
            return self._decode(self._whole_dec, self._whole, self.step_cost.cost, n, kv_sum)
        return self._lookup(self._whole, self.step_cost.cost, n, kv_sum, p_tok, p_kv, p_req)

    def attention(self, n: int, kv_sum: int, p_tok: int = 0, p_kv: int = 0, p_req: int = 0) -> float:
        """Attention + other stages of one attention-DP rank's part of an iteration."""
        if p_tok == 0 and self.grid and n:
            return self.decode_attention(n, kv_sum)
        return self._lookup(self._attn, self.step_cost.attention_cost, n, kv_sum, p_tok, p_kv, p_req)

    def decode_attention(self, n: int, kv_sum: int) -> float:
        """attention(n, kv_sum) of a decode-only rank (n >= 1): the hot path, one dict probe."""
        g = self.grid
        if not g:
            return self._lookup(self._attn, self.step_cost.attention_cost, n, kv_sum, 0, 0, 0)
        m = kv_sum / n
        k = int(m // g)
        e = self._attn_dec.get(n << 24 | k)
        if e is None:
            return self._decode(self._attn_dec, self._attn, self.step_cost.attention_cost, n, kv_sum)
        f = m - e[2]
        w = f / e[7]
        e[3] += 1.0 - w
        e[4] += w
        return e[0] + e[1] * f

    def _decode(self, fast: dict, memo: dict, fn, n: int, kv_sum: int) -> float:
        """Decode-only lookup with an int-keyed memo of the interpolation line.

        fast[n << 24 | grid index] = [value at lo, slope per token, lo, uses at lo, uses at hi,
        memo entry at lo, memo entry at hi, hi - lo]; the uses are folded into the memo
        entries when reporting.
        """
        g = self.grid
        m = kv_sum / n
        k = int(m // g)
        e = fast.get(n << 24 | k)
        if e is None:
            lo = k * g if k else 1
            hi = (k + 1) * g
            self._lookup(memo, fn, n, lo * n, 0, 0, 0)  # creates the two grid entries
            a = memo[(n, lo, 0, 0, 0)]
            b = memo[(n, hi, 0, 0, 0)]
            a[1] -= 1.0  # that probe was not a real use
            e = fast[n << 24 | k] = [a[0], (b[0] - a[0]) / (hi - lo), lo, 0.0, 0.0, a, b, hi - lo]
        f = m - e[2]
        w = f / e[7]
        e[3] += 1.0 - w
        e[4] += w
        return e[0] + e[1] * f

    def ffn(self, tokens_per_rank: int) -> float:
        """FFN stage of an iteration with `tokens_per_rank` tokens per attention-DP rank."""
        e = self._ffn.get(tokens_per_rank)
        if e is None:
            sc = self.step_cost.ffn_cost(tokens_per_rank)
            e = self._ffn[tokens_per_rank] = [float(sc.total_s), 0.0, sc]
        e[1] += 1.0
        return e[0]

    def _comm_memo(self, tokens: int) -> float:
        """Exposed communication of an iteration of `tokens` tokens (whole instance); the
        instance calls it as `comm_s(tokens)`."""
        c = self._comm.get(tokens)
        if c is None:
            c = self._comm[tokens] = float(self.comm.time_s(tokens))
        return c

    def draft_comm_s(self, n_all: int, pt_all: int) -> float:
        """Communication of a draft model's forwards (0: no speculative decoding)."""
        return 0.0

    def _comm_decode_memo(self, tokens: int) -> float:
        """_comm_memo of a decode-only iteration (phase-aware comm models)."""
        c = self._comm_dec.get(tokens)
        if c is None:
            c = self._comm_dec[tokens] = float(self.comm.time_s(tokens, decode_only=True))
        return c

    # --- reporting -----------------------------------------------------------------------------
    def source_seconds(self) -> dict[str, float]:
        """Priced compute seconds per source (measured / interpolated / roofline), all ranks."""
        for fast in (self._whole_dec, self._attn_dec):  # fold the hot path's uses in
            for e in fast.values():
                e[5][1] += e[3]
                e[6][1] += e[4]
                e[3] = e[4] = 0.0
        out: dict[str, float] = {}
        for memo in (self._whole, self._attn, self._ffn):
            for total, uses, sc in memo.values():
                if uses <= 0:
                    continue
                by = getattr(sc, "by_source", None) or {"unknown": total}
                for src, sec in by.items():
                    out[src] = out.get(src, 0.0) + float(sec) * uses
        return out

    def stats(self) -> dict[str, int]:
        return {"cost_entries": len(self._whole) + len(self._attn) + len(self._ffn),
                "comm_entries": len(self._comm)}  # 0 for self-memoising comm models
