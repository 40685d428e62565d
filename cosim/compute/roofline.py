"""Roofline: operator time from FLOPs, HBM bytes and the GPU's peaks.

    t_roof  = max(F / (P_dtype * e_c), B / (BW * e_m)) + t_launch      (off-table estimate)
    t_floor = max(F / P_dtype, B / BW)                                  (physical bound)

P_dtype is the dense tensor-core peak of the operator's compute dtype (fp8_block counts as
fp8; fp4 falls back to fp8, then bfloat16, on GPUs without FP4 tensor cores), BW the HBM
bandwidth, e_c / e_m the efficiencies of cosim/config/compute.py. No table latency is
returned below t_floor.

`work(kind, dims)` recomputes FLOPs and bytes of an operator from its shape alone. It is
used to scale a measured point to a nearby shape outside the grid (the ratio
t_roof(query) / t_roof(anchor)), so that only the *shape dependence* of the roofline, not its
absolute level, enters a table-anchored estimate.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cosim.config.compute import ComputeConfig
from cosim.config.hardware import HardwareConfig
from cosim.model.operators import Operator, OpKind

_DTYPE_BYTES = {"bfloat16": 2.0, "bf16": 2.0, "float16": 2.0, "fp8": 1.0, "fp8_block": 1.0,
                "fp4": 0.5625, "nvfp4": 0.5625, "mxfp4": 0.53125}
_PEAK_KEY = {"bfloat16": "bfloat16", "bf16": "bfloat16", "float16": "bfloat16",
             "fp8": "fp8", "fp8_block": "fp8", "fp4": "fp4", "nvfp4": "fp4", "mxfp4": "fp4"}


def dtype_bytes(dtype: str | None, default: float = 2.0) -> float:
    """Storage bytes per element of a table/operator dtype name (block scales included)."""
    return _DTYPE_BYTES.get(str(dtype), default) if dtype is not None else default


class Roofline:
    """One GPU's roofline under a ComputeConfig's efficiencies."""

    def __init__(self, hardware: HardwareConfig, compute: ComputeConfig):
        self.peaks = {k: float(v) * 1e12 for k, v in hardware.peak_tflops.items()}
        self.bw = float(hardware.hbm_tb_s) * 1e12
        self.cfg = compute
        self.launch_s = compute.launch_latency_us * 1e-6

    def peak(self, dtype: str | None) -> float:
        """Dense tensor-core FLOP/s for `dtype` (falling back to wider formats)."""
        key = _PEAK_KEY.get(str(dtype), "bfloat16")
        for k in {"fp4": ("fp4", "fp8", "bfloat16"), "fp8": ("fp8", "bfloat16"),
                  "bfloat16": ("bfloat16", "fp8", "fp4")}[key]:
            if k in self.peaks:
                return self.peaks[k]
        return max(self.peaks.values())

    def compute_efficiency(self, kind: OpKind, dtype: str | None) -> float:
        if kind == OpKind.gemm:
            key = _PEAK_KEY.get(str(dtype), "bfloat16")
            eff = self.cfg.gemm_efficiency
            return eff.get(key) or eff.get("bfloat16") or min(eff.values(), default=0.5)
        if kind == OpKind.moe:
            return self.cfg.moe_efficiency
        return self.cfg.attention_efficiency

    def time(self, kind: OpKind, flops: float, nbytes: float, dtype: str | None) -> float:
        """Roofline estimate with efficiencies and launch latency (seconds)."""
        tc = flops / (self.peak(dtype) * self.compute_efficiency(kind, dtype)) if flops else 0.0
        tm = nbytes / (self.bw * self.cfg.memory_efficiency) if nbytes else 0.0
        return max(tc, tm) + self.launch_s

    def floor(self, flops: float, nbytes: float, dtype: str | None) -> float:
        """Physical lower bound: FLOPs at peak, bytes at full HBM bandwidth (seconds)."""
        return max(flops / self.peak(dtype) if flops else 0.0, nbytes / self.bw if nbytes else 0.0)

    def op_time(self, op: Operator) -> float:
        """Roofline time of an operator from its own FLOPs and bytes."""
        if op.parts:
            return sum(self.op_time(p) for p in op.parts)
        return self.time(op.kind, op.flops, op.bytes, op_dtype(op))

    def op_floor(self, op: Operator) -> float:
        """Physical bound of an operator (for a module: its own totals at the fastest
        compute dtype among its parts, a valid lower bound for the whole block)."""
        dtype = op_dtype(op)
        if op.parts:
            dtypes = [op_dtype(p) for p in op.parts]
            dtype = max(dtypes, key=self.peak, default=dtype)
        return self.floor(op.flops, op.bytes, dtype)

    def shape_time(self, kind: OpKind, dims: Mapping[str, Any], parts: list[Operator] = ()) -> float:
        """Roofline time recomputed from a shape (see module docstring)."""
        if parts:
            return sum(self.shape_time(p.kind, p.dims) if _has_work(p)
                       else self.time(p.kind, p.flops, p.bytes, op_dtype(p)) for p in parts)
        flops, nbytes = work(kind, dims)
        return self.time(kind, flops, nbytes, dims.get("dtype") or dims.get("gemm_dtype"))


def op_dtype(op: Operator) -> str | None:
    d = op.dims
    return d.get("dtype") or d.get("gemm_dtype") or d.get("compute_dtype")


def _has_work(op: Operator) -> bool:
    return op.kind in (OpKind.gemm, OpKind.attention, OpKind.mla, OpKind.moe)


# ------------------------------------------------------------------------------------------
# FLOPs and bytes from a shape


def causal_pairs(q_len: float, kv_len: float, window: float = 0, topk: float = 0) -> float:
    """(query, key) pairs one request attends: q_len new tokens at the end of kv_len,
    causal, limited to `window` keys (0 = unlimited) and to `topk` keys (sparse attention)."""
    q = min(q_len, kv_len)
    prefix = kv_len - q
    limit = min(x for x in (window, topk, float("inf")) if x)  # smallest non-zero cap
    if limit == float("inf"):
        return q * prefix + q * (q + 1) / 2
    # query i (0-based) sees min(prefix + i + 1, limit) keys
    full = max(0.0, min(q, limit - prefix))  # queries below the cap
    if full <= 0:
        return q * limit
    seen = full * prefix + full * (full + 1) / 2
    return seen + (q - full) * limit


def work(kind: OpKind, dims: Mapping[str, Any]) -> tuple[float, float]:
    """(FLOPs, HBM bytes) of one invocation of an operator of `kind` with shape `dims`."""
    g = dims.get
    if kind == OpKind.gemm:
        m, n, k = float(g("m")), float(g("n")), float(g("k"))
        batch = float(g("batch", 1) or 1)  # batched GEMM (MLA absorption BMMs, DSA logits)
        wb = dtype_bytes(g("dtype"))
        flops = 2 * batch * m * n * k * (0.5 if g("causal") else 1.0)
        return flops, batch * (n * k * wb + m * k * wb + m * n * 2.0)
    if kind in (OpKind.attention, OpKind.mla, OpKind.mla_module, OpKind.dsa_module):
        b = float(g("batch", 1))
        q = float(g("q_len", 1))
        kv = float(g("kv_len", q))
        h = float(g("num_heads", 1))
        kvb = dtype_bytes(g("kv_dtype"))
        topk = float(g("index_topk", 0) or g("sparse_topk", 0) or 0)
        pairs = b * causal_pairs(q, kv, float(g("window", 0) or 0), topk)
        if kind == OpKind.attention:
            hd = float(g("head_dim", 128))
            kvh = float(g("num_kv_heads", h))
            seen = min(kv, float(g("window") or kv))
            flops = 4 * h * hd * pairs
            nbytes = b * (seen * kvh * 2 * hd * kvb + 2 * q * h * hd * 2.0)
            return flops, nbytes
        lora = float(g("kv_lora_rank", 512))
        rope = float(g("qk_rope_head_dim", 64))
        nope = float(g("qk_nope_head_dim", 128))
        vd = float(g("v_head_dim", 128))
        seen = min(kv, topk * q) if topk else kv
        absorbed = g("absorbed")
        if absorbed is None:
            absorbed = bool(topk) or str(g("phase", "generation")) == "generation"
        if absorbed:
            # scores over the 576-wide latent, values in the 512-wide latent
            flops = 2 * h * (lora + rope + lora) * pairs
            nbytes = b * (seen * (lora + rope) * kvb + 2 * q * h * (lora + rope) * 2.0)
        else:  # prefill: K_nope and V decompressed for every key
            flops = 2 * h * (nope + rope + vd) * pairs
            nbytes = b * (kv * (lora + rope) * kvb + kv * h * (nope + rope + vd) * 2.0
                          + 2 * q * h * (nope + rope) * 2.0)
        if kind == OpKind.dsa_module and topk:  # indexer: FP8 MQA logits over cached keys
            ih = float(g("index_n_heads", 64))
            ihd = float(g("index_head_dim", 128))
            flops += 2 * ih * ihd * b * causal_pairs(q, kv)
            nbytes += b * kv * ihd * 1.0
        return flops, nbytes
    if kind == OpKind.moe:
        t = float(g("tokens"))
        hidden = float(g("hidden"))
        inter = float(g("inter"))  # per TP shard
        e = float(g("num_experts"))
        ep = float(g("ep", 1))
        topk = float(g("topk"))
        wb = dtype_bytes(g("dtype"))
        local_pairs = t * topk / ep  # balanced routing
        local_experts = e / ep
        gated = 3.0 if g("gated", True) else 2.0
        width = float(g("latent") or hidden)
        flops = 2 * gated * local_pairs * width * inter
        active = min(local_experts, local_pairs)
        if g("active_experts") is not None:  # compute.moe_weights=touched (ComputeModel)
            active = min(active, float(g("active_experts")))
        nbytes = active * gated * width * inter * wb + local_pairs * width * (wb + 2.0) * 2
        return flops, nbytes
    return float(g("flops", 0.0)), float(g("bytes", 0.0))
