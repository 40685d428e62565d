"""Operators of a forward pass: FLOPs against the active parameters, per-GPU shapes, counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cosim.config.model import ModelConfig
from cosim.errors import ConfigError
from cosim.model.forward import attended_pairs, forward_operators, total_bytes, total_flops
from cosim.model.layout import ParallelLayout
from cosim.model.operators import OpKind, Phase
from cosim.model.params import active_weight_bytes
from cosim.model.spec import ModelSpec
from cosim.paths import hydra_config_dir

MODEL_DIR = Path(hydra_config_dir()) / "model"
MODELS = sorted(p.stem for p in MODEL_DIR.glob("*.yaml"))


def load(name: str) -> ModelSpec:
    raw = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(MODEL_DIR / f"{name}.yaml"))
    return ModelSpec.from_config(OmegaConf.to_object(raw))


def flat(ops):
    """(op, count) for every leaf operator (module parts expanded)."""
    for o in ops:
        if o.parts:
            for p in o.parts:
                yield p, o.count
        else:
            yield o, o.count


def weight_matmul_flops(ops) -> float:
    """FLOPs of the ops that multiply by weights (GEMMs and experts; not attention scores)."""
    return sum(o.flops * c for o, c in flat(ops)
               if o.kind in (OpKind.gemm, OpKind.moe) and o.name != "attn.indexer.logits")


def by_name(ops):
    return {o.name: o for o in ops}


@pytest.mark.parametrize("name", MODELS)
def test_decode_flops_match_active_params(name):
    """A decode step multiplies every active weight once per token: 2 * active * batch.

    Tolerance 0.5 %: norms, biases, sinks and Mamba conv/SSM vectors are parameters that are not
    GEMM weights. Attention scores come on top and are positive.
    """
    s = load(name)
    batch = 16
    ops = forward_operators(s, Phase.generation, batch, 4096)
    assert weight_matmul_flops(ops) == pytest.approx(2 * s.active_params * batch, rel=0.005)
    assert total_flops(ops) > weight_matmul_flops(ops)


@pytest.mark.parametrize("name", ["deepseek_v3", "deepseek_v32", "qwen3_235b", "llama31_70b"])
def test_prefill_flops_match_active_params(name):
    """Prefill of whole prompts: every token through every active weight, the LM head once per request."""
    s = load(name)
    batch, ctx = 2, 2048
    head = s.vocab_size * s.hidden_size
    ops = forward_operators(s, Phase.context, batch, ctx)
    expected = 2 * (s.active_params - head) * batch * ctx + 2 * head * batch
    assert weight_matmul_flops(ops) == pytest.approx(expected, rel=0.005)


def test_decode_reads_at_least_the_active_weights():
    for name in ("deepseek_v3", "gpt_oss_120b", "llama31_70b"):
        s = load(name)
        ops = forward_operators(s, "generation", 1, 1024)
        assert total_bytes(ops) >= 0.99 * active_weight_bytes(s)


def test_deepseek_counts_stages_and_module_parts():
    s = load("deepseek_v3")
    ops = by_name(forward_operators(s, "generation", 8, 4096))
    assert ops["attn.mla"].kind == OpKind.mla_module and ops["attn.mla"].count == 61
    assert ops["moe.experts"].count == 58 and ops["mlp.gate_up"].count == 3
    assert ops["ffn.norm"].count == 61 and ops["lm_head"].count == 1
    assert ops["attn.mla"].stage == "attention" and ops["moe.experts"].stage == "ffn"
    assert ops["lm_head"].stage == "other" and ops["moe.router"].stage == "attention"
    mla = ops["attn.mla"]
    assert mla.flops == pytest.approx(sum(p.flops for p in mla.parts))
    parts = {p.name for p in mla.parts}
    # decode absorbs W_UK / W_UV into per-head BMMs around the latent attention
    assert {"attn.uk_bmm", "attn.uv_bmm", "attn.core", "attn.q_b_proj", "attn.o_proj"} <= parts
    assert "attn.kv_b_proj" not in parts
    assert mla.dims["model"] == "deepseek-ai/DeepSeek-V3"
    prefill = by_name(forward_operators(s, "context", 1, 4096, 1024))
    assert "attn.kv_b_proj" in {p.name for p in prefill["attn.mla"].parts}
    # without absorption, K/V of every key (cached prefix too) are decompressed
    kv_b = next(p for p in prefill["attn.mla"].parts if p.name == "attn.kv_b_proj")
    assert kv_b.dims["m"] == 4096


def test_dsa_module_has_indexer_and_sparse_core():
    s = load("deepseek_v32")
    def core(ctx):
        mod = by_name(forward_operators(s, "generation", 4, ctx))["attn.dsa"]
        assert mod.kind == OpKind.dsa_module
        assert mod.dims["index_topk"] == 2048 and mod.dims["index_n_heads"] == 64
        return {p.name: p for p in mod.parts}
    short, long = core(8192), core(65536)
    # sparse attention reads at most index_topk keys: flat in context; the indexer is not
    assert short["attn.core"].flops == long["attn.core"].flops
    assert long["attn.indexer.logits"].flops == pytest.approx(8 * short["attn.indexer.logits"].flops,
                                                             rel=1e-3)


def test_tp_and_ep_split_shapes():
    s = load("deepseek_v3")
    ops = forward_operators(s, "generation", 32, 2048, layout=ParallelLayout(tp=8, dp=1, ep=8))
    mla = by_name(ops)["attn.mla"]
    parts = {p.name: p for p in mla.parts}
    assert mla.dims["num_heads"] == 16
    assert parts["attn.q_b_proj"].dims["n"] == 24576 // 8
    assert parts["attn.fused_a_proj"].dims["n"] == 1536 + 512 + 64  # replicated down-projection
    assert parts["attn.o_proj"].dims["k"] == 16 * 128
    moe = by_name(ops)["moe.experts"]
    assert (moe.dims["tokens"], moe.dims["ep"], moe.dims["tp"]) == (32, 8, 1)
    # DP attention: the EP group sees the tokens of every DP rank
    dp = by_name(forward_operators(s, "context", 2, 1024, 512, ParallelLayout(tp=1, dp=8, ep=8)))
    assert dp["moe.experts"].dims["tokens"] == 2 * 512 * 8
    q = by_name(forward_operators(load("qwen3_235b"), "generation", 8, 1024, layout=ParallelLayout(tp=8)))
    assert q["attn.core"].dims["num_heads"] == 8 and q["attn.core"].dims["num_kv_heads"] == 1
    assert q["attn.qkv_proj"].dims["n"] == (8 + 2) * 128


def test_comm_placeholders():
    s = load("qwen3_235b")
    ops = forward_operators(s, "generation", 8, 1024, layout=ParallelLayout(tp=4, dp=2, ep=8))
    comm = {o.name: o for o in ops if o.kind == OpKind.comm}
    assert {"attn.all_reduce", "moe.dispatch", "moe.combine"} <= set(comm)
    assert comm["attn.all_reduce"].dims["size"] == 4 and comm["moe.dispatch"].dims["size"] == 8
    assert all(o.flops == 0 for o in comm.values())
    single = forward_operators(s, "generation", 8, 1024)
    assert not [o for o in single if o.kind == OpKind.comm]
    quiet = forward_operators(s, "generation", 8, 1024, layout=ParallelLayout(tp=4, dp=2, ep=8),
                              include_comm=False)
    assert not [o for o in quiet if o.kind == OpKind.comm]
    assert total_bytes(quiet) == pytest.approx(total_bytes(ops))


def test_sliding_window_attention_and_gpt_oss_dtypes():
    s = load("gpt_oss_120b")
    ops = by_name(forward_operators(s, "context", 1, 8192))
    full, win = ops["attn.core"], ops["attn.core_window128"]
    assert full.count == 18 and win.count == 18 and win.dims["window"] == 128
    assert win.flops < full.flops / 30
    moe = ops["moe.experts"]
    assert (moe.dims["dtype"], moe.dims["fp4_format"], moe.dims["act_dtype"]) == (
        "fp4", "mxfp4", "bfloat16")
    assert ops["attn.qkv_proj"].dims["dtype"] == "bfloat16"


def test_nemotron_operators():
    s = load("nemotron3_super_120b")
    ops = by_name(forward_operators(s, "generation", 8, 4096, layout=ParallelLayout(tp=2, ep=2)))
    assert ops["mamba.ssm"].kind == OpKind.mamba and ops["mamba.ssm"].count == 40
    assert ops["mamba.ssm"].dims["num_heads"] == 64
    assert ops["moe.experts"].dims["latent"] == 1024 and ops["moe.experts"].count == 40
    assert ops["moe.latent_down"].dims["n"] == 1024 and ops["shared.up"].dims["n"] == 5376 // 2
    assert ops["attn.core"].count == 8 and ops["attn.core"].dims["num_kv_heads"] == 1


def test_attended_pairs():
    assert attended_pairs(4, 4) == 10  # causal 1+2+3+4
    assert attended_pairs(1, 1000) == 1000
    assert attended_pairs(1, 1000, 128) == 128
    assert attended_pairs(2, 10, 0) == 9 + 10
    assert attended_pairs(4, 6, 4) == 3 + 4 + 4 + 4
    assert attended_pairs(3, 1000, 2048) == 998 + 999 + 1000


def test_decode_attention_grows_with_context():
    s = load("llama31_70b")
    def core(ctx):
        return by_name(forward_operators(s, "generation", 4, ctx))["attn.core"]
    assert core(8192).bytes > 1.9 * core(4096).bytes
    assert core(8192).flops == pytest.approx(2 * core(4096).flops)


@pytest.mark.parametrize("kwargs,field", [
    (dict(batch=0, context=10), "batch"),
    (dict(batch=1, context=0), "context"),
    (dict(batch=1, context=10, chunk=11), "chunk"),
    (dict(batch=1, context=10, layout=ParallelLayout(tp=3)), "layout.tp"),
    (dict(batch=1, context=10, layout=ParallelLayout(ep=512)), "layout.ep"),
    (dict(batch=1, context=10, layout=ParallelLayout(tp=0)), "layout.tp"),
])
def test_bad_shapes_name_the_field(kwargs, field):
    with pytest.raises(ConfigError) as e:
        forward_operators(load("deepseek_v3"), "context", **kwargs)
    assert e.value.field == field


def test_phase_aliases():
    s = load("llama31_70b")
    assert total_flops(forward_operators(s, "decode", 2, 100)) == total_flops(
        forward_operators(s, Phase.generation, 2, 100))
    with pytest.raises(ConfigError) as e:
        forward_operators(s, "train", 2, 100)
    assert e.value.field == "phase"
