"""Model architecture, normalised from a Hugging Face config.json.

`ModelSpec.from_hf(name, hf)` reads the fields of the families cosim knows (DeepSeek V3/V3.2/R1
and Kimi-K2 with MLA and the DSA indexer, Qwen3-MoE, GPT-OSS, Nemotron-H hybrids with latent MoE,
Llama-style dense models) into one shape: an attention spec, an MoE spec, a Mamba spec and the
layer stack as groups of identical layers. A missing or wrongly typed field raises ConfigError
naming `model.hf_config.<field>`.

Derived facts (parameters, weight bytes, KV-cache bytes) live here and in
:mod:`cosim.model.params`; the operators of a forward pass in :mod:`cosim.model.forward`.
See docs/models.md for the conventions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol

from omegaconf import DictConfig, OmegaConf

from cosim.dtypes import DType, dtype_bytes
from cosim.errors import ConfigError
from cosim.model.architecture import (
    AttentionSpec,
    FfnKind,
    LayerGroup,
    MambaSpec,
    MixerKind,
    MoESpec,
    Precision,
)
from cosim.model.params import (
    ParamGroup,
    mtp_params,
    param_groups,
    weight_bytes,
    weight_bytes_per_gpu,
)

if TYPE_CHECKING:
    from cosim.model.layout import ParallelLayout


class ModelSource(Protocol):
    """What ModelSpec.from_config reads: cosim.config.model.ModelConfig (or its DictConfig)."""

    name: str
    hf_config: Mapping[str, Any]
    hf_repo: str
    weight_dtype: DType
    expert_dtype: DType | None
    attention_dtype: DType | None
    fp8_scaling: str
    fp4_format: str
    kv_dtype: DType
    activation_dtype: DType
    max_context: int


_REQUIRED = object()


class _HFReader:
    """Typed access to the HF dict; errors name `<prefix>.<key>`."""

    def __init__(self, hf: Mapping[str, Any], prefix: str):
        self.hf = hf
        self.prefix = prefix

    def err(self, key: str, reason: str) -> ConfigError:
        return ConfigError(f"{self.prefix}.{key}", reason)

    def has(self, key: str) -> bool:
        return self.hf.get(key) is not None

    def int(self, key: str, default: Any = _REQUIRED, *, minimum: int | None = 0) -> int:
        v = self.hf.get(key)
        if v is None:
            if default is _REQUIRED:
                raise self.err(key, "missing: this model family needs it (copy it from config.json)")
            return default
        if isinstance(v, bool) or not isinstance(v, int):
            if isinstance(v, float) and v.is_integer():
                v = int(v)
            else:
                raise self.err(key, f"expected an integer, got {v!r} ({type(v).__name__})")
        if minimum is not None and v < minimum:
            raise self.err(key, f"must be >= {minimum}, got {v}")
        return v

    def bool(self, key: str, default: bool = False) -> bool:
        v = self.hf.get(key)
        if v is None:
            return default
        if not isinstance(v, bool):
            raise self.err(key, f"expected true/false, got {v!r} ({type(v).__name__})")
        return v

    def str(self, key: str, default: str = "") -> str:
        v = self.hf.get(key)
        if v is None:
            return default
        if not isinstance(v, str):
            raise self.err(key, f"expected a string, got {v!r} ({type(v).__name__})")
        return v

    def list(self, key: str, default: list | None = None) -> list:
        v = self.hf.get(key)
        if v is None:
            return list(default or [])
        if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__") or isinstance(v, Mapping):
            raise self.err(key, f"expected a list, got {v!r} ({type(v).__name__})")
        return list(v)


@dataclass(frozen=True)
class ModelSpec:
    """A model's architecture and serving precisions, normalised from its HF config."""

    name: str
    model_type: str  # the HF `model_type`
    hidden_size: int
    vocab_size: int
    layers: tuple[tuple[MixerKind, FfnKind, int], ...]  # (mixer, ffn, window) per layer
    attention: AttentionSpec | None
    moe: MoESpec | None
    mamba: MambaSpec | None
    dense_inter: int = 0  # intermediate size of dense MLP layers
    dense_gated: bool = True
    mlp_bias: bool = False
    tie_embeddings: bool = False
    num_mtp_layers: int = 0  # multi-token-prediction modules (not counted in total_params)
    mtp_pattern: tuple[tuple[MixerKind, FfnKind, int], ...] = ()
    max_context: int = 0
    hf_repo: str = ""
    precision: Precision = field(default_factory=Precision)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_config(cls, cfg: ModelSource, prefix: str = "model") -> ModelSpec:
        """Build from a ModelConfig (dataclass or DictConfig); errors name `<prefix>.<field>`."""
        hf = cfg.hf_config
        if isinstance(hf, DictConfig):
            hf = OmegaConf.to_container(hf, resolve=True)
        weight = DType(cfg.weight_dtype)
        precision = Precision(
            weight=weight,
            expert=DType(cfg.expert_dtype) if cfg.expert_dtype is not None else weight,
            attention=DType(cfg.attention_dtype) if cfg.attention_dtype is not None else weight,
            fp8_scaling=str(cfg.fp8_scaling),
            fp4_format=str(cfg.fp4_format),
            kv=DType(cfg.kv_dtype),
            activation=DType(cfg.activation_dtype),
        )
        if not isinstance(hf, Mapping) or not hf:
            raise ConfigError(f"{prefix}.hf_config", "empty: paste the model's config.json fields")
        return cls.from_hf(str(cfg.name), hf, precision=precision, hf_repo=str(cfg.hf_repo or ""),
                           max_context=int(cfg.max_context or 0), prefix=f"{prefix}.hf_config")

    @classmethod
    def from_hf(cls, name: str, hf: Mapping[str, Any], *, precision: Precision | None = None,
                hf_repo: str = "", max_context: int = 0,
                prefix: str = "model.hf_config") -> ModelSpec:
        """Read a Hugging Face config.json dict (see the module docstring for the families)."""
        r = _HFReader(hf, prefix)
        model_type = r.str("model_type", "unknown")
        hidden = r.int("hidden_size", minimum=1)
        vocab = r.int("vocab_size", minimum=1)
        pattern = r.str("hybrid_override_pattern") if r.has("hybrid_override_pattern") else ""
        num_layers = r.int("num_hidden_layers", len(pattern) if pattern else _REQUIRED, minimum=1)
        if pattern and len(pattern) != num_layers:
            raise r.err("hybrid_override_pattern",
                        f"has {len(pattern)} layers but num_hidden_layers is {num_layers}")

        attention = _read_attention(r, hidden, model_type, needed=not pattern or "*" in pattern)
        moe = _read_moe(r, model_type)
        mamba = _read_mamba(r) if "M" in pattern else None
        act = r.str("mlp_hidden_act") or r.str("hidden_act", "silu")
        dense_gated = act not in ("relu2", "gelu_pytorch_tanh_nongated")

        layers = _read_layers(r, num_layers, pattern, attention, moe)
        needs_dense = any(f == FfnKind.dense for _, f, _ in layers)
        dense_inter = r.int("intermediate_size", minimum=1) if needs_dense else r.int(
            "intermediate_size", 0)

        n_mtp = r.int("num_nextn_predict_layers", 0)
        mtp_pattern: tuple = ()
        if n_mtp:
            mtp_chars = r.str("mtp_hybrid_override_pattern")
            if mtp_chars:
                mtp_pattern = tuple(_hybrid_layer(r, c, attention, moe, "mtp_hybrid_override_pattern")
                                    for c in mtp_chars)
            else:
                mtp_pattern = (layers[-1],)

        max_pos = r.int("max_position_embeddings", 0)
        return cls(
            name=name, model_type=model_type, hidden_size=hidden, vocab_size=vocab,
            layers=tuple(layers), attention=attention, moe=moe, mamba=mamba,
            dense_inter=dense_inter, dense_gated=dense_gated, mlp_bias=r.bool("mlp_bias"),
            tie_embeddings=r.bool("tie_word_embeddings"), num_mtp_layers=n_mtp,
            mtp_pattern=mtp_pattern, max_context=max_context or max_pos, hf_repo=hf_repo,
            precision=precision or Precision(),
        )

    # ---------------------------------------------------------------- structure
    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @cached_property
    def groups(self) -> tuple[LayerGroup, ...]:
        """Layers grouped by (mixer, ffn, window), in order of first appearance."""
        idx: dict[tuple, list[int]] = {}
        for i, key in enumerate(self.layers):
            idx.setdefault(key, []).append(i)
        return tuple(LayerGroup(m, f, w, len(ix), tuple(ix)) for (m, f, w), ix in idx.items())

    def count_layers(self, mixer: MixerKind | None = None, ffn: FfnKind | None = None) -> int:
        return sum(1 for m, f, _ in self.layers
                   if (mixer is None or m == mixer) and (ffn is None or f == ffn))

    @property
    def num_moe_layers(self) -> int:
        return self.count_layers(ffn=FfnKind.moe)

    @property
    def num_dense_layers(self) -> int:
        return self.count_layers(ffn=FfnKind.dense)

    @property
    def num_attention_layers(self) -> int:
        return sum(1 for m, _, _ in self.layers if m in (MixerKind.gqa, MixerKind.mla, MixerKind.dsa))

    @property
    def num_mamba_layers(self) -> int:
        return self.count_layers(mixer=MixerKind.mamba)

    # ---------------------------------------------------------------- parameters
    @cached_property
    def param_groups(self) -> tuple[ParamGroup, ...]:
        return tuple(param_groups(self))

    @property
    def total_params(self) -> int:
        """All weights resident for serving: embeddings and LM head included, MTP modules excluded."""
        return sum(g.total for g in self.param_groups)

    @property
    def active_params(self) -> int:
        """Weights one token touches: top-k routed + shared experts, LM head; no embedding table."""
        return sum(g.active for g in self.param_groups)

    @cached_property
    def mtp_params(self) -> int:
        """Parameters of the multi-token-prediction modules (excluded from total_params)."""
        return mtp_params(self)

    def weight_bytes(self, dtype: DType | str | None = None) -> float:
        """Bytes of all weights: every weight in `dtype`, or (None) in the configured precisions."""
        return weight_bytes(self, dtype)

    def weight_bytes_per_gpu(self, layout: ParallelLayout, stage: str | None = None,
                             redundant_experts: int = 0) -> float:
        """Weight bytes one GPU of `layout` holds (configured precisions).

        stage None: attention and FFN on the same GPUs (chunked, P/D). "attention" / "ffn": the
        GPU groups of Attention-FFN disaggregation (embedding, LM head, routers and Mamba mixers
        sit with attention; dense MLPs, shared and routed experts with the FFN).
        `redundant_experts`: extra expert replicas spread over the EP group (EPLB).
        """
        return weight_bytes_per_gpu(self, layout, stage, redundant_experts)

    # ---------------------------------------------------------------- caches
    def kv_cache_bytes_per_token(self, dtype: DType | str | None = None, tp: int = 1) -> float:
        """KV bytes per token summed over full-attention layers (the part that grows with context).

        Sliding-window layers are in :meth:`window_kv_bytes_per_token`; :meth:`kv_bytes` applies
        the windows. `tp`: per GPU of an attention-TP group (MLA latents are replicated).
        """
        if self.attention is None:
            return 0.0
        d = self.precision.kv if dtype is None else DType(dtype)
        per = self.attention.kv_bytes_per_token_layer(d, tp)
        return per * sum(1 for m, _, w in self.layers if m != MixerKind.mamba
                         and m != MixerKind.none and w == 0)

    def window_kv_bytes_per_token(self, dtype: DType | str | None = None, tp: int = 1) -> float:
        """KV bytes per token summed over sliding-window layers (each holds at most `window` tokens)."""
        if self.attention is None:
            return 0.0
        d = self.precision.kv if dtype is None else DType(dtype)
        per = self.attention.kv_bytes_per_token_layer(d, tp)
        return per * sum(1 for m, _, w in self.layers if m not in (MixerKind.mamba, MixerKind.none)
                         and w > 0)

    def kv_bytes(self, context_len: int, dtype: DType | str | None = None, tp: int = 1) -> float:
        """KV-cache bytes of one request holding `context_len` tokens (windows applied)."""
        if self.attention is None or context_len <= 0:
            return 0.0
        d = self.precision.kv if dtype is None else DType(dtype)
        per = self.attention.kv_bytes_per_token_layer(d, tp)
        total = 0.0
        for m, _, w in self.layers:
            if m in (MixerKind.mamba, MixerKind.none):
                continue
            total += per * (min(context_len, w) if w > 0 else context_len)
        return total

    def state_bytes_per_request(self, tp: int = 1) -> float:
        """Recurrent state of one request (Mamba conv + SSM state), independent of its length."""
        if self.mamba is None:
            return 0.0
        mb = self.mamba
        act = dtype_bytes(self.precision.activation)
        heads = max(1, math.ceil(mb.num_heads / tp))
        groups = max(1, math.ceil(mb.n_groups / tp))
        conv_dim = heads * mb.head_dim + 2 * groups * mb.state_size
        per_layer = (conv_dim * (mb.conv_kernel - 1) * act
                     + heads * mb.head_dim * mb.state_size * mb.ssm_state_bytes)
        return per_layer * self.num_mamba_layers


# -------------------------------------------------------------------- readers

def _read_attention(r: _HFReader, hidden: int, model_type: str, needed: bool) -> AttentionSpec | None:
    if not needed:
        return None
    heads = r.int("num_attention_heads", minimum=1)
    if r.has("kv_lora_rank"):
        kind = MixerKind.dsa if (r.has("index_topk") or r.has("index_n_heads")) else MixerKind.mla
        nope = r.int("qk_nope_head_dim", minimum=1)
        rope = r.int("qk_rope_head_dim", minimum=1)
        spec = AttentionSpec(
            kind=kind, num_heads=heads, num_kv_heads=heads, head_dim=nope + rope,
            bias=r.bool("attention_bias"),
            q_lora_rank=r.int("q_lora_rank", 0), kv_lora_rank=r.int("kv_lora_rank", minimum=1),
            qk_nope_head_dim=nope, qk_rope_head_dim=rope, v_head_dim=r.int("v_head_dim", minimum=1),
        )
        if kind == MixerKind.dsa:
            spec = replace(spec, index_n_heads=r.int("index_n_heads", minimum=1),
                           index_head_dim=r.int("index_head_dim", minimum=1),
                           index_topk=r.int("index_topk", minimum=1))
        return spec
    kv_heads = r.int("num_key_value_heads", heads, minimum=1)
    if heads % kv_heads:
        raise r.err("num_key_value_heads",
                    f"{kv_heads} does not divide num_attention_heads={heads}")
    head_dim = r.int("head_dim", 0) or hidden // heads
    return AttentionSpec(
        kind=MixerKind.gqa, num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim,
        bias=r.bool("attention_bias"),
        qk_norm=model_type in ("qwen3", "qwen3_moe"),
        sinks=model_type == "gpt_oss",
    )


def _read_moe(r: _HFReader, model_type: str) -> MoESpec | None:
    key = next((k for k in ("n_routed_experts", "num_experts", "num_local_experts") if r.has(k)),
               None)
    if key is None or r.int(key) == 0:
        return None
    num_experts = r.int(key, minimum=1)
    topk_key = ("experts_per_token" if r.has("experts_per_token")
                and not r.has("num_experts_per_tok") else "num_experts_per_tok")
    topk = r.int(topk_key, minimum=1)
    if topk > num_experts:
        raise r.err(topk_key, f"{topk} exceeds the number of experts ({num_experts})")
    # GPT-OSS and Mixtral give the expert width as intermediate_size.
    inter_key = ("intermediate_size" if r.has("intermediate_size")
                 and not r.has("moe_intermediate_size") else "moe_intermediate_size")
    inter = r.int(inter_key, minimum=1)
    act = r.str("mlp_hidden_act") or r.str("hidden_act", "silu")
    num_shared = r.int("n_shared_experts", 0)
    if r.has("moe_shared_expert_intermediate_size"):  # Nemotron-H: width given per shared expert
        shared_inter = r.int("moe_shared_expert_intermediate_size") * max(num_shared, 1)
        num_shared = max(num_shared, 1)
    elif r.has("shared_expert_intermediate_size"):  # Qwen2-MoE style
        shared_inter = r.int("shared_expert_intermediate_size")
        num_shared = 1 if shared_inter else 0
    else:  # DeepSeek: n_shared_experts experts of moe_intermediate_size, fused into one MLP
        shared_inter = inter * num_shared
    return MoESpec(
        num_experts=num_experts, topk=topk, inter=inter, gated=act != "relu2",
        num_shared=num_shared, shared_inter=shared_inter,
        latent=r.int("moe_latent_size", 0),
        expert_bias=model_type == "gpt_oss",
        router_bias=(r.str("topk_method") == "noaux_tc" or model_type in ("gpt_oss", "nemotron_h")),
    )


def _read_mamba(r: _HFReader) -> MambaSpec:
    heads = r.int("mamba_num_heads", minimum=1)
    head_dim = r.int("mamba_head_dim", minimum=1)
    cache_dtype = r.str("mamba_ssm_cache_dtype", "float32")
    return MambaSpec(
        num_heads=heads, head_dim=head_dim,
        state_size=r.int("ssm_state_size", minimum=1),
        n_groups=r.int("n_groups", 1, minimum=1),
        conv_kernel=r.int("conv_kernel", 4, minimum=1),
        chunk_size=r.int("chunk_size", 128, minimum=1),
        proj_bias=r.bool("mamba_proj_bias"),
        conv_bias=r.bool("use_conv_bias", True),
        ssm_state_bytes=4.0 if cache_dtype in ("float32", "fp32") else 2.0,
    )


def _hybrid_layer(r: _HFReader, ch: str, attention: AttentionSpec | None, moe: MoESpec | None,
                  key: str) -> tuple[MixerKind, FfnKind, int]:
    if ch == "M":
        return (MixerKind.mamba, FfnKind.none, 0)
    if ch == "*":
        return (attention.kind if attention else MixerKind.gqa, FfnKind.none, 0)
    if ch == "-":
        return (MixerKind.none, FfnKind.dense, 0)
    if ch == "E":
        if moe is None:
            raise r.err("n_routed_experts", f"missing: {key} has MoE layers ('E')")
        return (MixerKind.none, FfnKind.moe, 0)
    raise r.err(key, f"unknown layer character {ch!r}; use M (Mamba-2), * (attention), "
                     "- (MLP) or E (MoE)")


def _read_layers(r: _HFReader, n: int, pattern: str, attention: AttentionSpec | None,
                 moe: MoESpec | None) -> list[tuple[MixerKind, FfnKind, int]]:
    if pattern:
        return [_hybrid_layer(r, c, attention, moe, "hybrid_override_pattern") for c in pattern]
    assert attention is not None
    windows = _read_windows(r, n)
    if moe is None:
        is_moe = [False] * n
    elif r.has("first_k_dense_replace") or r.has("moe_layer_freq"):  # DeepSeek / Kimi
        k = r.int("first_k_dense_replace", 0)
        freq = r.int("moe_layer_freq", 1, minimum=1)
        is_moe = [i >= k and i % freq == 0 for i in range(n)]
    else:  # Qwen-MoE (decoder_sparse_step, mlp_only_layers); GPT-OSS and Mixtral: all MoE
        step = r.int("decoder_sparse_step", 1, minimum=1)
        dense_only = r.list("mlp_only_layers")
        for v in dense_only:
            if isinstance(v, bool) or not isinstance(v, int):
                raise r.err("mlp_only_layers", f"expected layer indices, got {v!r}")
        is_moe = [(i not in dense_only) and (i + 1) % step == 0 for i in range(n)]
    return [(attention.kind, FfnKind.moe if m else FfnKind.dense, w)
            for m, w in zip(is_moe, windows, strict=True)]


def _read_windows(r: _HFReader, n: int) -> list[int]:
    types = r.list("layer_types")
    if types:
        if len(types) != n:
            raise r.err("layer_types", f"has {len(types)} entries, num_hidden_layers is {n}")
        unknown = {t for t in types if t not in ("full_attention", "sliding_attention")}
        if unknown:
            raise r.err("layer_types", f"unknown layer types {sorted(map(str, unknown))}; "
                                       "expected full_attention or sliding_attention")
        window = r.int("sliding_window", minimum=1) if "sliding_attention" in types else 0
        return [window if t == "sliding_attention" else 0 for t in types]
    if r.bool("use_sliding_window") and r.has("sliding_window"):
        # Qwen2/3 semantics: layers from max_window_layers on use the window.
        window = r.int("sliding_window", minimum=1)
        first = r.int("max_window_layers", 0)
        return [window if i >= first else 0 for i in range(n)]
    return [0] * n
