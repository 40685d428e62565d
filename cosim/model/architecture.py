"""The pieces of a model architecture: token-mixer and FFN kinds, the attention, MoE and Mamba
specs, groups of identical layers, and the storage precisions. cosim.model.spec assembles them
into a ModelSpec (read from a Hugging Face config.json); cosim.model.params counts them."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from cosim.dtypes import DType, dtype_bytes

# The DSA lightning indexer caches one FP8 key of index_head_dim per token per layer plus one FP32
# scale per 128 values, whatever the KV dtype of the MLA latent (vLLM DeepseekV32IndexerBackend,
# SGLang DSATokenToKVPool, TensorRT-LLM DSA KV-cache manager all size it
# `index_head_dim + index_head_dim // 128 * 4` bytes).
DSA_INDEXER_QUANT_BLOCK = 128
DSA_INDEXER_SCALE_BYTES = 4


class MixerKind(str, Enum):
    gqa = "gqa"  # multi-head / grouped-query attention
    mla = "mla"  # multi-head latent attention (DeepSeek V3, Kimi-K2)
    dsa = "dsa"  # MLA + DeepSeek sparse attention indexer (DeepSeek V3.2)
    mamba = "mamba"  # Mamba-2 state-space mixer
    none = "none"  # layer without a token mixer (Nemotron-H MLP/MoE layers)


class FfnKind(str, Enum):
    dense = "dense"
    moe = "moe"
    none = "none"  # layer without an FFN (Nemotron-H Mamba/attention layers)


@dataclass(frozen=True)
class AttentionSpec:
    """Attention of the model (all attention layers share it)."""

    kind: MixerKind  # gqa | mla | dsa
    num_heads: int
    num_kv_heads: int  # GQA key/value heads; MLA: equal to num_heads (keys are per head)
    head_dim: int  # GQA head dim; MLA: qk_nope_head_dim + qk_rope_head_dim
    bias: bool = False  # q/k/v/o projection biases (GPT-OSS)
    qk_norm: bool = False  # per-head RMSNorm of q and k (Qwen3)
    sinks: bool = False  # learned attention-sink logit per head (GPT-OSS)
    # MLA
    q_lora_rank: int = 0  # 0: no query compression (a direct q_proj)
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0
    # DSA lightning indexer
    index_n_heads: int = 0
    index_head_dim: int = 0
    index_topk: int = 0

    @property
    def is_mla(self) -> bool:
        return self.kind in (MixerKind.mla, MixerKind.dsa)

    def kv_bytes_per_token_layer(self, kv_dtype: DType | str, tp: int = 1) -> float:
        """KV-cache bytes one token adds to one attention layer on one GPU of an attention-TP group.

        GQA: K and V of the local KV heads (a head is replicated when tp exceeds the KV heads).
        MLA: the compressed latent plus the decoupled RoPE key, replicated on every TP rank (all
        heads read the same latent). DSA adds the indexer key (FP8 + FP32 scale per 128 values).
        """
        b = dtype_bytes(kv_dtype)
        if self.kind == MixerKind.gqa:
            local_kv = max(1, math.ceil(self.num_kv_heads / tp))
            return 2 * local_kv * self.head_dim * b
        per = (self.kv_lora_rank + self.qk_rope_head_dim) * b
        if self.kind == MixerKind.dsa:
            per += self.index_head_dim + (
                self.index_head_dim // DSA_INDEXER_QUANT_BLOCK * DSA_INDEXER_SCALE_BYTES)
        return per


@dataclass(frozen=True)
class MoESpec:
    """Routed (and shared) experts of the MoE layers."""

    num_experts: int
    topk: int
    inter: int  # routed expert intermediate size
    gated: bool = True  # SwiGLU (gate+up+down) vs. 2-matrix (ReLU^2) experts
    num_shared: int = 0
    shared_inter: int = 0  # total intermediate width of the shared expert(s)
    latent: int = 0  # LatentMoE: experts run at this width (Nemotron-3 Super); 0: hidden
    expert_bias: bool = False  # biases in expert projections (GPT-OSS)
    router_bias: bool = False  # router bias / score-correction bias


@dataclass(frozen=True)
class MambaSpec:
    """Mamba-2 mixer (state-space duality)."""

    num_heads: int
    head_dim: int
    state_size: int
    n_groups: int
    conv_kernel: int
    chunk_size: int
    proj_bias: bool = False
    conv_bias: bool = True
    ssm_state_bytes: float = 4.0  # mamba_ssm_cache_dtype (float32 in Nemotron-3)

    @property
    def d_inner(self) -> int:
        return self.num_heads * self.head_dim

    @property
    def conv_dim(self) -> int:
        return self.d_inner + 2 * self.n_groups * self.state_size

    @property
    def in_proj_dim(self) -> int:
        # z, x, B, C, dt
        return 2 * self.d_inner + 2 * self.n_groups * self.state_size + self.num_heads


@dataclass(frozen=True)
class LayerGroup:
    """Layers of the same kind: token mixer, FFN, attention window (0 = full)."""

    mixer: MixerKind
    ffn: FfnKind
    window: int
    count: int
    layers: tuple[int, ...] = ()  # layer indices, in order

    @property
    def norms(self) -> int:
        """Pre-norms per layer: one per sub-block present."""
        return int(self.mixer != MixerKind.none) + int(self.ffn != FfnKind.none)


@dataclass(frozen=True)
class Precision:
    """Storage precision per weight role, and of the KV cache and activations."""

    weight: DType = DType.fp8
    expert: DType = DType.fp8
    attention: DType = DType.fp8
    fp8_scaling: str = "block"  # block | tensor
    fp4_format: str = "nvfp4"  # nvfp4 | mxfp4
    kv: DType = DType.bfloat16
    activation: DType = DType.bfloat16

    def gemm_dtype(self, dtype: DType | str) -> str:
        """The Operator dtype of a GEMM with weights in `dtype`: bfloat16 | fp8 | fp8_block | fp4."""
        d = DType(dtype)
        if d == DType.fp8:
            return "fp8_block" if self.fp8_scaling == "block" else "fp8"
        return d.value

    def element_bytes(self, dtype: DType | str) -> float:
        """Stored bytes per weight element, block scales included.

        fp8 block: one FP32 scale per 128x128 block (DeepSeek-V3 `weight_scale_inv`); fp8 tensor:
        one scale per matrix (negligible); nvfp4: one FP8 scale per 16 values (cosim.dtypes);
        mxfp4: one E8M0 scale per 32 values (OCP MX spec).
        """
        d = DType(dtype)
        if d == DType.fp8 and self.fp8_scaling == "block":
            return 1.0 + 4.0 / (128 * 128)
        if d == DType.fp4 and self.fp4_format == "mxfp4":
            return 0.5 + 1.0 / 32
        return dtype_bytes(d)
