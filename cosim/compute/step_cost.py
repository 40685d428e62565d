"""Cost of one continuous-batching iteration on one GPU, fast enough to call every step.

An iteration mixes a decode part (`decode_batch` requests, one new token each, KV length
`decode_kv_len`) and a prefill part (`prefill_requests` requests computing `prefill_tokens`
new tokens in total, KV length `prefill_kv_len` after the chunk). Sequence operators
(attention, MLA/DSA modules, Mamba mixers) run once per part with that part's shape;
token-wise operators (GEMMs, MoE, norms) run once over the tokens of both parts, so each is
priced at the summed token count (its `m` / `tokens` is the sum of the two parts').

Memoisation: the five arguments are rounded onto a bucket grid: exact up to
`exact_below`, above it geometric with 2**bits steps per octave (bits=5: at most 1.6 %
rounding of an argument). Three sub-caches (decode attention, prefill attention,
token-wise) are keyed on the bucketed arguments they depend on, and the whole result on
the exact arguments and on the bucketed ones. A repeated call is one dict lookup.

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

from cosim.compute.model import ComputeModel, OpLatency
from cosim.compute.roofline import work
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
    return tuple(bucket(x, bits, exact_below) for x in range(_TABLE_SIZE))


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
        self._bucketed: dict[tuple, StepCost] = {}
        self._dec: dict[tuple, StepCost] = {}
        self._pre: dict[tuple, StepCost] = {}
        self._tok: dict[tuple, tuple[StepCost, StepCost]] = {}
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
        try:
            t = self._table
            bkey = (t[decode_batch], t[decode_kv_len], t[prefill_tokens], t[prefill_kv_len],
                    t[prefill_requests])
        except (IndexError, TypeError):  # large, negative or non-integer arguments
            _check(key)
            b = self._bucket
            bkey = (b(decode_batch), b(decode_kv_len), b(prefill_tokens), b(prefill_kv_len),
                    b(prefill_requests))
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
        """The attention and other stages of `cost(...)` (the attention GPUs' work in AFD)."""
        _check((decode_batch, decode_kv_len, prefill_tokens, prefill_kv_len, prefill_requests))
        b = self._bucket
        return self._split(b(decode_batch), b(decode_kv_len), b(prefill_tokens),
                           b(prefill_kv_len), b(prefill_requests))[0]

    def ffn_cost(self, tokens: int) -> StepCost:
        """The FFN stage for `tokens` new tokens per attention rank (AFD's FFN GPUs)."""
        _check((tokens,))
        return self._tokenwise(self._bucket(tokens), 0, 0)[1]

    def cache_info(self) -> dict[str, int]:
        return {"exact": len(self._exact), "bucketed": len(self._bucketed),
                "decode_attention": len(self._dec), "prefill_attention": len(self._pre),
                "tokenwise": len(self._tok), "misses": self.misses}

    # ------------------------------------------------------------------ internals
    def _bucket(self, x: int) -> int:
        return bucket(x, self.bits, self.exact_below)

    def _split(self, db: int, dkv: int, pt: int, pkv: int, pr: int) -> tuple[StepCost, StepCost]:
        """(attention + other stages, ffn stage) of an iteration with bucketed arguments."""
        if pt and not pr:
            pr = 1
        attn = ZERO
        if db:
            attn = attn + self._decode_attention(db, max(dkv, 1))
        if pt:
            attn = attn + self._prefill_attention(pr, pt, max(pkv, pt // pr if pr else pt))
        tok_attn, tok_ffn = self._tokenwise(db, pt, pr)
        return attn + tok_attn, tok_ffn

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

    def _tokenwise(self, db: int, pt: int, pr: int) -> tuple[StepCost, StepCost]:
        """Token-wise operators over both parts: (attention + other stages, ffn stage)."""
        key = (db, pt, pr)
        hit = self._tok.get(key)
        if hit is not None:
            return hit
        self.misses += 1
        merged: dict[tuple[str, OpKind], Operator] = {}
        parts = []
        if db:
            parts.append((self._ops(Phase.generation, db, 1, 1), 1.0))
        if pt:
            pr = max(pr, 1)
            chunk = max(1, round(pt / pr))
            # scale the op's token counts from pr * chunk to exactly pt new tokens
            parts.append((self._ops(Phase.context, pr, chunk, chunk), pt / (pr * chunk)))
        for ops, scale in parts:
            for op in ops:
                if op.kind in SEQUENCE_KINDS or op.kind == OpKind.comm:
                    continue
                op = _scaled(op, scale) if scale != 1.0 else op
                k = (op.name, op.kind)
                merged[k] = _merge(merged[k], op) if k in merged else op
        ops = list(merged.values())
        hit = (self._price([o for o in ops if o.stage != "ffn"]),
               self._price([o for o in ops if o.stage == "ffn"]))
        self._tok[key] = hit
        return hit

    def _price(self, ops: Sequence[Operator]) -> StepCost:
        stage = {s: 0.0 for s in _STAGES}
        by_source: dict[str, float] = {}
        for op in ops:
            lat: OpLatency = self.model.latency(op)
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


def _scaled(op: Operator, r: float) -> Operator:
    """The op with its token count scaled by r (FLOPs and bytes follow the shape)."""
    d = dict(op.dims)
    for k in _TOKEN_DIMS:
        if k in d:
            d[k] = max(1, int(round(float(d[k]) * r)))
    return _rebuilt(op, d, op.flops * r, op.bytes * r)


def _merge(a: Operator, b: Operator) -> Operator:
    """One invocation over the tokens of both ops (same weights, summed token count)."""
    d = dict(a.dims)
    for k in _TOKEN_DIMS:
        if k in d and k in b.dims:
            d[k] = int(d[k]) + int(b.dims[k])
    return _rebuilt(a, d, a.flops + b.flops, a.bytes + b.bytes)


def _rebuilt(op: Operator, dims: dict, flops: float, nbytes: float) -> Operator:
    if op.kind in (OpKind.gemm, OpKind.moe) and not op.parts:
        # weights are read once whatever the token count: recompute bytes from the shape,
        # keeping the op's own figures' ratio to the formula
        f0, b0 = work(op.kind, op.dims)
        f1, b1 = work(op.kind, dims)
        flops = op.flops * (f1 / f0) if f0 else flops
        nbytes = op.bytes * (b1 / b0) if b0 else nbytes
    return Operator(op.name, op.kind, dims, flops, nbytes, op.count, op.stage, list(op.parts))


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
