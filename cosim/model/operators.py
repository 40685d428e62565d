"""Operators of one forward pass, with their shapes, FLOPs and bytes.

The model side (cosim.model) says *what* runs; the compute side (cosim.compute) says how
long it takes. An Operator carries its per-GPU shape in `dims` (after the parallel layout
has split it), so a predictor can look it up in a measured table, and its FLOPs and
HBM bytes, so a roofline can bound it.

Kinds and their `dims` (all per GPU, one layer, one invocation):
- gemm:       m (tokens), n (output features), k (input features), dtype (bfloat16|fp8|fp8_block|fp4)
- attention:  GQA/MHA core. phase (context|generation), batch, q_len (new tokens per request),
              kv_len (cached + new, per request), num_heads, num_kv_heads (local), head_dim,
              window (0 = full), kv_dtype
- mla:        MLA core (absorbed in generation). phase, batch, q_len, kv_len, num_heads (local),
              kv_lora_rank, qk_rope_head_dim, qk_nope_head_dim, v_head_dim, kv_dtype
- mla_module / dsa_module: a whole MLA / DSA attention block (projections + core [+ indexer]);
              dims as mla plus (dsa) index_n_heads, index_head_dim, index_topk, and the
              model name in `model`; `parts` lists the kernels it is made of, for pricing
              off-table.
- moe:        routed experts of one MoE layer. tokens (entering the EP group, summed over
              attention-DP ranks), hidden, inter (expert intermediate, per TP shard),
              num_experts, topk, ep, tp, dtype, latent (0 or latent width)
- mamba:      Mamba-2 mixer. tokens, hidden, num_heads, head_dim, state, phase
- elementwise: norms, activations, residual adds, RoPE, router softmax: memory bound
- comm:       placeholder for communication inside a forward pass (priced by the network
              side, never by cosim.compute): pattern, bytes
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class OpKind(str, Enum):
    gemm = "gemm"
    attention = "attention"
    mla = "mla"
    mla_module = "mla_module"
    dsa_module = "dsa_module"
    moe = "moe"
    mamba = "mamba"
    elementwise = "elementwise"
    comm = "comm"


class Phase(str, Enum):
    context = "context"  # prefill (a chunk of new tokens per request)
    generation = "generation"  # decode (one new token per request)


@dataclass
class Operator:
    name: str  # e.g. "layer.attn.q_b_proj", "moe.experts", "lm_head"
    kind: OpKind
    dims: dict[str, Any]
    flops: float  # per invocation, per GPU
    bytes: float  # HBM bytes read + written per invocation, per GPU
    count: int = 1  # invocations per forward pass (e.g. the number of layers of this type)
    stage: str = "other"  # attention | ffn | other (embedding, lm_head): AFD places stages on GPU groups
    parts: list[Operator] = field(default_factory=list)  # for *_module kinds
