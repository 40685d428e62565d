#!/usr/bin/env python3
"""Measure GEMM and attention latencies on your own GPU and write cosim-readable tables.

    python scripts/profile_kernels.py --out my_gpu_tables            # full grid (~1 h)
    python scripts/profile_kernels.py --out my_gpu_tables --quick    # coarse grid (minutes)
    cosim-estimate hardware=my_gpu compute.table_dir=my_gpu_tables ...

Needs PyTorch with CUDA (and pandas + pyarrow to write Parquet); cosim itself need not be
installed on the GPU machine. The output folder holds Parquet files in the schema of the
aiconfigurator-core tables (docs/compute.md, "Your own tables"):

- gemm_perf.parquet: gemm_dtype, m, n, k, latency (ms) - C[m, n] = A[m, k] @ W[k, n];
  bfloat16 via torch.matmul, fp8 (per-tensor scaled, e4m3) via torch._scaled_mm on GPUs
  with FP8 tensor cores (sm_89+).
- context_attention_perf.parquet: batch_size, isl, num_heads, num_key_value_heads,
  head_dim, window_size (0), beam_width (1), attn_dtype, kv_cache_dtype, step (0 = no
  prefix), latency (ms) - causal prefill of isl tokens per request.
- generation_attention_perf.parquet: same columns, isl = 1 and step = KV length - 1 (one
  new token against `step` cached ones; cosim keys on kv_len = step + isl).

Each latency is the mean over `--iters` back-to-back calls after `--warmup` calls, timed
with CUDA events: one kernel invocation, one layer, one GPU, milliseconds, as in the shipped
tables. Attention uses torch.nn.functional.scaled_dot_product_attention (FlashAttention or
cuDNN backend, whichever PyTorch picks), i.e. the attention core without projections.
MoE, MLA and DSA tables are not produced here; cosim falls back to the shipped tables of
`hardware.tables` (if set) and then to the roofline for them.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

# The aiconfigurator-core grids (KERNEL_TABLES.md §3.1-3.2); --quick thins them.
GEMM_M = [1, 2, 4, 8, 16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 384, 512, 768,
          1024, 1536, 2048, 3072, 4096, 6144, 8192, 16384, 32768]
GEMM_NK = [128, 256, 512, 768, 1024, 1536, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168,
           8192, 10240, 12288, 16384]
ATTN_HEADS = [(8, 1), (8, 8), (16, 2), (16, 16), (32, 4), (32, 8), (64, 8)]  # (q, kv) per GPU
ATTN_HEAD_DIM = [64, 128]
CTX_BATCH = [1, 2, 4, 8, 16, 32, 64, 128, 256]
CTX_ISL = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
GEN_BATCH = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
GEN_KV = [2 ** k for k in range(4, 18)]  # 16 ... 131072
MAX_CTX_TOKENS = 131072  # batch * isl cap of the shipped context sweep
MAX_GEN_KV_TOKENS = 4 * 1024 * 1024  # batch * kv cap (memory)

COMMON = ("framework", "version", "device", "op_name", "kernel_source")
GEMM_COLUMNS = COMMON + ("gemm_dtype", "m", "n", "k", "latency")
ATTN_COLUMNS = COMMON + ("batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim",
                         "window_size", "beam_width", "attn_dtype", "kv_cache_dtype", "step",
                         "latency")


def thin(values: list[int], keep_every: int) -> list[int]:
    """Every `keep_every`-th value, always keeping the first and last."""
    out = values[::keep_every]
    return out if out[-1] == values[-1] else out + [values[-1]]


def time_ms(fn: Callable[[], object], warmup: int, iters: int) -> float:
    """Mean milliseconds of one call of `fn` (CUDA events around `iters` calls)."""
    import torch

    for _ in range(warmup):
        fn()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(iters):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / iters


def gemm_rows(dtypes: Iterable[str], ms: list[int], nks: list[int], warmup: int, iters: int,
              meta: dict) -> list[dict]:
    import torch

    dev = torch.device("cuda")
    rows = []
    for dtype in dtypes:
        if dtype == "fp8" and not hasattr(torch, "_scaled_mm"):
            print("skipping fp8: this PyTorch has no torch._scaled_mm", file=sys.stderr)
            continue
        for n, k in itertools.product(nks, nks):
            w = torch.randn(n, k, device=dev, dtype=torch.bfloat16)  # stored [n, k]
            if dtype == "fp8":
                w8 = w.to(torch.float8_e4m3fn)
                one = torch.ones((), device=dev, dtype=torch.float32)
            for m in ms:
                a = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
                if dtype == "bfloat16":
                    wt = w.t()

                    def fn(a=a, wt=wt):
                        return torch.matmul(a, wt)

                    source = "torch_matmul"
                else:
                    # _scaled_mm needs m padded to 16 and a column-major second operand
                    mp = max(16, math.ceil(m / 16) * 16)
                    a8 = torch.zeros(mp, k, device=dev, dtype=torch.float8_e4m3fn)
                    a8[:m] = a.to(torch.float8_e4m3fn)

                    def fn(a8=a8, w8=w8, one=one):
                        return torch._scaled_mm(a8, w8.t(), scale_a=one, scale_b=one,
                                                out_dtype=torch.bfloat16)

                    source = "torch_scaled_mm"
                try:
                    lat = time_ms(fn, warmup, iters)
                except RuntimeError as err:  # shape unsupported by the kernel
                    print(f"gemm {dtype} {m}x{n}x{k}: {err}", file=sys.stderr)
                    continue
                rows.append({**meta, "op_name": "gemm", "kernel_source": source,
                             "gemm_dtype": dtype, "m": m, "n": n, "k": k, "latency": lat})
            del w
        torch.cuda.empty_cache()
    return rows


def attention_rows(phase: str, heads: list[tuple[int, int]], head_dims: list[int],
                   batches: list[int], lengths: list[int], warmup: int, iters: int,
                   meta: dict) -> list[dict]:
    import torch
    import torch.nn.functional as F

    dev = torch.device("cuda")
    rows = []
    for (h, kvh), hd, b, s in itertools.product(heads, head_dims, batches, lengths):
        if phase == "context" and b * s > MAX_CTX_TOKENS:
            continue
        if phase == "generation" and b * s > MAX_GEN_KV_TOKENS:
            continue
        q_len = s if phase == "context" else 1
        try:
            q = torch.randn(b, h, q_len, hd, device=dev, dtype=torch.bfloat16)
            k = torch.randn(b, kvh, s, hd, device=dev, dtype=torch.bfloat16)
            v = torch.randn_like(k)
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            continue
        causal = phase == "context"

        def fn(q=q, k=k, v=v, causal=causal, gqa=h != kvh):
            return F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=gqa)

        try:
            lat = time_ms(fn, warmup, iters)
        except RuntimeError as err:
            print(f"{phase} attention b={b} s={s} h={h}/{kvh} hd={hd}: {err}", file=sys.stderr)
            continue
        finally:
            del q, k, v
        rows.append({**meta, "op_name": f"{phase}_attention", "kernel_source": "torch_sdpa",
                     "batch_size": b, "isl": s if causal else 1, "num_heads": h,
                     "num_key_value_heads": kvh, "head_dim": hd, "window_size": 0,
                     "beam_width": 1, "attn_dtype": "bfloat16", "kv_cache_dtype": "bfloat16",
                     "step": 0 if causal else s - 1, "latency": lat})
    return rows


def write_table(rows: list[dict], out_dir: str | Path, name: str, columns: Iterable[str]) -> Path:
    """Write rows as <out_dir>/<name>.parquet with the given columns (in that order)."""
    import pandas as pd

    columns = list(columns)
    frame = pd.DataFrame(rows)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name}: rows lack column(s) {', '.join(missing)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.parquet"
    frame[columns].to_parquet(path, index=False)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="output folder (compute.table_dir)")
    p.add_argument("--ops", default="gemm,attention", help="gemm and/or attention")
    p.add_argument("--dtypes", default="bfloat16,fp8", help="GEMM dtypes: bfloat16, fp8")
    p.add_argument("--quick", action="store_true", help="coarse grids (every 3rd value)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--framework", default="torch", help="label written to the framework column")
    args = p.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("profile_kernels.py needs a CUDA GPU", file=sys.stderr)
        return 1
    meta = {"framework": args.framework, "version": torch.__version__,
            "device": torch.cuda.get_device_name()}
    step = 3 if args.quick else 1
    ops = {o.strip() for o in args.ops.split(",") if o.strip()}
    if "gemm" in ops:
        rows = gemm_rows([d.strip() for d in args.dtypes.split(",")], thin(GEMM_M, step),
                         thin(GEMM_NK, step), args.warmup, args.iters, meta)
        print(write_table(rows, args.out, "gemm_perf", GEMM_COLUMNS))
    if "attention" in ops:
        for phase, batches, lengths in (("context", CTX_BATCH, CTX_ISL),
                                        ("generation", GEN_BATCH, GEN_KV)):
            rows = attention_rows(phase, ATTN_HEADS, ATTN_HEAD_DIM, thin(batches, step),
                                  thin(lengths, step), args.warmup, args.iters, meta)
            print(write_table(rows, args.out, f"{phase}_attention_perf", ATTN_COLUMNS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
