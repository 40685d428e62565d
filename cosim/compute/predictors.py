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


def gemm_queries(op: Operator, cfg) -> list[TableQuery]:
    d = op.dims
    dtype = str(d.get("dtype", "bfloat16"))
    if d.get("bmm") in _BMM_SHAPES:
        return bmm_queries(op, cfg)
    if float(d.get("batch", 1) or 1) != 1:
        return []  # other batched GEMMs (DSA indexer logits) have no table: roofline
    m, n, k = float(d["m"]), float(d["n"]), float(d["k"])

    def at(p):
        return {**d, "m": p[0], "n": p[1], "k": p[2]}

    return [TableQuery("gemm_perf", (t,), (m, n, k), at, shrink=(1, 2, 0),
                       note=_sub("dtype", dtype, t))
            for t in _GEMM_DTYPES.get(dtype, (dtype,))]


def bmm_queries(op: Operator, cfg) -> list[TableQuery]:
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


def attention_queries(op: Operator, cfg) -> list[TableQuery]:
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


def mla_queries(op: Operator, cfg) -> list[TableQuery]:
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
                                  shrink=(0,), note=note, prefix_axis=2))
        else:
            out.append(TableQuery("generation_mla_perf", key, (b, kv), _seq_dims(d, phase),
                                  shrink=(0,), note=note))
    return out


def module_queries(op: Operator, cfg) -> list[TableQuery]:
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
    return out


def moe_queries(op: Operator, cfg) -> list[TableQuery]:
    d = op.dims
    if d.get("latent"):
        return []  # LatentMoE shapes are not in the tables
    dtype = str(d.get("dtype", "bfloat16"))
    if dtype == "fp4" and d.get("fp4_format") == "mxfp4":
        # MXFP4 experts (GPT-OSS): W4A16 with bfloat16 activations, W4A8 with fp8 ones
        dtype = "mxfp4_a8" if str(d.get("act_dtype")) == "fp8" else "mxfp4"
    tp, ep = int(d.get("tp", 1)), int(d.get("ep", 1))
    shape = (int(d["hidden"]), int(d["inter"]) * tp, int(d["topk"]), int(d["num_experts"]), tp, ep)
    dists = [cfg.moe_distribution] + (["balanced"] if cfg.moe_distribution != "balanced" else [])
    out = []
    for t in _MOE_DTYPES.get(dtype, (dtype,)):
        for dist in dists:
            note = ", ".join(s for s in (_sub("dtype", dtype, t),
                                         _sub("distribution", cfg.moe_distribution, dist)) if s)
            out.append(TableQuery("moe_perf", (t, *shape, dist), (float(d["tokens"]),),
                                  lambda p, d=d: {**d, "tokens": p[0]}, note=note))
    return out


QUERIES: dict[OpKind, Callable[[Operator, Any], list[TableQuery]]] = {
    OpKind.gemm: gemm_queries,
    OpKind.attention: attention_queries,
    OpKind.mla: mla_queries,
    OpKind.mla_module: module_queries,
    OpKind.dsa_module: module_queries,
    OpKind.moe: moe_queries,
}
