"""Which measured table (and which grid and point of it) prices an operator.

One function per operator kind turns an Operator's per-GPU `dims` into candidate
:class:`TableQuery` objects, best first (the exact dtype, then documented substitutes).
:class:`cosim.compute.model.ComputeModel` takes the first candidate whose grid exists.

Key conventions (KERNEL_TABLES.md §3): attention/MLA/DSA head counts are per GPU; GEMM
m = tokens on the GPU; MoE num_tokens = tokens entering the EP group, inter_size is the full
expert width (the Operator's `inter` is per TP shard, so the key uses inter * tp);
generation tables are keyed on the KV length (isl + step for kernel tables, step for
module tables); context tables on (batch, isl, prefix = step).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cosim.model.operators import Operator, OpKind

# DeepSeek-V3 attention geometry, the one the MLA module tables were measured with
# (hidden 7168, q_lora 1536, kv_lora 512, nope 128, rope 64, v 128); Kimi-K2 shares it.
_MLA_GEOMETRY = {"hidden": 7168, "q_lora_rank": 1536, "kv_lora_rank": 512,
                 "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128}
_MLA_CORE = {"kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64,
             "v_head_dim": 128}
# DeepSeek-V3.2 DSA indexer (config.json index_n_heads / index_head_dim / index_topk).
_DSA_INDEXER = {"index_n_heads": 64, "index_head_dim": 128, "index_topk": 2048}

# Operator dtype -> table dtypes to try, best first.
_GEMM_DTYPES = {"bfloat16": ("bfloat16",), "fp8": ("fp8", "fp8_block"),
                "fp8_block": ("fp8_block", "fp8"), "fp4": ("nvfp4",), "nvfp4": ("nvfp4",)}
_MODULE_GEMM = {"bfloat16": ("bfloat16",), "fp8": ("fp8_block",), "fp8_block": ("fp8_block",),
                "fp4": ("nvfp4",), "nvfp4": ("nvfp4",)}
_MOE_DTYPES = {"bfloat16": ("bfloat16",), "fp8": ("fp8", "fp8_block"),
               "fp8_block": ("fp8_block", "fp8"),
               "fp4": ("nvfp4", "w4a8_mxfp4_mxfp8", "w4a16_mxfp4"),
               "nvfp4": ("nvfp4",), "mxfp4": ("w4a16_mxfp4", "w4a8_mxfp4_mxfp8"),
               "mxfp4_a8": ("w4a8_mxfp4_mxfp8", "w4a16_mxfp4")}
# Context-MLA kernel lanes that time the *absorbed* form (MQA over the 576-wide latent, 512-wide
# values: 2 * (576 + 512) FLOPs per pair and head, 3.4x the 2 * (192 + 128) of the decompressed
# form cosim's prefill core is). sglang's Hopper collector (collector/sglang/collect_mla.py)
# builds the FA3 layer with head_dim 576 / v_head_dim 512 for context rows too; its rows
# reach 0.17 of bf16 peak read as decompressed MLA and 0.58 read as absorbed (h100, 128
# heads, 4 x 4096), while trtllm's decompressed kernel reaches 0.52. The prefill core is
# then priced from another source (module table, or the roofline).
ABSORBED_CONTEXT_MLA_LANES = ("flash_attention",)
# (n, k) of the MLA BMMs per head: q_nope(128) -> latent(512); latent(512) -> v(128).
_BMM_SHAPES = {"mla_gen_pre": (512, 128), "mla_gen_post": (128, 512)}
_KV_DTYPES = {"bfloat16": ("bfloat16",), "fp8": ("fp8", "bfloat16"), "fp4": ("fp8", "bfloat16")}


@dataclass(frozen=True)
class TableQuery:
    """Look up `point` in grid `key` of table `table`; `dims_at(point)` rebuilds the op's
    shape at another grid point (for scaling an anchor by the roofline ratio)."""

    table: str
    key: tuple
    point: tuple[float, ...]
    dims_at: Callable[[tuple[float, ...]], dict[str, Any]]
    shrink: tuple[int, ...] = ()  # axes to walk down when the clamped point is in a hole
    note: str = ""  # substitution made to reach this table (empty when exact)
    prefix_axis: int | None = None  # context tables: index of the prefix axis (isl before it)
    # kernel_sources whose rows time another computation than the op's (skip the grid)
    exclude_lanes: tuple[str, ...] = ()


# Operator dtype names and the table names of the same format (not a substitution).
_SAME = {("fp4", "nvfp4"), ("mxfp4", "w4a16_mxfp4"), ("mxfp4_a8", "w4a8_mxfp4_mxfp8")}


def _sub(kind: str, wanted: str, got: str) -> str:
    return "" if wanted == got or (wanted, got) in _SAME else f"{kind} {wanted}->{got}"


def _matches(dims: Mapping[str, Any], ref: Mapping[str, int]) -> bool:
    """The op's geometry equals `ref` on every field the op states."""
    return all(int(dims[k]) == v for k, v in ref.items() if dims.get(k) is not None)


def _seq_point(dims: Mapping[str, Any]) -> tuple[str, float, float, float]:
    phase = str(dims.get("phase", "generation"))
    b = float(dims.get("batch", 1))
    q = float(dims.get("q_len", 1))
    kv = float(dims.get("kv_len", q))
    return phase, b, q, kv


def _seq_dims(dims: Mapping[str, Any], phase: str) -> Callable[[tuple], dict]:
    if phase == "context":
        return lambda p: {**dims, "batch": p[0], "q_len": p[1], "kv_len": p[1] + p[2]}
    return lambda p: {**dims, "batch": p[0], "kv_len": p[1]}


def gemm_queries(op: Operator, cfg, tables=None) -> list[TableQuery]:
    d = op.dims
    dtype = str(d.get("dtype", "bfloat16"))
    if d.get("bmm") in _BMM_SHAPES:
        return bmm_queries(op, cfg, tables)
    if float(d.get("batch", 1) or 1) != 1:
        return []  # other batched GEMMs (DSA indexer logits) have no table: roofline
    m, n, k = float(d["m"]), float(d["n"]), float(d["k"])

    def at(p):
        return {**d, "m": p[0], "n": p[1], "k": p[2]}

    return [TableQuery("gemm_perf", (t,), (m, n, k), at, shrink=(1, 2, 0),
                       note=_sub("dtype", dtype, t))
            for t in _GEMM_DTYPES.get(dtype, (dtype,))]


def bmm_queries(op: Operator, cfg, tables=None) -> list[TableQuery]:
    """MLA absorption BMMs (mla_gen_pre: q_nope x W_UK, mla_gen_post: latent x W_UV) of
    DeepSeek-V3 geometry: mla_bmm table keyed on local heads, axis = tokens."""
    d = op.dims
    name = str(d["bmm"])
    if (int(d["n"]), int(d["k"])) != _BMM_SHAPES[name]:
        return []
    dtype = str(d.get("dtype", "bfloat16"))
    want = "bfloat16" if dtype == "bfloat16" else "fp8"
    out = []
    for t in dict.fromkeys((want, "bfloat16")):
        out.append(TableQuery("mla_bmm_perf", (name, t, int(d["batch"])), (float(d["m"]),),
                              lambda p, d=d: {**d, "m": p[0]}, note=_sub("dtype", want, t)))
    return out


def attention_queries(op: Operator, cfg, tables=None) -> list[TableQuery]:
    d = op.dims
    phase, b, q, kv = _seq_point(d)
    window = int(d.get("window", 0) or 0)
    if window and kv <= window:
        window = 0  # a window longer than the sequence is full attention
    kv_dtype = str(d.get("kv_dtype", "bfloat16"))
    attn_dtype = str(d.get("attn_dtype", "bfloat16"))
    h, kvh, hd = int(d["num_heads"]), int(d.get("num_kv_heads", d["num_heads"])), int(d["head_dim"])
    out = []
    for kvt in _KV_DTYPES.get(kv_dtype, (kv_dtype,)):
        key = (attn_dtype, kvt, h, kvh, hd, window, 1)
        note = _sub("kv_dtype", kv_dtype, kvt)
        if phase == "context":
            out.append(TableQuery("context_attention_perf", key, (b, q, kv - q),
                                  _seq_dims(d, phase), shrink=(0,), note=note, prefix_axis=2))
        else:
            out.append(TableQuery("generation_attention_perf", key, (b, kv),
                                  _seq_dims(d, phase), shrink=(0,), note=note))
    return out


def mla_queries(op: Operator, cfg, tables=None) -> list[TableQuery]:
    d = op.dims
    phase, b, q, kv = _seq_point(d)
    if not _matches(d, _MLA_CORE) or d.get("sparse_topk") or d.get("index_topk"):
        return []  # the kernel tables time dense MLA of DeepSeek-V3 geometry only
    if phase == "context" and d.get("absorbed"):
        return []
    kv_dtype = str(d.get("kv_dtype", "bfloat16"))
    out = []
    for kvt in _KV_DTYPES.get(kv_dtype, (kv_dtype,)):
        key = ("bfloat16", kvt, int(d["num_heads"]))
        note = _sub("kv_dtype", kv_dtype, kvt)
        if phase == "context":
            out.append(TableQuery("context_mla_perf", key, (b, q, kv - q), _seq_dims(d, phase),
                                  shrink=(0,), note=note, prefix_axis=2,
                                  exclude_lanes=ABSORBED_CONTEXT_MLA_LANES))
        else:
            out.append(TableQuery("generation_mla_perf", key, (b, kv), _seq_dims(d, phase),
                                  shrink=(0,), note=note))
    return out


def module_queries(op: Operator, cfg, tables=None) -> list[TableQuery]:
    d = op.dims
    dsa = op.kind == OpKind.dsa_module
    if not _matches(d, _MLA_GEOMETRY) or (dsa and not _matches(d, _DSA_INDEXER)):
        return []
    phase, b, q, kv = _seq_point(d)
    kv_dtype = str(d.get("kv_dtype", "bfloat16"))
    gemm = str(d.get("gemm_dtype") or d.get("dtype") or "fp8_block")
    prefix = "dsa" if dsa else "mla"
    out = []
    for gt in _MODULE_GEMM.get(gemm, (gemm,)):
        for kvt in _KV_DTYPES.get(kv_dtype, (kv_dtype,)):
            key = ("bfloat16", kvt, gt, int(d["num_heads"]))
            note = ", ".join(s for s in (_sub("gemm_dtype", gemm, gt),
                                         _sub("kv_dtype", kv_dtype, kvt)) if s)
            if phase == "context":
                name = f"{prefix}_context_module_perf" if dsa else "mla_context_module_perf"
                out.append(TableQuery(name, key, (b, q, kv - q), _seq_dims(d, phase),
                                      shrink=(0,), note=note, prefix_axis=2))
            else:
                name = f"{prefix}_generation_module_perf" if dsa else "mla_generation_module_perf"
                out.append(TableQuery(name, key, (b, kv), _seq_dims(d, phase), shrink=(0,),
                                      note=note))
    if not dsa and "fp8_block" in _MODULE_GEMM.get(gemm, (gemm,)):
        out += _wideep_mla_queries(d, phase, b, q, kv, gemm, kv_dtype)
    return out


def _wideep_mla_queries(d, phase: str, b: float, q: float, kv: float, gemm: str,
                        kv_dtype: str) -> list[TableQuery]:
    """sglang's DP-attention MLA block (wideep_*_mla_perf: fp8_block GEMMs, fp8 KV only).

    Prefill may substitute the fp8 cache for a bf16 one (flagged): sglang prefills through
    the decompressed (MHA) path on bf16 K/V made from the new tokens' latents, so the cache
    dtype only changes the latent write (576 bytes per token, < 0.1 % of the block's time
    at 1k tokens). Decode reads the whole cache: no substitution.
    """
    kvs = (kv_dtype, "fp8") if phase == "context" else (kv_dtype,)
    out = []
    for kvt in dict.fromkeys(kvs):
        key = ("fp8_block", kvt, "fp8_block", int(d["num_heads"]))
        note = ", ".join(s for s in (_sub("gemm_dtype", gemm, "fp8_block"),
                                     _sub("kv_dtype", kv_dtype, kvt)) if s)
        if phase == "context":
            out.append(TableQuery("wideep_context_mla_perf", key, (b, q, kv - q),
                                  _seq_dims(d, phase), shrink=(0,), note=note, prefix_axis=2))
        else:
            out.append(TableQuery("wideep_generation_mla_perf", key, (b, kv),
                                  _seq_dims(d, phase), shrink=(0,), note=note))
    return out


# sglang's DeepEP deployment (--moe-a2a-backend deepep, --deepep-mode auto): batches with
# prefill use the normal kernels and contiguous DeepGEMM, decode-only batches the low-latency
# kernels and masked DeepGEMM. The low-latency buffer holds
# SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK tokens per rank (default 128; DeepEP's
# internode low-latency kernels cap it at 1024).
LL_DEFAULT_TOKENS_PER_RANK = 128
LL_MAX_TOKENS_PER_RANK = 1024


def deepep_moe_table(tokens_per_rank: float, phase: str | None) -> str:
    """Which sglang WideEP MoE table times an EP expert core of this batch.

    phase "context" (a batch with prefill): normal kernels; "generation": low-latency ones
    up to DeepEP's 1024 tokens per rank; unknown: low-latency only within the default
    buffer (128 tokens per rank), as a default deployment would run.
    """
    if phase == "context":
        return "wideep_context_moe_perf"
    limit = LL_MAX_TOKENS_PER_RANK if phase == "generation" else LL_DEFAULT_TOKENS_PER_RANK
    return "wideep_generation_moe_perf" if tokens_per_rank <= limit else "wideep_context_moe_perf"


_MOE_EXPERTS = 4  # index of num_experts in a MoE table key


def _equivalent_experts(table, want: tuple, experts: int) -> list[int]:
    """Expert counts measured for `want` (a MoE key) with every other field equal: the
    op's own first, then the nearest (then the larger) one, so EP sizes stay near the op's."""
    others = {int(e) for e in table.alternatives(want, _MOE_EXPERTS)} if table else set()
    others.discard(experts)
    return [experts] + sorted(others, key=lambda e: (abs(math.log(e / experts)), -e))


def moe_queries(op: Operator, cfg, tables=None) -> list[TableQuery]:
    """MoE expert core: table key (dtype, hidden, inter x tp, topk, experts, tp, distribution),
    axes (EP size, tokens into the EP group).

    sglang with EP reads the DeepEP tables first (wideep_*_moe_perf): cosim prices dispatch
    and combine as separate communication, and those tables time the expert core on the
    dispatched tokens; sglang's moe_perf EP rows time the Triton kernel with every token of
    the group on every rank and the remote pairs masked (~0.6 us per token at EP64, so the
    cost barely falls with EP), which is another deployment. moe_perf is the fallback.

    Redundant expert slots (EPLB: 288 slots for 256 experts) are not table keys. A GPU with
    E/ep experts and N*topk/ep token-expert pairs does the same expert work as the table's
    E' experts at ep' = ep*E'/E with N' = N*ep'/ep tokens (same experts per GPU, same pairs
    per GPU, same shapes); the op is looked up there (flag `substituted experts`).
    """
    d = op.dims
    if d.get("latent"):
        return []  # LatentMoE shapes are not in the tables
    dtype = str(d.get("dtype", "bfloat16"))
    if dtype == "fp4" and d.get("fp4_format") == "mxfp4":
        # MXFP4 experts (GPT-OSS): W4A16 with bfloat16 activations, W4A8 with fp8 ones
        dtype = "mxfp4_a8" if str(d.get("act_dtype")) == "fp8" else "mxfp4"
    tp, ep = int(d.get("tp", 1)), int(d.get("ep", 1))
    experts, tokens = int(d["num_experts"]), float(d["tokens"])
    hidden, inter, topk = int(d["hidden"]), int(d["inter"]) * tp, int(d["topk"])
    # An expert placement (cosim.experts) prices its hottest GPU: hot_experts experts and
    # hot_share of the pairs, looked up where a balanced row has that many experts and pairs
    # per GPU (ep' = E'/n, N' = N * share * ep'); the even split is hot = (E/ep, 1/ep).
    hot = (float(d["hot_experts"]), float(d["hot_share"])) if "hot_experts" in d else None
    dists = [cfg.moe_distribution] + (["balanced"] if cfg.moe_distribution != "balanced" else [])
    names = ["moe_perf"]
    if str(cfg.framework) == "sglang" and ep > 1 and tp == 1:
        names.insert(0, deepep_moe_table(tokens / ep, d.get("phase")))
    out = []
    for name in names:
        table = tables.table(name) if tables is not None else None
        for t in _MOE_DTYPES.get(dtype, (dtype,)):
            for dist in dists:
                want = (t, hidden, inter, topk, experts, tp, dist)
                for e in _equivalent_experts(table, want, experts):
                    if hot is None:
                        ep_eq = ep * e / experts
                        tok_eq = tokens * ep_eq / ep
                    else:  # the hottest GPU: n experts, tokens * topk * share pairs
                        ep_eq = e / hot[0]
                        tok_eq = tokens * hot[1] * ep_eq
                    notes = [_sub("dtype", dtype, t), _sub("distribution", cfg.moe_distribution,
                                                            dist)]
                    if e != experts:
                        notes.append(f"experts {experts}->{e} at ep {ep}->{ep_eq:g} "
                                     f"(same experts and pairs per GPU)")
                    elif hot is not None and abs(ep_eq - ep) > 1e-9 * ep:
                        notes.append(f"hottest GPU: {hot[0]:g} experts, {hot[1]:.4g} of the "
                                     f"pairs at ep {ep}->{ep_eq:.4g}")
                    out.append(TableQuery(
                        name, (t, hidden, inter, topk, e, tp, dist), (ep_eq, tok_eq),
                        lambda p, d=d, e=e: {**d, "num_experts": e, "ep": p[0], "tokens": p[1]},
                        shrink=(1,), note=", ".join(n for n in notes if n)))
    return out


QUERIES: dict[OpKind, Callable[..., list[TableQuery]]] = {
    OpKind.gemm: gemm_queries,
    OpKind.attention: attention_queries,
    OpKind.mla: mla_queries,
    OpKind.mla_module: module_queries,
    OpKind.dsa_module: module_queries,
    OpKind.moe: moe_queries,
}
