"""Operators of one forward pass of the whole layer stack, on one GPU of a parallel layout.

`forward_operators(spec, phase, batch, context, chunk, layout)` lists every operator with its
per-GPU shape (after the TP/DP/EP split), FLOPs and HBM bytes; `count` is the number of layers
that run it, `stage` says where it runs under Attention-FFN disaggregation. The compute model
(cosim.compute) prices the ops; `comm` ops are placeholders priced by the network side.

Shapes (see docs/models.md for the formulas):
- Phase.context: `batch` requests per attention-DP rank, each with `chunk` new tokens on top of
  `context - chunk` cached ones (q_len = chunk, kv_len = context). Phase.generation: q_len = 1,
  kv_len = context. T = batch * q_len tokens per attention rank.
- Attention runs on tp GPUs per DP rank (heads / tp each). MoE experts see T * dp tokens (all
  DP ranks of the instance); each GPU holds E / ep experts, inter / moe_tp wide, and the FLOPs
  assume balanced routing (T * dp * topk / ep token-expert pairs per GPU). A layout with an
  expert placement (`layout.experts`, cosim.experts: uneven, redundant or skewed) prices the
  hottest GPU instead: its share of the pairs and its expert count (dims hot_share,
  hot_experts); dims `touched` is the expected distinct experts the GPU reads weights of.
- Dense MLPs and shared experts are TP-split over the attention group; routers, LatentMoE
  projections, MLA down-projections and the DSA indexer are replicated.
"""

from __future__ import annotations

import math
from typing import Any

from cosim.dtypes import DType, dtype_bytes
from cosim.errors import ConfigError
from cosim.model.architecture import (
    DSA_INDEXER_QUANT_BLOCK,
    DSA_INDEXER_SCALE_BYTES,
    FfnKind,
    MixerKind,
)
from cosim.model.layout import ParallelLayout
from cosim.model.operators import Operator, OpKind, Phase
from cosim.model.spec import ModelSpec

STAGE_ATTENTION = "attention"
STAGE_FFN = "ffn"
STAGE_OTHER = "other"

_PHASE_ALIASES = {"context": Phase.context, "prefill": Phase.context,
                  "generation": Phase.generation, "decode": Phase.generation}


def attended_pairs(q_len: int, kv_len: int, limit: int = 0) -> float:
    """Sum over the q_len newest tokens of the keys each attends to (causal).

    The new token i (0-based) sits at position kv_len - q_len + i and sees that many keys plus
    itself, capped at `limit` (a sliding window or a sparse top-k; 0 = no cap).
    """
    lo = kv_len - q_len + 1
    hi = kv_len
    if limit <= 0 or limit >= hi:
        return q_len * (lo + hi) / 2
    if limit < lo:
        return float(q_len * limit)
    return (limit - lo + 1) * (lo + limit) / 2 + (hi - limit) * limit


class _Builder:
    def __init__(self, spec: ModelSpec, phase: Phase, batch: int, q_len: int, kv_len: int,
                 layout: ParallelLayout, kv_dtype: DType, act_dtype: DType, include_comm: bool):
        self.s = spec
        self.p = spec.precision
        self.phase = phase
        self.batch = batch
        self.q_len = q_len
        self.kv_len = kv_len
        self.L = layout
        self.kv_dtype = kv_dtype
        self.kvb = dtype_bytes(kv_dtype)
        self.act = dtype_bytes(act_dtype)
        self.act_dtype = act_dtype
        self.T = batch * q_len
        self.include_comm = include_comm

    # ------------------------------------------------------------ primitives
    def in_bytes(self, gemm_dtype: str) -> float:
        """Bytes per input activation element: quantised GEMMs read quantised activations."""
        if gemm_dtype in ("fp8", "fp8_block"):
            return 1.0
        if gemm_dtype == "fp4":
            return dtype_bytes(DType.fp4)
        return self.act

    def gemm(self, name: str, m: int, n: int, k: int, wdtype: DType | str, stage: str,
             batch: int = 1, **extra: Any) -> Operator:
        gd = self.p.gemm_dtype(wdtype) if isinstance(wdtype, DType) else wdtype
        w_el = self.p.element_bytes(wdtype) if isinstance(wdtype, DType) else dtype_bytes(
            "fp8" if gd.startswith("fp8") else gd)
        dims = {"m": int(m), "n": int(n), "k": int(k), "dtype": gd}
        if batch != 1:
            dims["batch"] = int(batch)
        dims.update(extra)
        flops = 2.0 * batch * m * n * k
        nbytes = batch * (m * k * self.in_bytes(gd) + k * n * w_el + m * n * self.act)
        return Operator(name, OpKind.gemm, dims, flops, nbytes, stage=stage)

    def elementwise(self, name: str, op: str, width: int, reads: float, writes: float,
                    stage: str, flops_per_elem: float = 1.0, tokens: int | None = None) -> Operator:
        """A memory-bound op over tokens x width activations: `reads`/`writes` tensors of that size."""
        t = self.T if tokens is None else tokens
        elems = t * width
        return Operator(name, OpKind.elementwise, {"op": op, "tokens": int(t), "width": int(width)},
                        flops_per_elem * elems, (reads + writes) * elems * self.act, stage=stage)

    def comm(self, name: str, pattern: str, group: str, size: int, nbytes: float, stage: str,
             **extra: Any) -> list[Operator]:
        if not self.include_comm or size <= 1:
            return []
        dims = {"pattern": pattern, "group": group, "size": int(size), "bytes": float(nbytes)}
        dims.update(extra)
        return [Operator(name, OpKind.comm, dims, 0.0, float(nbytes), stage=stage)]

    def norm(self, name: str, stage: str) -> Operator:
        # Fused residual-add + RMSNorm: read x and residual, write residual and normed x.
        return self.elementwise(name, "add_rmsnorm", self.s.hidden_size, 2, 2, stage, 6.0)

    # ------------------------------------------------------------ mixers
    def gqa(self, window: int) -> list[Operator]:
        a = self.s.attention
        assert a is not None
        tp, h = self.L.tp, self.s.hidden_size
        heads = a.num_heads // tp
        kv = max(1, math.ceil(a.num_kv_heads / tp))
        hd = a.head_dim
        wd = self.p.attention
        pairs = self.batch * attended_pairs(self.q_len, self.kv_len, window)
        keys = min(self.kv_len, window + self.q_len - 1) if window else self.kv_len
        core_bytes = (2 * self.T * heads * hd * self.act  # q in, o out
                      + self.batch * keys * 2 * kv * hd * self.kvb  # K, V read
                      + self.T * 2 * kv * hd * self.kvb)  # new K, V written
        core = Operator(
            "attn.core" if not window else f"attn.core_window{window}", OpKind.attention,
            {"phase": self.phase.value, "batch": self.batch, "q_len": self.q_len,
             "kv_len": self.kv_len, "num_heads": heads, "num_kv_heads": kv, "head_dim": hd,
             "window": window, "kv_dtype": self.kv_dtype.value},
            4.0 * heads * hd * pairs, core_bytes, stage=STAGE_ATTENTION)
        ops = [
            self.gemm("attn.qkv_proj", self.T, (heads + 2 * kv) * hd, h, wd, STAGE_ATTENTION),
            self.elementwise("attn.rope", "rope_qk_norm" if a.qk_norm else "rope",
                             (heads + kv) * hd, 1, 1, STAGE_ATTENTION, 6.0),
            core,
            self.gemm("attn.o_proj", self.T, h, heads * hd, wd, STAGE_ATTENTION),
        ]
        return ops + self.comm("attn.all_reduce", "all_reduce", "tp", tp,
                               self.T * h * self.act, STAGE_ATTENTION)

    def mla(self, dsa: bool) -> list[Operator]:
        a = self.s.attention
        assert a is not None
        tp, h = self.L.tp, self.s.hidden_size
        heads = a.num_heads // tp
        nope, rope, vd, lora = a.qk_nope_head_dim, a.qk_rope_head_dim, a.v_head_dim, a.kv_lora_rank
        qk = nope + rope
        wd = self.p.attention
        T, B = self.T, self.batch
        absorbed = dsa or self.phase == Phase.generation
        parts: list[Operator] = []
        if a.q_lora_rank:
            parts.append(self.gemm("attn.fused_a_proj", T, a.q_lora_rank + lora + rope, h, wd,
                                   STAGE_ATTENTION))
            parts.append(self.elementwise("attn.latent_norm", "rmsnorm", a.q_lora_rank + lora, 1, 1,
                                          STAGE_ATTENTION, 4.0))
            parts.append(self.gemm("attn.q_b_proj", T, heads * qk, a.q_lora_rank, wd,
                                   STAGE_ATTENTION))
        else:
            parts.append(self.gemm("attn.kv_a_proj", T, lora + rope, h, wd, STAGE_ATTENTION))
            parts.append(self.elementwise("attn.latent_norm", "rmsnorm", lora, 1, 1,
                                          STAGE_ATTENTION, 4.0))
            parts.append(self.gemm("attn.q_proj", T, heads * qk, h, wd, STAGE_ATTENTION))
        parts.append(self.elementwise("attn.rope", "rope", (heads + 1) * rope, 1, 1,
                                      STAGE_ATTENTION, 6.0))
        topk = 0
        if dsa:
            topk = a.index_topk
            ih, idim = a.index_n_heads, a.index_head_dim
            key_bytes = idim + idim // DSA_INDEXER_QUANT_BLOCK * DSA_INDEXER_SCALE_BYTES
            q_in = a.q_lora_rank or h
            full_pairs = B * attended_pairs(self.q_len, self.kv_len)
            parts.append(self.gemm("attn.indexer.wq_b", T, ih * idim, q_in, self.p.weight,
                                   STAGE_ATTENTION))
            parts.append(self.gemm("attn.indexer.wk_weights_proj", T, idim + ih, h, self.p.weight,
                                   STAGE_ATTENTION))
            # FP8 MQA logits of every query against every cached indexer key (causal), then a
            # top-k over them: a batched GEMM [q_len*ih, idim] x [idim, kv_len] per request.
            logits_bytes = (T * ih * idim * 1.0 + B * self.kv_len * key_bytes
                            + B * self.q_len * self.kv_len * 4.0 + T * key_bytes)
            parts.append(Operator(
                "attn.indexer.logits", OpKind.gemm,
                {"m": self.q_len * ih, "n": self.kv_len, "k": idim, "dtype": "fp8", "batch": B,
                 "causal": True},
                2.0 * ih * idim * full_pairs, logits_bytes, stage=STAGE_ATTENTION))
            parts.append(Operator(
                "attn.indexer.topk", OpKind.elementwise,
                {"op": "topk", "tokens": T, "width": self.kv_len, "k": topk},
                float(B * self.q_len * self.kv_len), B * self.q_len * self.kv_len * 4.0 + T * topk * 4.0,
                stage=STAGE_ATTENTION))
        latent = lora + rope
        if absorbed:
            pairs = B * attended_pairs(self.q_len, self.kv_len, topk)
            keys = min(self.kv_len, topk * self.q_len) if topk else self.kv_len
            core_flops = 2.0 * heads * (latent + lora) * pairs
            core_bytes = (T * heads * latent * self.act + B * keys * latent * self.kvb
                          + T * heads * lora * self.act + T * latent * self.kvb)
            parts.append(self.gemm("attn.uk_bmm", T, lora, nope, wd, STAGE_ATTENTION,
                                   batch=heads, bmm="mla_gen_pre"))
        else:
            # Prefill without absorption: decompress K_nope and V of every key (cached ones too).
            pairs = B * attended_pairs(self.q_len, self.kv_len)
            core_flops = 2.0 * heads * (qk + vd) * pairs
            core_bytes = (T * heads * qk * self.act + B * self.kv_len * heads * (qk + vd) * self.act
                          + T * heads * vd * self.act + T * latent * self.kvb)
            parts.append(self.gemm("attn.kv_b_proj", B * self.kv_len, heads * (nope + vd), lora, wd,
                                   STAGE_ATTENTION))
        core_dims = {"phase": self.phase.value, "batch": B, "q_len": self.q_len,
                     "kv_len": self.kv_len, "num_heads": heads, "kv_lora_rank": lora,
                     "qk_rope_head_dim": rope, "qk_nope_head_dim": nope, "v_head_dim": vd,
                     "kv_dtype": self.kv_dtype.value, "absorbed": absorbed, "sparse_topk": topk}
        parts.append(Operator("attn.core", OpKind.mla, core_dims, core_flops, core_bytes,
                              stage=STAGE_ATTENTION))
        if absorbed:
            parts.append(self.gemm("attn.uv_bmm", T, vd, lora, wd, STAGE_ATTENTION,
                                   batch=heads, bmm="mla_gen_post"))
        parts.append(self.gemm("attn.o_proj", T, h, heads * vd, wd, STAGE_ATTENTION))

        mod_dims = {k: v for k, v in core_dims.items() if k not in ("absorbed", "sparse_topk")}
        # The module tables were measured at one model geometry: let the predictor check it.
        mod_dims.update(hidden=h, q_lora_rank=a.q_lora_rank)
        mod_dims["gemm_dtype"] = self.p.gemm_dtype(wd)
        mod_dims["model"] = self.s.hf_repo or self.s.name
        if dsa:
            mod_dims.update(index_n_heads=a.index_n_heads, index_head_dim=a.index_head_dim,
                            index_topk=a.index_topk)
        module = Operator("attn.dsa" if dsa else "attn.mla",
                          OpKind.dsa_module if dsa else OpKind.mla_module, mod_dims,
                          sum(o.flops for o in parts), sum(o.bytes for o in parts),
                          stage=STAGE_ATTENTION, parts=parts)
        return [module] + self.comm("attn.all_reduce", "all_reduce", "tp", tp, T * h * self.act,
                                    STAGE_ATTENTION)

    def mamba(self) -> list[Operator]:
        m = self.s.mamba
        assert m is not None
        tp, h = self.L.tp, self.s.hidden_size
        heads = m.num_heads // tp
        groups = max(1, math.ceil(m.n_groups / tp))
        d_in = heads * m.head_dim
        conv_dim = d_in + 2 * groups * m.state_size
        in_dim = 2 * d_in + 2 * groups * m.state_size + heads
        T, B, N, P = self.T, self.batch, m.state_size, m.head_dim
        state = B * heads * P * N * m.ssm_state_bytes + B * conv_dim * (m.conv_kernel - 1) * self.act
        conv_flops = 2.0 * T * conv_dim * m.conv_kernel
        if self.phase == Phase.context:
            # SSD chunked scan (Dao & Gu 2024): per token and head 2Q(N+P) for the intra-chunk
            # quadratic part plus 4NP for chunk states and their output, Q = chunk length.
            q = min(m.chunk_size, self.q_len)
            ssm_flops = T * heads * (2.0 * q * (N + P) + 4.0 * N * P)
        else:
            ssm_flops = T * heads * 6.0 * N * P  # h = dA*h + dt*B*x; y = C.h (+ D*x)
        io = T * (2 * conv_dim + conv_dim + heads + d_in) * self.act  # conv in/out, x/B/C, dt, y
        ssm = Operator(
            "mamba.ssm", OpKind.mamba,
            {"tokens": T, "hidden": h, "num_heads": heads, "head_dim": P, "state": N,
             "phase": self.phase.value, "batch": B, "q_len": self.q_len, "n_groups": groups,
             "conv_kernel": m.conv_kernel, "chunk_size": m.chunk_size},
            conv_flops + ssm_flops, io + 2 * state, stage=STAGE_ATTENTION)
        ops = [
            self.gemm("mamba.in_proj", T, in_dim, h, self.p.weight, STAGE_ATTENTION),
            ssm,
            self.elementwise("mamba.gated_norm", "gated_rmsnorm", d_in, 2, 1, STAGE_ATTENTION, 6.0),
            self.gemm("mamba.out_proj", T, h, d_in, self.p.weight, STAGE_ATTENTION),
        ]
        return ops + self.comm("mamba.all_reduce", "all_reduce", "tp", tp, T * h * self.act,
                               STAGE_ATTENTION)

    # ------------------------------------------------------------ FFNs
    def mlp(self, prefix: str, inter: int, gated: bool) -> list[Operator]:
        tp, h = self.L.tp, self.s.hidden_size
        local = inter // tp
        up = 2 * local if gated else local
        return [
            self.gemm(f"{prefix}.gate_up" if gated else f"{prefix}.up", self.T, up, h,
                      self.p.weight, STAGE_FFN),
            self.elementwise(f"{prefix}.act", "swiglu" if gated else "relu2", local,
                             2 if gated else 1, 1, STAGE_FFN, 4.0),
            self.gemm(f"{prefix}.down", self.T, h, local, self.p.weight, STAGE_FFN),
        ]

    def dense(self) -> list[Operator]:
        ops = [self.norm("ffn.norm", STAGE_FFN)]
        ops += self.mlp("mlp", self.s.dense_inter, self.s.dense_gated)
        return ops + self.comm("mlp.all_reduce", "all_reduce", "tp", self.L.tp,
                               self.T * self.s.hidden_size * self.act, STAGE_FFN)

    def moe(self) -> list[Operator]:
        moe = self.s.moe
        assert moe is not None
        L, h, T = self.L, self.s.hidden_size, self.T
        d = moe.latent or h
        E = moe.num_experts
        mats = 3 if moe.gated else 2
        ops = [self.norm("ffn.norm", STAGE_FFN)]
        # Routing runs where the tokens are (attention GPUs under AFD), before dispatch.
        ops.append(self.gemm("moe.router", T, E, h, DType.bfloat16, STAGE_ATTENTION))
        ops.append(Operator("moe.topk", OpKind.elementwise, {"op": "router_topk", "tokens": T,
                                                             "width": E, "k": moe.topk},
                            5.0 * T * E, T * E * 4.0 + T * moe.topk * 8.0, stage=STAGE_ATTENTION))
        if moe.latent:
            ops.append(self.gemm("moe.latent_down", T, moe.latent, h, self.p.weight,
                                 STAGE_ATTENTION))
        group = L.ep * L.moe_tp
        per_gpu_tokens = T / L.tp  # the attention-TP ranks split their tokens for dispatch
        payload = per_gpu_tokens * moe.topk * d * self.act  # upper bound: one copy per expert
        ops += self.comm("moe.dispatch", "moe_dispatch", "ep", group, payload, STAGE_FFN,
                         tokens_per_gpu=per_gpu_tokens, hidden=d, topk=moe.topk)
        tokens = T * L.dp
        inter = moe.inter // L.moe_tp
        ed = self.p.expert
        gd = self.p.gemm_dtype(ed)
        dims = {"tokens": int(tokens), "hidden": h, "inter": inter, "num_experts": E,
                "topk": moe.topk, "ep": L.ep, "tp": L.moe_tp, "dtype": gd, "latent": moe.latent,
                "fp4_format": self.p.fp4_format if ed == DType.fp4 else "",
                "act_dtype": self.act_dtype.value, "gated": moe.gated}
        ex = L.experts
        if ex is None:  # even split, balanced: every GPU its mean share
            pairs = tokens * moe.topk / L.ep
            local = math.ceil(E / L.ep)
            touched = local * (1.0 - (1.0 - moe.topk / E) ** tokens)
        else:  # the hottest GPU of the placement sets the layer's time
            pairs = tokens * moe.topk * ex.hot_share
            local = ex.hot_experts
            touched = ex.touched(int(tokens), moe.topk)
            dims.update(hot_experts=local, hot_share=ex.hot_share)
        # expected distinct experts (replicas) this GPU reads weights of: compute.moe_weights
        dims["touched"] = touched
        ops.append(Operator(
            "moe.experts", OpKind.moe, dims,
            pairs * 2.0 * mats * d * inter,
            touched * mats * d * inter * self.p.element_bytes(ed)
            + pairs * d * (self.in_bytes(gd) + self.act),
            stage=STAGE_FFN))
        ops += self.comm("moe.combine", "moe_combine", "ep", group, payload, STAGE_FFN,
                         tokens_per_gpu=per_gpu_tokens, hidden=d, topk=moe.topk)
        if moe.shared_inter:
            ops += self.mlp("shared", moe.shared_inter, moe.gated)
        if moe.latent:
            ops.append(self.gemm("moe.latent_up", T, h, moe.latent, self.p.weight,
                                 STAGE_ATTENTION))
        if moe.shared_inter:
            ops += self.comm("shared.all_reduce", "all_reduce", "tp", L.tp, T * h * self.act,
                             STAGE_FFN)
        return ops

    # ------------------------------------------------------------ whole stack
    def build(self) -> list[tuple[Operator, int]]:
        s, h = self.s, self.s.hidden_size
        out: list[tuple[Operator, int]] = [
            (self.elementwise("embed", "embedding_lookup", h, 1, 1, STAGE_OTHER, 0.0), 1)]
        out += [(o, 1) for o in self.comm("embed.all_reduce", "all_reduce", "tp", self.L.tp,
                                          self.T * h * self.act, STAGE_OTHER)]
        for g in s.groups:
            ops: list[Operator] = []
            if g.mixer != MixerKind.none:
                ops.append(self.norm("attn.norm" if g.mixer != MixerKind.mamba else "mamba.norm",
                                     STAGE_ATTENTION))
            if g.mixer == MixerKind.gqa:
                ops += self.gqa(g.window)
            elif g.mixer in (MixerKind.mla, MixerKind.dsa):
                ops += self.mla(dsa=g.mixer == MixerKind.dsa)
            elif g.mixer == MixerKind.mamba:
                ops += self.mamba()
            if g.ffn == FfnKind.dense:
                ops += self.dense()
            elif g.ffn == FfnKind.moe:
                ops += self.moe()
            out += [(o, g.count) for o in ops]
        out.append((self.elementwise("final_norm", "rmsnorm", h, 1, 1, STAGE_OTHER, 4.0), 1))
        # Only the last token of each request is sampled (prefill and decode alike).
        vocab = math.ceil(s.vocab_size / self.L.tp)
        out.append((self.gemm("lm_head", self.batch, vocab, h, DType.bfloat16, STAGE_OTHER), 1))
        return out


def _freeze(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else v


def _merge(ops: list[tuple[Operator, int]]) -> list[Operator]:
    """Sum the counts of identical operators (same name, kind and dims), keeping first order."""
    merged: dict[tuple, Operator] = {}
    for op, count in ops:
        key = (op.name, op.kind, op.stage, tuple(sorted((k, _freeze(v)) for k, v in op.dims.items())))
        if key in merged:
            merged[key].count += count
        else:
            op.count = count
            merged[key] = op
    return list(merged.values())


def forward_operators(spec: ModelSpec, phase: Phase | str, batch: int, context: int,
                      chunk: int | None = None, layout: ParallelLayout | None = None, *,
                      kv_dtype: DType | str | None = None,
                      activation_dtype: DType | str | None = None,
                      include_comm: bool = True) -> list[Operator]:
    """Every operator of one forward pass of the layer stack on one GPU of `layout`.

    phase: context (prefill: `batch` requests, each `chunk` new tokens, `context` tokens after it;
    chunk defaults to context) or generation (one new token per request, `context` keys).
    `batch` counts requests on one attention-DP rank. kv/activation dtypes default to the spec's.
    Raises ConfigError naming `batch`, `context`, `chunk` or `layout.<field>` on bad input.
    """
    phase = _PHASE_ALIASES.get(str(getattr(phase, "value", phase)), None)
    if phase is None:
        raise ConfigError("phase", "must be context (prefill) or generation (decode)")
    layout = layout or ParallelLayout()
    layout.validate("layout")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError("batch", f"must be an integer >= 1, got {batch!r}")
    if isinstance(context, bool) or not isinstance(context, int) or context < 1:
        raise ConfigError("context", f"must be an integer >= 1, got {context!r}")
    if phase == Phase.generation:
        q_len = 1
    else:
        q_len = context if chunk is None else chunk
        if isinstance(q_len, bool) or not isinstance(q_len, int) or not 1 <= q_len <= context:
            raise ConfigError("chunk", f"must be an integer in [1, context={context}], got {chunk!r}")
    a = spec.attention
    if a is not None and spec.num_attention_layers and a.num_heads % layout.tp:
        raise ConfigError("layout.tp", f"{layout.tp} does not divide the {a.num_heads} attention "
                                       f"heads of {spec.name}")
    if spec.mamba is not None and spec.mamba.num_heads % layout.tp:
        raise ConfigError("layout.tp", f"{layout.tp} does not divide the {spec.mamba.num_heads} "
                                       f"Mamba heads of {spec.name}")
    if spec.moe is not None and spec.num_moe_layers:
        if layout.ep > spec.moe.num_experts:
            raise ConfigError("layout.ep", f"{layout.ep} exceeds the {spec.moe.num_experts} "
                                           f"experts of {spec.name}")
        if spec.moe.inter % layout.moe_tp:
            raise ConfigError("layout.moe_tp", f"{layout.moe_tp} does not divide the expert "
                                               f"intermediate size {spec.moe.inter}")
    kv = spec.precision.kv if kv_dtype is None else DType(kv_dtype)
    act = spec.precision.activation if activation_dtype is None else DType(activation_dtype)
    b = _Builder(spec, phase, batch, q_len, context, layout, kv, act, include_comm)
    return _merge(b.build())


def total_flops(ops: list[Operator]) -> float:
    """FLOPs of a forward pass on one GPU (counts applied; comm ops carry none)."""
    return sum(o.flops * o.count for o in ops)


def total_bytes(ops: list[Operator]) -> float:
    """HBM bytes of a forward pass on one GPU (counts applied; comm placeholders excluded)."""
    return sum(o.bytes * o.count for o in ops if o.kind != OpKind.comm)
