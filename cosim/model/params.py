"""Parameter counts and weight bytes of a ModelSpec, per component.

Convention (as model cards count, checked in tests/test_model_spec.py):
- total_params: every weight resident for serving, embedding table and LM head included (once
  when tied), multi-token-prediction (MTP / nextn) modules excluded (`mtp_params` reports them).
- active_params: weights one token touches in a forward pass: attention, dense MLPs, top-k routed
  experts, shared experts, routers, norms and the LM head; the input-embedding table is a lookup,
  not a matmul, so it is not active.

Each component says its storage role (which precision), how it is sharded over a parallel layout
and on which side of Attention-FFN disaggregation it lives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from cosim.dtypes import DType, dtype_bytes
from cosim.model.architecture import (
    AttentionSpec,
    FfnKind,
    LayerGroup,
    MambaSpec,
    MixerKind,
    MoESpec,
    Precision,
)

if TYPE_CHECKING:
    from cosim.model.layout import ParallelLayout

# Storage roles -> which Precision field gives the dtype.
ROLE_BF16 = "bf16"  # embedding, LM head, norms, biases, routers, small Mamba tensors
ROLE_WEIGHT = "weight"  # dense MLPs, shared experts, Mamba projections, latent projections
ROLE_ATTENTION = "attention"  # attention projections
ROLE_EXPERT = "expert"  # routed experts

# Sharding over a ParallelLayout.
SHARD_TP = "tp"  # split over attention TP ranks
SHARD_KV = "kv_heads"  # split over min(tp, num_kv_heads) (KV heads replicate beyond that)
SHARD_REPLICATED = "replicated"  # a full copy on every GPU
SHARD_EXPERTS = "experts"  # E/ep experts per GPU, each inter/moe_tp wide


@dataclass(frozen=True)
class ParamGroup:
    """One component of the model, summed over the layers that have it."""

    name: str
    total: int
    active: int
    role: str  # bf16 | weight | attention | expert
    shard: str  # tp | kv_heads | replicated | experts
    stage: str  # attention | ffn | other (other: embedding and LM head, placed with attention)


class ParamSource(Protocol):
    """What the counts read from a model: cosim.model.spec.ModelSpec has these fields."""

    hidden_size: int
    vocab_size: int
    attention: AttentionSpec | None
    moe: MoESpec | None
    mamba: MambaSpec | None
    dense_inter: int
    dense_gated: bool
    mlp_bias: bool
    tie_embeddings: bool
    num_mtp_layers: int
    mtp_pattern: tuple[tuple[MixerKind, FfnKind, int], ...]
    precision: Precision

    @property
    def groups(self) -> tuple[LayerGroup, ...]: ...

    @property
    def param_groups(self) -> tuple[ParamGroup, ...]: ...

    @property
    def total_params(self) -> int: ...


def _mixer_components(spec: ParamSource, mixer: MixerKind) -> list[tuple[str, int, str, str, str]]:
    """(name, params, role, shard, stage) of one layer's token mixer."""
    h = spec.hidden_size
    out: list[tuple[str, int, str, str, str]] = []
    if mixer == MixerKind.gqa:
        a = spec.attention
        assert a is not None
        q = a.num_heads * a.head_dim
        kv = a.num_kv_heads * a.head_dim
        out.append(("attention", h * q + q * h, ROLE_ATTENTION, SHARD_TP, "attention"))
        out.append(("attention_kv", 2 * h * kv, ROLE_ATTENTION, SHARD_KV, "attention"))
        small = 0
        if a.bias:
            small += q + 2 * kv + h
        if a.qk_norm:
            small += 2 * a.head_dim
        if a.sinks:
            small += a.num_heads
        if small:
            out.append(("attention_small", small, ROLE_BF16, SHARD_REPLICATED, "attention"))
    elif mixer in (MixerKind.mla, MixerKind.dsa):
        a = spec.attention
        assert a is not None
        H = a.num_heads
        qk = a.qk_nope_head_dim + a.qk_rope_head_dim
        # Down-projections (q_a, kv_a) are replicated on TP ranks (every rank needs the latent);
        # up-projections and o_proj are split by heads.
        down = h * (a.kv_lora_rank + a.qk_rope_head_dim)
        up = a.kv_lora_rank * H * (a.qk_nope_head_dim + a.v_head_dim) + H * a.v_head_dim * h
        if a.q_lora_rank:
            down += h * a.q_lora_rank
            up += a.q_lora_rank * H * qk
        else:
            up += h * H * qk
        out.append(("attention", up, ROLE_ATTENTION, SHARD_TP, "attention"))
        out.append(("attention_latent", down, ROLE_ATTENTION, SHARD_REPLICATED, "attention"))
        small = a.q_lora_rank + a.kv_lora_rank  # latent RMSNorms
        if mixer == MixerKind.dsa:
            q_in = a.q_lora_rank or h
            indexer = (q_in * a.index_n_heads * a.index_head_dim + h * a.index_head_dim
                       + h * a.index_n_heads)
            out.append(("dsa_indexer", indexer, ROLE_WEIGHT, SHARD_REPLICATED, "attention"))
            small += 2 * a.index_head_dim  # indexer key LayerNorm (weight + bias)
        out.append(("attention_small", small, ROLE_BF16, SHARD_REPLICATED, "attention"))
    elif mixer == MixerKind.mamba:
        m = spec.mamba
        assert m is not None
        proj = h * m.in_proj_dim + m.d_inner * h
        if m.proj_bias:
            proj += m.in_proj_dim + h
        small = m.conv_dim * m.conv_kernel + (m.conv_dim if m.conv_bias else 0)
        small += 3 * m.num_heads + m.d_inner  # dt_bias, A_log, D, gated RMSNorm
        out.append(("mamba", proj, ROLE_WEIGHT, SHARD_TP, "attention"))
        out.append(("mamba_small", small, ROLE_BF16, SHARD_TP, "attention"))
    return out


def _ffn_components(spec: ParamSource, ffn: FfnKind) -> list[tuple[str, int, int, str, str, str]]:
    """(name, total, active, role, shard, stage) of one layer's FFN."""
    h = spec.hidden_size
    out: list[tuple[str, int, int, str, str, str]] = []
    if ffn == FfnKind.dense:
        mats = 3 if spec.dense_gated else 2
        p = mats * h * spec.dense_inter
        if spec.mlp_bias:
            p += (mats - 1) * spec.dense_inter + h
        out.append(("dense_mlp", p, p, ROLE_WEIGHT, SHARD_TP, "ffn"))
    elif ffn == FfnKind.moe:
        moe = spec.moe
        assert moe is not None
        mats = 3 if moe.gated else 2
        d = moe.latent or h
        per_expert = mats * d * moe.inter
        out.append(("routed_experts", moe.num_experts * per_expert, moe.topk * per_expert,
                    ROLE_EXPERT, SHARD_EXPERTS, "ffn"))
        if moe.expert_bias:
            b = (mats - 1) * moe.inter + d
            out.append(("routed_expert_bias", moe.num_experts * b, moe.topk * b, ROLE_BF16,
                        SHARD_EXPERTS, "ffn"))
        router = moe.num_experts * h + (moe.num_experts if moe.router_bias else 0)
        # The router decides where tokens go before dispatch: it runs with attention in AFD.
        out.append(("router", router, router, ROLE_BF16, SHARD_REPLICATED, "attention"))
        if moe.shared_inter:
            s = mats * h * moe.shared_inter
            out.append(("shared_experts", s, s, ROLE_WEIGHT, SHARD_TP, "ffn"))
        if moe.latent:
            # LatentMoE projects tokens to the latent width before dispatch and back after
            # combine, on the GPU that owns the token (whole vectors travel: not TP-split).
            lp = 2 * h * moe.latent
            out.append(("moe_latent_proj", lp, lp, ROLE_WEIGHT, SHARD_REPLICATED, "attention"))
    return out


def _layer_params(spec: ParamSource, mixer: MixerKind, ffn: FfnKind) -> tuple[int, int]:
    """(total, active) parameters of one layer, norms included."""
    total = active = 0
    for _, p, *_ in _mixer_components(spec, mixer):
        total += p
        active += p
    for _, t, a, *_ in _ffn_components(spec, ffn):
        total += t
        active += a
    norms = (int(mixer != MixerKind.none) + int(ffn != FfnKind.none)) * spec.hidden_size
    return total + norms, active + norms


def param_groups(spec: ParamSource) -> list[ParamGroup]:
    """Components of the model (MTP modules excluded), summed over layers."""
    acc: dict[str, list] = {}

    def add(name: str, total: int, active: int, role: str, shard: str, stage: str) -> None:
        if name in acc:
            acc[name][0] += total
            acc[name][1] += active
        else:
            acc[name] = [total, active, role, shard, stage]

    h, v = spec.hidden_size, spec.vocab_size
    add("embedding", v * h, 0, ROLE_BF16, SHARD_TP, "other")
    for g in spec.groups:
        for name, p, role, shard, stage in _mixer_components(spec, g.mixer):
            add(name, p * g.count, p * g.count, role, shard, stage)
        for name, t, a, role, shard, stage in _ffn_components(spec, g.ffn):
            add(name, t * g.count, a * g.count, role, shard, stage)
        n = g.norms * h * g.count
        add("norms", n, n, ROLE_BF16, SHARD_REPLICATED, "attention")
    add("norms", h, h, ROLE_BF16, SHARD_REPLICATED, "attention")  # final norm
    # A tied LM head reuses the embedding table: stored once, still a matmul per token.
    add("lm_head", 0 if spec.tie_embeddings else v * h, v * h, ROLE_BF16, SHARD_TP, "other")
    return [ParamGroup(k, int(t), int(a), r, s, st) for k, (t, a, r, s, st) in acc.items()]


def mtp_params(spec: ParamSource) -> int:
    """Multi-token-prediction modules (DeepSeek nextn layers; Nemotron MTP): embedding and head shared.

    Each module: embedding/hidden norms (2h), eh_proj (2h x h), its decoder layer(s) and the
    shared head's norm (h) — DeepSeek-V3 technical report §2.2.
    """
    if not spec.num_mtp_layers:
        return 0
    h = spec.hidden_size
    per = 3 * h + 2 * h * h
    for m, f, _ in spec.mtp_pattern:
        per += _layer_params(spec, m, f)[0]
    return per * spec.num_mtp_layers


def role_dtype(spec: ParamSource, role: str) -> DType:
    p = spec.precision
    return {ROLE_BF16: DType.bfloat16, ROLE_WEIGHT: p.weight, ROLE_ATTENTION: p.attention,
            ROLE_EXPERT: p.expert}[role]


def weight_bytes(spec: ParamSource, dtype: DType | str | None = None) -> float:
    """All weights in `dtype` (plain element size), or (None) in the configured precisions."""
    if dtype is not None:
        return spec.total_params * dtype_bytes(dtype)
    p = spec.precision
    return sum(g.total * p.element_bytes(role_dtype(spec, g.role)) for g in spec.param_groups)


def active_weight_bytes(spec: ParamSource) -> float:
    """Configured-precision bytes of the weights one token touches (a batch-1 decode step reads
    at least these from HBM)."""
    p = spec.precision
    return sum(g.active * p.element_bytes(role_dtype(spec, g.role)) for g in spec.param_groups)


def weight_bytes_by_component(spec: ParamSource) -> dict[str, float]:
    """Configured-precision bytes per component."""
    p = spec.precision
    return {g.name: g.total * p.element_bytes(role_dtype(spec, g.role)) for g in spec.param_groups}


def _shard_fraction(spec: ParamSource, shard: str, layout: ParallelLayout,
                    redundant_experts: int) -> float:
    if shard == SHARD_TP:
        return 1.0 / layout.tp
    if shard == SHARD_KV:
        kv = spec.attention.num_kv_heads if spec.attention else 1
        return 1.0 / min(layout.tp, kv)
    if shard == SHARD_EXPERTS:
        e = spec.moe.num_experts if spec.moe else 1
        local = math.ceil((e + redundant_experts) / layout.ep)
        return local / e / layout.moe_tp
    return 1.0


def weight_bytes_per_gpu(spec: ParamSource, layout: ParallelLayout, stage: str | None = None,
                         redundant_experts: int = 0) -> float:
    """Configured-precision weight bytes on one GPU (see ModelSpec.weight_bytes_per_gpu)."""
    if stage not in (None, "attention", "ffn"):
        raise ValueError(f"stage must be None, 'attention' or 'ffn', got {stage!r}")
    p = spec.precision
    total = 0.0
    for g in spec.param_groups:
        side = "ffn" if g.stage == "ffn" else "attention"
        if stage is not None and side != stage:
            continue
        frac = _shard_fraction(spec, g.shard, layout, redundant_experts)
        total += g.total * frac * p.element_bytes(role_dtype(spec, g.role))
    return total
