"""Compute model: exact at measured points, monotone, never below the physical bound,
roofline-only hardware, out-of-grid labelling, user tables."""

from __future__ import annotations

import importlib.util
import math
import random
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cosim.compute import ComputeModel, estimate
from cosim.compute.roofline import work
from cosim.config.compute import ComputeConfig
from cosim.config.hardware import HardwareConfig
from cosim.config.model import ModelConfig
from cosim.errors import ConfigError
from cosim.model.forward import forward_operators
from cosim.model.layout import ParallelLayout
from cosim.model.operators import Operator, OpKind, Phase
from cosim.model.spec import ModelSpec
from cosim.paths import PROJECT_DIR, hydra_config_dir

CONFIGS = Path(hydra_config_dir())


def hardware(name: str) -> HardwareConfig:
    raw = OmegaConf.merge(OmegaConf.structured(HardwareConfig),
                          OmegaConf.load(CONFIGS / "hardware" / f"{name}.yaml"))
    return OmegaConf.to_object(raw)


def spec(name: str) -> ModelSpec:
    raw = OmegaConf.merge(OmegaConf.structured(ModelConfig),
                          OmegaConf.load(CONFIGS / "model" / f"{name}.yaml"))
    return ModelSpec.from_config(OmegaConf.to_object(raw))


@pytest.fixture(scope="module")
def b200() -> ComputeModel:
    return ComputeModel(hardware("b200"), ComputeConfig())


def op(name: str, kind: OpKind, dims: dict, count: int = 1, stage: str = "other") -> Operator:
    flops, nbytes = work(kind, dims)
    return Operator(name, kind, dims, flops, nbytes, count, stage)


def physical_floor(hw: HardwareConfig, o: Operator) -> float:
    """max(FLOPs / fastest peak, bytes / HBM bandwidth): a bound no kernel can beat."""
    peak = max(hw.peak_tflops.values()) * 1e12
    return max(o.flops / peak, o.bytes / (hw.hbm_tb_s * 1e12))


DSA_DIMS = dict(num_heads=16, kv_lora_rank=512, qk_rope_head_dim=64, qk_nope_head_dim=128,
                v_head_dim=128, kv_dtype="fp8", gemm_dtype="fp8_block", index_n_heads=64,
                index_head_dim=128, index_topk=2048)
MOE_DIMS = dict(hidden=7168, inter=2048, num_experts=256, topk=8, ep=8, tp=1, dtype="fp8_block")


def _measured_ops(model: ComputeModel):
    """(op, raw table latency) at a sample of grid points of the GEMM, MoE and DSA tables."""
    rng = random.Random(0)
    tables = model.tables
    out = []
    g = tables.table("gemm_perf").grid(("fp8_block",))
    for (m, n, k), raw, lowered in rng.sample(g.points(), 60):
        if not lowered:
            out.append((op("g", OpKind.gemm, dict(m=int(m), n=int(n), k=int(k),
                                                  dtype="fp8_block")), raw))
    g = tables.table("moe_perf").grid(("fp8_block", 7168, 2048, 8, 256, 1, "balanced"))
    for (ep, t), raw, lowered in g.points():
        if not lowered and ep in (8, 32):
            out.append((op("moe", OpKind.moe, dict(MOE_DIMS, ep=int(ep), tokens=int(t))), raw))
    g = tables.table("dsa_generation_module_perf").grid(("bfloat16", "fp8", "fp8_block", 16))
    for (b, kv), raw, lowered in rng.sample(g.points(), 40):
        if not lowered:
            out.append((op("dsa", OpKind.dsa_module, dict(DSA_DIMS, phase="generation",
                                                          batch=int(b), q_len=1, kv_len=int(kv))),
                        raw))
    return out


def test_measured_points_return_the_table_value_exactly(b200):
    cases = _measured_ops(b200)
    assert len(cases) > 50
    exact = 0
    for o, raw in cases:
        lat = b200.latency(o)
        if "floor" in lat.flags:  # the table point is below the physical bound
            assert lat.latency_s == pytest.approx(b200.roofline.op_floor(o), rel=1e-12)
            assert raw < lat.latency_s
            continue
        assert lat.source == "measured", (o.dims, lat)
        assert lat.latency_s == raw
        exact += 1
    assert exact > 50


def test_points_lowered_by_the_envelope_are_not_labelled_measured(b200):
    g = b200.tables.table("gemm_perf").grid(("fp8_block",))
    (m, n, k), raw, _ = next(p for p in g.points() if p[2])
    lat = b200.latency(op("g", OpKind.gemm, dict(m=int(m), n=int(n), k=int(k), dtype="fp8_block")))
    assert lat.source == "interpolated" and "envelope" in lat.flags
    assert lat.latency_s < raw


def _sweep(model, make, xs):
    return [model.latency(make(x)) for x in xs]


@pytest.mark.parametrize("tokens", [list(range(1, 300)) + list(range(300, 40000, 137))])
def test_interpolation_is_monotone_in_tokens(b200, tokens):
    # off-grid GEMM shape (DeepSeek fused q_a + kv_a: n 2112, k 7168), on- and off-grid m
    gemm = _sweep(b200, lambda m: op("g", OpKind.gemm, dict(m=m, n=2112, k=7168,
                                                             dtype="fp8_block")), tokens)
    moe = _sweep(b200, lambda t: op("moe", OpKind.moe, dict(MOE_DIMS, tokens=t)), tokens)
    for series in (gemm, moe):
        lat = [x.latency_s for x in series]
        assert all(b >= a for a, b in zip(lat, lat[1:], strict=False))
        assert {x.source for x in series} >= {"interpolated", "roofline"}
    assert any(x.source == "measured" for x in moe)


def test_decode_attention_is_monotone_in_kv_length_and_batch(b200):
    def gqa(b, kv):
        return op("a", OpKind.attention, dict(phase="generation", batch=b, q_len=1, kv_len=kv,
                                              num_heads=8, num_kv_heads=1, head_dim=128, window=0,
                                              kv_dtype="bfloat16"))

    kvs = [int(1.37 ** i) + 1 for i in range(10, 38)]
    for b in (1, 3, 64, 700):
        lat = [b200.latency(gqa(b, kv)).latency_s for kv in kvs]
        assert all(y >= x for x, y in zip(lat, lat[1:], strict=False))
    lat = [b200.latency(gqa(b, 5000)).latency_s for b in range(1, 300, 7)]
    assert all(y >= x for x, y in zip(lat, lat[1:], strict=False))


MODELS = ["deepseek_v3", "deepseek_v32", "qwen3_235b", "gpt_oss_120b", "kimi_k2",
          "llama31_70b", "nemotron3_super_120b"]


@pytest.mark.parametrize("hw_name,framework", [("b200", "trtllm"), ("h200", "sglang"),
                                                ("gb200", "vllm"), ("hypothetical_example",
                                                                    "trtllm")])
def test_no_latency_below_the_physical_bound(hw_name, framework):
    hw = hardware(hw_name)
    model = ComputeModel(hw, ComputeConfig(framework=framework))
    for name in MODELS:
        s = spec(name)
        for phase, batch, ctx, chunk, layout in [
            (Phase.generation, 1, 512, 1, ParallelLayout(tp=1, dp=8, ep=8)),
            (Phase.generation, 256, 8192, 1, ParallelLayout(tp=4, dp=2, ep=8)),
            (Phase.context, 2, 16384, 4096, ParallelLayout(tp=8, dp=1, ep=8)),
        ]:
            for o in forward_operators(s, phase, batch, ctx, chunk, layout):
                if o.kind == OpKind.comm:
                    continue
                lat = model.latency(o)
                assert lat.latency_s >= physical_floor(hw, o) * (1 - 1e-12), (name, o.name, lat)
                assert lat.source in ("measured", "interpolated", "roofline")


def test_roofline_only_hardware_prices_every_operator():
    hw = hardware("hypothetical_example")
    assert hw.tables is None
    model = ComputeModel(hw, ComputeConfig())
    ops = forward_operators(spec("deepseek_v32"), Phase.generation, 32, 4096, 1,
                            ParallelLayout(tp=1, dp=8, ep=8))
    est = estimate(ops, model)
    assert est.total_s > 0 and math.isfinite(est.total_s)
    assert {o.source for o in est.ops} == {"roofline"}
    assert est.by_source["roofline"] == pytest.approx(est.total_s)
    # use_tables=false does the same on a GPU that has tables
    off = ComputeModel(hardware("b200"), ComputeConfig(use_tables=False))
    assert {o.source for o in estimate(ops, off).ops} == {"roofline"}


def test_wrong_framework_fails_naming_compute_framework():
    with pytest.raises(ConfigError) as err:
        ComputeModel(hardware("b200"), ComputeConfig(framework="tensorrt_llm"))
    assert err.value.field == "compute.framework"


def test_outside_the_grid_is_anchored_and_labelled_roofline(b200):
    big = b200.latency(op("moe", OpKind.moe, dict(MOE_DIMS, tokens=40000)))
    edge = b200.latency(op("moe", OpKind.moe, dict(MOE_DIMS, tokens=16384)))
    assert big.source == "roofline" and any("anchored" in f for f in big.flags)
    # compute-bound here: the roofline ratio scales the measured edge almost linearly
    assert 2.0 < big.latency_s / edge.latency_s < 40000 / 16384 * 1.01


def test_prefill_chunk_behind_a_prefix_is_a_difference_of_prefills(b200):
    def dsa(b, q, kv):
        return b200.latency(op("dsa", OpKind.dsa_module, dict(DSA_DIMS, phase="context", batch=b,
                                                              q_len=q, kv_len=kv)))

    chunk = dsa(1, 2048, 8192)
    assert chunk.source == "interpolated" and "prefix by difference" in chunk.flags
    full, head = dsa(1, 8192, 8192), dsa(1, 6144, 6144)
    assert chunk.latency_s == pytest.approx(full.latency_s - head.latency_s)
    assert chunk.latency_s >= dsa(1, 2048, 2048).latency_s


def test_estimate_totals_by_source_and_stage(b200):
    ops = forward_operators(spec("deepseek_v32"), Phase.generation, 64, 4096, 1,
                            ParallelLayout(tp=1, dp=8, ep=8))
    est = estimate(ops, b200)
    assert est.total_s == pytest.approx(sum(o.total_s for o in est.ops))
    assert sum(est.by_source.values()) == pytest.approx(est.total_s)
    assert sum(est.by_stage.values()) == pytest.approx(est.total_s)
    assert set(est.excluded) == {"moe.dispatch", "moe.combine"}
    main = {o.name: o.source for o in est.ops}
    assert main["attn.dsa"] in ("measured", "interpolated")
    assert main["moe.experts"] in ("measured", "interpolated")


def _profile_script():
    path = PROJECT_DIR / "scripts" / "profile_kernels.py"
    mod_spec = importlib.util.spec_from_file_location("profile_kernels", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return mod


def test_user_tables_from_the_profile_script_are_read_like_shipped_ones(tmp_path):
    prof = _profile_script()
    meta = {"framework": "torch", "version": "2.x", "device": "My GPU", "op_name": "gemm",
            "kernel_source": "torch_matmul"}
    rows = [{**meta, "gemm_dtype": "bfloat16", "m": m, "n": n, "k": k,
             "latency": 0.01 * m ** 0.5 * (n * k / 4096 ** 2)}
            for m in (1, 16, 256, 4096) for n in (4096, 8192) for k in (4096, 8192)]
    # the largest m of the shipped grid (no larger shape can lower it through the envelope)
    rows.append({**meta, "gemm_dtype": "bfloat16", "m": 32768, "n": 8192, "k": 8192,
                 "latency": 3.0})
    prof.write_table(rows, tmp_path, "gemm_perf", prof.GEMM_COLUMNS)
    hw = hardware("hypothetical_example")
    model = ComputeModel(hw, ComputeConfig(table_dir=str(tmp_path)))
    at = model.latency(op("g", OpKind.gemm, dict(m=256, n=8192, k=4096, dtype="bfloat16")))
    assert at.source == "measured" and at.latency_s == pytest.approx(0.01 * 16 * 2 * 1e-3)
    between = model.latency(op("g", OpKind.gemm, dict(m=100, n=6000, k=4096, dtype="bfloat16")))
    assert between.source == "interpolated"
    # user rows win over the shipped table on the same key; other keys still come from it
    shipped = ComputeModel(hardware("b200"), ComputeConfig(table_dir=str(tmp_path)))
    g = op("g", OpKind.gemm, dict(m=32768, n=8192, k=8192, dtype="bfloat16"))
    assert shipped.latency(g).latency_s == 3.0e-3
    fp8 = shipped.latency(op("g", OpKind.gemm, dict(m=32768, n=8192, k=8192, dtype="fp8")))
    assert fp8.source == "measured" and fp8.latency_s < 2.0e-3
