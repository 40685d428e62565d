"""Semantics of the MoE and MLA tables, pinned from the data (docs/compute.md, "MoE tables").

The checks are physical: a reading of a table is wrong if it implies more FLOP/s than the
GPU has, and neighbouring layouts cannot differ by much more than their work does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cosim.compute import ComputeModel, estimate
from cosim.compute.predictors import deepep_moe_table
from cosim.compute.roofline import work
from cosim.compute.tables import TableSet
from cosim.config.compute import ComputeConfig
from cosim.config.hardware import HardwareConfig
from cosim.config.model import ModelConfig
from cosim.model.forward import forward_operators
from cosim.model.layout import ParallelLayout
from cosim.model.operators import Operator, OpKind, Phase
from cosim.model.spec import ModelSpec
from cosim.paths import hydra_config_dir

CONFIGS = Path(hydra_config_dir())
FP8_PEAK = 1979e12  # H100 SXM dense FP8 (NVIDIA H100 datasheet)
PAIR_FLOPS = 2 * 3 * 7168 * 2048  # one DeepSeek-V3 token through one expert (gate, up, down)
DSV3 = dict(hidden=7168, inter=2048, num_experts=256, topk=8, tp=1, dtype="fp8_block")


def _load(group: str, name: str, schema):
    raw = OmegaConf.merge(OmegaConf.structured(schema),
                          OmegaConf.load(CONFIGS / group / f"{name}.yaml"))
    return OmegaConf.to_object(raw)


@pytest.fixture(scope="module")
def h100():
    hw = _load("hardware", "h100", HardwareConfig)
    return {fw: ComputeModel(hw, ComputeConfig(framework=fw)) for fw in ("trtllm", "sglang")}


def moe(**dims) -> Operator:
    d = {**DSV3, **dims}
    flops, nbytes = work(OpKind.moe, d)
    return Operator("moe.experts", OpKind.moe, d, flops, nbytes)


@pytest.mark.parametrize("framework,tables", [
    ("trtllm", ("moe_perf",)), ("vllm", ("moe_perf",)),
    ("sglang", ("moe_perf", "wideep_context_moe_perf", "wideep_generation_moe_perf"))])
def test_moe_num_tokens_is_the_global_count_into_the_ep_group(framework, tables):
    """Read as global tokens (tokens x topk / ep pairs per GPU) every balanced DeepSeek-V3
    row stays below the FP8 peak; read as tokens per rank, some rows exceed it."""
    ts = TableSet("h100_sxm", framework)
    for name in tables:
        f = ts.table(name).frame
        f = f[(f.hidden_size == 7168) & (f.inter_size == 2048) & (f.num_experts == 256)
              & (f.topk == 8) & (f.moe_tp_size == 1) & (f.moe_dtype == "fp8_block")
              & (f.distribution == "balanced")]
        assert len(f) > 50, name
        pairs_global = f.num_tokens * 8 / f.moe_ep_size
        frac_global = pairs_global * PAIR_FLOPS / f.latency_s / FP8_PEAK
        frac_per_rank = f.num_tokens * 8 * PAIR_FLOPS / f.latency_s / FP8_PEAK
        assert frac_global.max() < 0.8, name  # DeepGEMM's best grouped GEMMs reach ~0.75
        assert frac_per_rank.max() > 1.0, name  # impossible: not the table's meaning


def test_wideep_rows_are_read_with_uniform_as_balanced():
    f = TableSet("h100_sxm", "sglang").table("wideep_context_moe_perf").frame
    assert "uniform" not in set(f.distribution) and "balanced" in set(f.distribution)
    assert f.num_tokens.max() == 524288  # the V3 prefill point (EP32 x 16,384) is in the grid


@pytest.mark.parametrize("framework,low", [("sglang", 0.3), ("trtllm", 0.15)])
def test_wide_ep_prefill_moe_runs_at_a_plausible_fraction_of_peak(h100, framework, low):
    # V3: 32 GPUs x 16,384 tokens into EP32: 131,072 token-expert pairs per GPU, 11.5 TFLOP
    o = moe(ep=32, tokens=32 * 16384)
    lat = h100[framework].latency(o, "context")
    frac = o.flops / lat.latency_s / FP8_PEAK
    assert low < frac < 0.8, (lat, frac)
    if framework == "sglang":  # in the DeepEP table's grid
        assert lat.source == "measured" and lat.table == "wideep_context_moe_perf"
    else:  # beyond 16,384 tokens: the largest EP32 row scaled by the roofline (~FLOP) ratio
        assert lat.source == "roofline" and any("anchored at (32, 16384)" in f
                                                for f in lat.flags)


@pytest.mark.parametrize("framework", ["sglang", "trtllm"])
@pytest.mark.parametrize("per_rank,phase", [(256, "generation"), (16384, "context"),
                                            (64, "generation"), (2048, "context")])
def test_neighbouring_ep_sizes_cost_what_their_work_says(h100, framework, per_rank, phase):
    """Same tokens per rank, EP 8...256 (48, 72, 96 between swept sizes): the per-GPU
    work is the same, so neighbours may differ by efficiency, not by an order of
    magnitude (the 20x EP64 -> EP72 jump this replaced)."""
    eps = [8, 16, 24, 32, 40, 48, 64, 72, 96, 128, 192, 256]
    lat = [h100[framework].latency(moe(ep=ep, tokens=per_rank * ep), phase).latency_s
           for ep in eps]
    for a, b in zip(lat, lat[1:], strict=False):
        assert 0.5 < b / a < 2.0, (eps, lat)


def test_redundant_expert_slots_price_as_the_same_per_gpu_work(h100):
    # EPLB: 288 slots on 72 GPUs = 4 experts per GPU, the load of 256 experts on 64 GPUs
    for fw, model in h100.items():
        slots = model.latency(moe(num_experts=288, ep=72, tokens=72 * 256), "generation")
        same = model.latency(moe(ep=64, tokens=64 * 256), "generation")
        assert slots.latency_s == pytest.approx(same.latency_s, rel=1e-9), fw
        assert any("experts 288->256 at ep 72->64" in f for f in slots.flags)


def test_sglang_expert_kernels_follow_the_deepep_mode(h100):
    assert deepep_moe_table(256, "generation") == "wideep_generation_moe_perf"
    assert deepep_moe_table(64, "context") == "wideep_context_moe_perf"
    assert deepep_moe_table(2000, "generation") == "wideep_context_moe_perf"  # > DeepEP LL cap
    assert deepep_moe_table(128, None) == "wideep_generation_moe_perf"  # default LL buffer
    assert deepep_moe_table(256, None) == "wideep_context_moe_perf"
    sg = h100["sglang"]
    assert sg.latency(moe(ep=32, tokens=32 * 64), "generation").table \
        == "wideep_generation_moe_perf"
    assert sg.latency(moe(ep=32, tokens=32 * 64), "context").table == "wideep_context_moe_perf"
    # no EP (tokens are not dispatched): the Triton fused-MoE rows
    assert sg.latency(moe(ep=1, tokens=64), "generation").table == "moe_perf"


def test_default_distribution_is_balanced():
    assert ComputeConfig().moe_distribution == "balanced"


def _mla_core_context(batch: int, isl: int) -> Operator:
    d = dict(phase="context", batch=batch, q_len=isl, kv_len=isl, num_heads=128,
             kv_lora_rank=512, qk_rope_head_dim=64, qk_nope_head_dim=128, v_head_dim=128,
             kv_dtype="bfloat16")
    flops, nbytes = work(OpKind.mla, d)
    return Operator("attn.core", OpKind.mla, d, flops, nbytes)


def test_sglang_hopper_context_mla_rows_are_the_absorbed_kernel():
    """h100 sglang context_mla rows (FA3 lane) time MQA over the 576-wide latent: read as
    the decompressed prefill core they reach 0.17 of bf16 peak, trtllm's decompressed kernel
    0.52; so they do not price cosim's (decompressed) prefill core."""
    ts = {fw: TableSet("h100_sxm", fw).table("context_mla_perf") for fw in ("sglang", "trtllm")}
    key = ("bfloat16", "bfloat16", 128)
    assert ts["sglang"].lanes_of(key) == {"flash_attention"}
    t_sg = ts["sglang"].grid(key).lookup((4, 4096, 0))[0]
    t_trt = ts["trtllm"].grid(key).lookup((4, 4096, 0))[0]
    o = _mla_core_context(4, 4096)
    assert o.flops / t_sg / 989e12 < 0.25 < 0.4 < o.flops / t_trt / 989e12
    assert 0.4 < o.flops * (2 * (576 + 512)) / (2 * (192 + 128)) / t_sg / 989e12 < 0.8
    hw = _load("hardware", "h100", HardwareConfig)
    lat = ComputeModel(hw, ComputeConfig(framework="sglang")).latency(o)
    assert lat.table != "context_mla_perf"


def test_v3_prefill_attention_block_is_read_from_sglangs_dp_attention_table(h100):
    s = ModelSpec.from_config(_load("model", "deepseek_v3", ModelConfig))
    ops = forward_operators(s, Phase.context, 4, 4096, 4096, ParallelLayout(tp=1, dp=32, ep=32))
    est = estimate(ops, h100["sglang"])
    by = {o.name: o for o in est.ops}
    assert by["attn.mla"].table == "wideep_context_mla_perf"
    assert by["attn.mla"].source == "measured"
    assert by["moe.experts"].table == "wideep_context_moe_perf"
    # decode pass: the phase is read from the attention ops, the MoE takes the LL kernels
    dec = forward_operators(s, Phase.generation, 64, 2000, 1, ParallelLayout(tp=1, dp=32, ep=32))
    by = {o.name: o for o in estimate(dec, h100["sglang"]).ops}
    assert by["moe.experts"].table == "wideep_generation_moe_perf"
