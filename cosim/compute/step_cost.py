"""Cost of one continuous-batching iteration on one GPU, fast enough to call every step.

An iteration mixes a decode part (`decode_batch` requests, one new token each, KV length
`decode_kv_len`) and a prefill part (`prefill_requests` requests computing `prefill_tokens`
new tokens in total, KV length `prefill_kv_len` after the chunk). Sequence operators
(attention, MLA/DSA modules, Mamba mixers) run once per part with that part's shape;
token-wise operators (GEMMs, MoE, norms) run once over the tokens of both parts, so each is
priced at the summed token count T = decode_batch + prefill_tokens; per-request operators
(the LM head: only the last token of each request is sampled) at R = decode_batch +
prefill_requests.

Memoisation: arguments are rounded onto a bucket grid: exact up to `exact_below`, above it
geometric with 2**bits steps per octave (bits=5: at most 1.6 % rounding of an argument).
Sub-caches: decode attention on (batch, kv), prefill attention on (requests, tokens, kv),
token-wise operators on bucket(T) alone and per-request operators on bucket(R) alone - so
decode-only and mixed iterations of the same total token count share one token-wise
entry, and a new decode batch or prefill split rarely prices GEMMs and MoE again. The whole
result is cached on the exact arguments and on the bucketed ones. A repeated call is one
dict lookup.

For Attention-FFN disaggregation the halves are available separately:
`attention_cost(...)` (attention and other stages: the attention GPUs' work) and
`ffn_cost(tokens)` (the FFN stage for `tokens` tokens per attention rank; the MoE sees
`tokens * layout.dp` of them, as in `cost`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cosim.compute.model import ComputeModel, OpLatency
from cosim.model.operators import Operator, OpKind, Phase

SEQUENCE_KINDS = frozenset({OpKind.attention, OpKind.mla, OpKind.mla_module, OpKind.dsa_module,
                            OpKind.mamba})
_STAGES = ("attention", "ffn", "other")


@dataclass(frozen=True)
class StepCost:
    """Seconds of one iteration on one GPU, by stage and by compute source."""

    total_s: float
    attention_s: float
    ffn_s: float
    other_s: float
    by_source: dict[str, float] = field(default_factory=dict)

    def __add__(self, o: StepCost) -> StepCost:
        src = dict(self.by_source)
        for k, v in o.by_source.items():
            src[k] = src.get(k, 0.0) + v
        return StepCost(self.total_s + o.total_s, self.attention_s + o.attention_s,
                        self.ffn_s + o.ffn_s, self.other_s + o.other_s, src)


ZERO = StepCost(0.0, 0.0, 0.0, 0.0, {})


_TABLE_SIZE = 1 << 18  # arguments below this are bucketed by one list lookup


@functools.cache
def _bucket_table(bits: int, exact_below: int) -> tuple[int, ...]:
    """bucket(x) for every x < _TABLE_SIZE, computed with numpy (a Python loop costs ~0.3 s)."""
    x = np.arange(_TABLE_SIZE, dtype=np.int64)
    # bit_length(x) = floor(log2 x) + 1, exact in float64 for x < 2**18 (powers of two too)
    bl = np.zeros_like(x)
    bl[1:] = np.floor(np.log2(x[1:])).astype(np.int64) + 1
    shift = bl - bits - 1
    s = np.maximum(shift, 1)
    out = ((x + (1 << (s - 1))) >> s) << s
    out = np.where((x < exact_below) | (shift <= 0), x, out)
    return tuple(out.tolist())


def bucket(x: int, bits: int = 5, exact_below: int = 64) -> int:
    """Round x onto the cache grid: exact below `exact_below`, then 2**bits steps/octave."""
    if x < exact_below:
        return x
    shift = x.bit_length() - bits - 1
    if shift <= 0:
        return x
    half = 1 << (shift - 1)
    return ((x + half) >> shift) << shift


class StepCostModel:
    """Per-iteration cost of a model on one GPU of a parallel layout (see module doc)."""

    def __init__(self, spec: Any, compute_model: ComputeModel, layout: Any, *,
                 bits: int = 5, exact_below: int = 64,
                 forward: Callable[..., Sequence[Operator]] | None = None):
        if forward is None:
            from cosim.model.forward import forward_operators as forward
        self.spec = spec
        self.model = compute_model
        self.layout = layout
        self.bits = bits
        self.exact_below = exact_below
        self._forward = forward
        self._table = _bucket_table(bits, exact_below) if bits < 20 else ()
        self._exact: dict[tuple, StepCost] = {}
        self._attn_exact: dict[tuple, StepCost] = {}  # attention_cost's memo
        self._bucketed: dict[tuple, StepCost] = {}
        self._dec: dict[tuple, StepCost] = {}
        self._pre: dict[tuple, StepCost] = {}
        self._tok: dict[tuple[int, Phase], tuple[StepCost, StepCost]] = {}
        self._req: dict[int, tuple[StepCost, StepCost]] = {}
        self._per_request_names: frozenset[str] | None = None
        self.misses = 0

    # ------------------------------------------------------------------ public
    def cost(self, decode_batch: int, decode_kv_len: int, prefill_tokens: int = 0,
             prefill_kv_len: int = 0, prefill_requests: int = 0) -> StepCost:
        """Cost of one mixed iteration (memoised on bucketed arguments)."""
        key = (decode_batch, decode_kv_len, prefill_tokens, prefill_kv_len, prefill_requests)
        hit = self._exact.get(key)
        if hit is not None:
            return hit
        if min(key) < 0:
            _check(key)
        requests = decode_batch + (max(prefill_requests, 1) if prefill_tokens else 0)
        try:
            t = self._table
            bkey = (t[decode_batch], t[decode_kv_len], t[prefill_tokens], t[prefill_kv_len],
                    t[prefill_requests], t[decode_batch + prefill_tokens], t[requests])
        except (IndexError, TypeError):  # large, negative or non-integer arguments
            _check(key)
            b = self._bucket
            bkey = (b(decode_batch), b(decode_kv_len), b(prefill_tokens), b(prefill_kv_len),
                    b(prefill_requests), b(decode_batch + prefill_tokens), b(requests))
        hit = self._bucketed.get(bkey)
        if hit is None:
            _check(key)
            attn, ffn = self._split(*bkey)
            hit = attn + ffn
            self._bucketed[bkey] = hit
        if len(self._exact) < 1_000_000:
            self._exact[key] = hit
        return hit

    def attention_cost(self, decode_batch: int, decode_kv_len: int, prefill_tokens: int = 0,
                       prefill_kv_len: int = 0, prefill_requests: int = 0) -> StepCost:
        """The attention and other stages of `cost(...)` (the attention GPUs' work in AFD),
        memoised on the exact arguments like cost(...)."""
        key = (decode_batch, decode_kv_len, prefill_tokens, prefill_kv_len, prefill_requests)
        hit = self._attn_exact.get(key)
        if hit is not None:
            return hit
        _check(key)
        b = self._bucket
        requests = decode_batch + (max(prefill_requests, 1) if prefill_tokens else 0)
        hit = self._split(b(decode_batch), b(decode_kv_len), b(prefill_tokens),
                          b(prefill_kv_len), b(prefill_requests),
                          b(decode_batch + prefill_tokens), b(requests))[0]
        if len(self._attn_exact) < 1_000_000:
            self._attn_exact[key] = hit
        return hit

    def ffn_cost(self, tokens: int) -> StepCost:
        """The FFN stage for `tokens` new tokens per attention rank (AFD's FFN GPUs)."""
        _check((tokens,))
        return self._per_token(self._bucket(tokens), Phase.generation)[1]

    def cache_info(self) -> dict[str, int]:
        return {"exact": len(self._exact), "bucketed": len(self._bucketed),
                "decode_attention": len(self._dec), "prefill_attention": len(self._pre),
                "tokenwise": len(self._tok), "per_request": len(self._req),
                "misses": self.misses}

    # ------------------------------------------------------------------ internals
    def _bucket(self, x: int) -> int:
        return bucket(x, self.bits, self.exact_below)

    def _split(self, db: int, dkv: int, pt: int, pkv: int, pr: int, tokens: int,
               requests: int) -> tuple[StepCost, StepCost]:
        """(attention + other stages, ffn stage) of an iteration with bucketed arguments;
        `tokens` and `requests` are the bucketed totals (T and R of the module doc)."""
        if pt and not pr:
            pr = 1
        attn = ZERO
        if db:
            attn = attn + self._decode_attention(db, max(dkv, 1))
        if pt:
            attn = attn + self._prefill_attention(pr, pt, max(pkv, pt // pr if pr else pt))
        # The batch's phase picks the kernel family where a table has one per phase (sglang
        # EP MoE: DeepEP normal-mode kernels with prefill, low-latency ones in pure decode).
        phase = Phase.context if pt else Phase.generation
        tok_attn, tok_ffn = self._per_token(tokens, phase)
        req_attn, req_ffn = self._per_request(requests)
        return attn + tok_attn + req_attn, tok_ffn + req_ffn

    def _ops(self, phase: Phase, batch: int, context: int, chunk: int) -> list[Operator]:
        return list(self._forward(self.spec, phase, batch, context, chunk, self.layout))

    def _decode_attention(self, db: int, dkv: int) -> StepCost:
        key = (db, dkv)
        hit = self._dec.get(key)
        if hit is None:
            self.misses += 1
            ops = [o for o in self._ops(Phase.generation, db, dkv, 1) if o.kind in SEQUENCE_KINDS]
            hit = self._price(ops)
            self._dec[key] = hit
        return hit

    def _prefill_attention(self, pr: int, pt: int, pkv: int) -> StepCost:
        key = (pr, pt, pkv)
        hit = self._pre.get(key)
        if hit is None:
            self.misses += 1
            chunk = max(1, round(pt / pr))
            ops = [o for o in self._ops(Phase.context, pr, max(pkv, chunk), chunk)
                   if o.kind in SEQUENCE_KINDS]
            hit = self._price(ops)
            self._pre[key] = hit
        return hit

    def _request_ops(self) -> frozenset[str]:
        """Names of the token-wise operators that run once per request, not per token.

        Found from the shapes rather than a list of names: in a prefill pass of one request
        with a 2-token chunk, per-token operators see 2 tokens and per-request ones 1.
        """
        if self._per_request_names is None:
            names = set()
            for op in self._ops(Phase.context, 1, 2, 2):
                if op.kind in SEQUENCE_KINDS or op.kind == OpKind.comm:
                    continue
                dims = [int(op.dims[k]) for k in _TOKEN_DIMS if k in op.dims]
                if dims and max(dims) == 1:
                    names.add(op.name)
            self._per_request_names = frozenset(names)
        return self._per_request_names

    def _tokenwise_ops(self, batch: int, per_request: bool) -> list[Operator]:
        """Token-wise operators of a decode pass of `batch` tokens (one part of them)."""
        req = self._request_ops()
        return [o for o in self._ops(Phase.generation, batch, 1, 1)
                if o.kind not in SEQUENCE_KINDS and o.kind != OpKind.comm
                and (o.name in req) == per_request]

    def _per_token(self, tokens: int, phase: Phase) -> tuple[StepCost, StepCost]:
        """Per-token operators (GEMMs, MoE, norms) over `tokens` tokens: (attention + other
        stages, ffn stage). A decode pass of `tokens` requests has exactly these shapes: a
        token-wise operator does not care which part a token comes from."""
        key = (tokens, phase)
        hit = self._tok.get(key)
        if hit is None:
            if tokens == 0:
                hit = (ZERO, ZERO)
            else:
                self.misses += 1
                ops = self._tokenwise_ops(tokens, per_request=False)
                hit = (self._price([o for o in ops if o.stage != "ffn"], phase),
                       self._price([o for o in ops if o.stage == "ffn"], phase))
            self._tok[key] = hit
        return hit

    def _per_request(self, requests: int) -> tuple[StepCost, StepCost]:
        """Per-request operators (the LM head) for `requests` sampled requests."""
        hit = self._req.get(requests)
        if hit is None:
            if requests == 0:
                hit = (ZERO, ZERO)
            else:
                self.misses += 1
                ops = self._tokenwise_ops(requests, per_request=True)
                hit = (self._price([o for o in ops if o.stage != "ffn"]),
                       self._price([o for o in ops if o.stage == "ffn"]))
            self._req[requests] = hit
        return hit

    def _price(self, ops: Sequence[Operator], phase: Phase | None = None) -> StepCost:
        stage = {s: 0.0 for s in _STAGES}
        by_source: dict[str, float] = {}
        for op in ops:
            lat: OpLatency = self.model.latency(op, None if phase is None else phase.value)
            t = lat.latency_s * op.count
            stage[op.stage if op.stage in stage else "other"] += t
            if lat.by_source:
                for s, v in lat.by_source.items():
                    by_source[s] = by_source.get(s, 0.0) + v * op.count
            else:
                by_source[lat.source] = by_source.get(lat.source, 0.0) + t
        return StepCost(sum(stage.values()), stage["attention"], stage["ffn"], stage["other"],
                        by_source)


def _check(args: tuple) -> None:
    for v in args:
        if not isinstance(v, int) or v < 0:
            raise ValueError(f"step cost arguments must be integers >= 0, got {args!r}")


_TOKEN_DIMS = ("m", "tokens")


def bucket_error(model: StepCostModel, samples: Sequence[tuple[int, int, int, int, int]]
                 ) -> dict[str, float]:
    """Relative error of bucketed vs exact-argument cost over `samples` (max and mean)."""
    exact = StepCostModel(model.spec, model.model, model.layout, bits=60, exact_below=1 << 62,
                          forward=model._forward)
    errs = []
    for s in samples:
        a = model.cost(*s).total_s
        e = exact.cost(*s).total_s
        errs.append(abs(a - e) / e if e else 0.0)
    return {"max": max(errs, default=0.0), "mean": sum(errs) / len(errs) if errs else 0.0,
            "n": float(len(errs))}
