"""Model specs from the shipped Hugging Face configs: structure, parameters, weight and KV bytes."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cosim.config.model import ModelConfig
from cosim.dtypes import DType
from cosim.errors import ConfigError
from cosim.model.architecture import FfnKind, MixerKind, Precision
from cosim.model.layout import ParallelLayout
from cosim.model.spec import ModelSpec
from cosim.paths import hydra_config_dir

MODEL_DIR = Path(hydra_config_dir()) / "model"
REQUIRED = ["deepseek_v3", "deepseek_v32", "qwen3_235b", "gpt_oss_120b", "nemotron3_super_120b",
            "kimi_k2", "llama31_70b"]


def load_cfg(name: str) -> ModelConfig:
    raw = OmegaConf.merge(OmegaConf.structured(ModelConfig), OmegaConf.load(MODEL_DIR / f"{name}.yaml"))
    return OmegaConf.to_object(raw)


def load(name: str) -> ModelSpec:
    return ModelSpec.from_config(load_cfg(name))


def hf(name: str) -> dict:
    return copy.deepcopy(load_cfg(name).hf_config)


def test_required_model_configs_exist_and_validate():
    names = {p.stem for p in MODEL_DIR.glob("*.yaml")}
    assert set(REQUIRED) <= names
    for name in sorted(names):
        cfg = load_cfg(name)
        assert cfg.name == name
        assert cfg.hf_repo, f"{name}: say which HF repository the config came from"
        cfg.validate("model")


# Published totals / actives (model cards, technical reports) and the tolerance we hold to.
# Qwen's cards count the input embedding as active (21.6B + 0.6B = "22B"); we do not, so the
# active tolerance for Qwen3 is wider. Kimi-K2's card says "1T total / 32B active" (1.04T in the
# technical report).
PUBLISHED = {
    "deepseek_v3": (671e9, 0.01, 37e9, 0.025),
    "deepseek_r1": (671e9, 0.01, 37e9, 0.025),
    "qwen3_235b": (235e9, 0.01, 22e9, 0.03),
    "qwen3_30b_a3b": (30.5e9, 0.01, 3.3e9, 0.10),
    "gpt_oss_120b": (116.8e9, 0.005, 5.1e9, 0.015),
    "kimi_k2": (1.03e12, 0.015, 32e9, 0.025),
    "llama31_70b": (70.6e9, 0.005, None, None),
    "nemotron3_super_120b": (120e9, 0.02, 12e9, 0.03),
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_params_close_to_published(name):
    total, ttol, active, atol = PUBLISHED[name]
    s = load(name)
    assert s.total_params == pytest.approx(total, rel=ttol)
    if active is not None:
        assert s.active_params == pytest.approx(active, rel=atol)


def test_deepseek_v3_pinned_counts():
    s = load("deepseek_v3")
    # Exact sums of the HF module shapes (regression pins).
    assert s.total_params == 671_026_419_200
    assert s.active_params == 36_625_618_432
    assert s.num_layers == 61 and s.num_dense_layers == 3 and s.num_moe_layers == 58
    assert [(g.mixer, g.ffn, g.count) for g in s.groups] == [
        (MixerKind.mla, FfnKind.dense, 3), (MixerKind.mla, FfnKind.moe, 58)]


def test_param_convention_embedding_head_and_mtp():
    s = load("deepseek_v3")
    groups = {g.name: g for g in s.param_groups}
    table = s.vocab_size * s.hidden_size
    # total counts the embedding and the LM head; active counts the head but not the lookup table
    assert groups["embedding"].total == table and groups["embedding"].active == 0
    assert groups["lm_head"].total == table and groups["lm_head"].active == table
    # The MTP module (one extra MoE layer + eh_proj) is reported apart and not in total_params:
    # 671B + ~11.6B (+ its own copies of embedding and head in the checkpoint) = the "685B" card.
    assert s.mtp_params == pytest.approx(11.6e9, rel=0.01)
    assert load("llama31_70b").mtp_params == 0


def test_tied_embeddings_stored_once_but_active():
    d = hf("llama31_70b")
    untied = ModelSpec.from_hf("x", d)
    d["tie_word_embeddings"] = True
    tied = ModelSpec.from_hf("x", d)
    table = d["vocab_size"] * d["hidden_size"]
    assert untied.total_params - tied.total_params == table
    assert untied.active_params == tied.active_params


def test_kv_cache_bytes_per_token():
    v3 = load("deepseek_v3")
    assert v3.kv_cache_bytes_per_token("bfloat16") == 70272  # (512 + 64) * 2 B * 61 layers
    assert v3.kv_cache_bytes_per_token("fp8") == 35136
    # MLA latents are replicated on every attention-TP rank
    assert v3.kv_cache_bytes_per_token("bfloat16", tp=8) == 70272
    # DSA adds the indexer key: 128 FP8 values + one FP32 scale per token and layer
    assert load("deepseek_v32").kv_cache_bytes_per_token("bfloat16") == 61 * (576 * 2 + 132)
    assert load("deepseek_v32").kv_cache_bytes_per_token("fp8") == 61 * (576 + 132)
    q = load("qwen3_235b")
    assert q.kv_cache_bytes_per_token("bfloat16") == 2 * 4 * 128 * 94 * 2
    assert q.kv_cache_bytes_per_token("bfloat16", tp=8) == 2 * 1 * 128 * 94 * 2  # 1 KV head/GPU
    assert load("llama31_70b").kv_cache_bytes_per_token("bfloat16") == 327680
    assert load("kimi_k2").kv_cache_bytes_per_token("bfloat16") == 70272


def test_sliding_window_kv_is_capped():
    s = load("gpt_oss_120b")
    per_layer = 2 * 8 * 64 * 2
    assert [(g.window, g.count) for g in s.groups] == [(128, 18), (0, 18)]
    assert s.kv_cache_bytes_per_token("bfloat16") == 18 * per_layer  # full layers only
    assert s.window_kv_bytes_per_token("bfloat16") == 18 * per_layer
    assert s.kv_bytes(100, "bfloat16") == 36 * per_layer * 100
    assert s.kv_bytes(10_000, "bfloat16") == 18 * per_layer * (10_000 + 128)


def test_nemotron_hybrid_stack_and_state():
    s = load("nemotron3_super_120b")
    counts = {(g.mixer, g.ffn): g.count for g in s.groups}
    assert counts == {(MixerKind.mamba, FfnKind.none): 40, (MixerKind.none, FfnKind.moe): 40,
                      (MixerKind.gqa, FfnKind.none): 8}
    assert s.moe.latent == 1024 and not s.moe.gated and s.moe.shared_inter == 5376
    # KV only on the 8 attention layers (2 KV heads x 128), configured FP8
    assert s.kv_cache_bytes_per_token() == 8 * 2 * 2 * 128 * 1
    # Mamba state per request: conv (10240 ch x 3 taps, bf16) + SSM (128 heads x 64 x 128, fp32)
    assert s.state_bytes_per_request() == 40 * (10240 * 3 * 2 + 128 * 64 * 128 * 4)
    assert s.state_bytes_per_request(tp=2) == pytest.approx(s.state_bytes_per_request() / 2,
                                                            rel=0.01)


def test_qwen_sparse_step_and_mlp_only_layers():
    d = hf("qwen3_235b")
    d["decoder_sparse_step"] = 2
    d["mlp_only_layers"] = [1]
    s = ModelSpec.from_hf("q", d)
    kinds = [f for _, f, _ in s.layers]
    assert kinds[:4] == [FfnKind.dense, FfnKind.dense, FfnKind.dense, FfnKind.moe]
    assert s.num_moe_layers == 46


def test_weight_bytes_per_dtype_and_configured():
    s = load("gpt_oss_120b")
    assert s.weight_bytes("bfloat16") == 2 * s.total_params
    assert s.weight_bytes("fp8") == s.total_params
    # MXFP4 experts (4.25 bits with E8M0 scales) + BF16 rest: the released checkpoint is ~65 GB
    assert s.weight_bytes() == pytest.approx(65.2e9, rel=0.01)
    v3 = load("deepseek_v3")
    # FP8 block weights + BF16 embedding/head: a little above 1 byte per parameter
    assert v3.total_params < v3.weight_bytes() < 1.01 * v3.total_params


def test_weight_bytes_per_gpu():
    s = load("deepseek_v3")
    one = ParallelLayout()
    assert s.weight_bytes_per_gpu(one) == pytest.approx(s.weight_bytes())
    ep8 = ParallelLayout(tp=1, dp=8, ep=8)
    a = s.weight_bytes_per_gpu(ep8, "attention")
    f = s.weight_bytes_per_gpu(ep8, "ffn")
    assert a + f == pytest.approx(s.weight_bytes_per_gpu(ep8))
    experts = {g.name: g for g in s.param_groups}["routed_experts"].total * (1 + 4 / 16384)
    # EP8 holds 1/8 of the experts; everything else is replicated across DP ranks
    assert s.weight_bytes_per_gpu(ep8) == pytest.approx(s.weight_bytes() - experts * 7 / 8)
    # EPLB redundant experts add whole experts per GPU
    assert s.weight_bytes_per_gpu(ep8, redundant_experts=32) > s.weight_bytes_per_gpu(ep8)
    # TP8 + EP8 on 8 GPUs: replicated parts make the sum exceed the model, but not by much
    tp8 = ParallelLayout(tp=8, dp=1, ep=8)
    assert s.weight_bytes() < 8 * s.weight_bytes_per_gpu(tp8) < 1.02 * s.weight_bytes()


def test_precision_names():
    p = Precision(fp8_scaling="block", fp4_format="mxfp4")
    assert p.gemm_dtype(DType.fp8) == "fp8_block"
    assert Precision(fp8_scaling="tensor").gemm_dtype("fp8") == "fp8"
    assert p.gemm_dtype("fp4") == "fp4" and p.gemm_dtype("bfloat16") == "bfloat16"
    assert p.element_bytes("fp4") == 0.53125  # MXFP4: 4 bits + one 8-bit scale per 32
    assert Precision().element_bytes("fp4") == 0.5625  # NVFP4: one FP8 scale per 16


@pytest.mark.parametrize("field,value,reason", [
    ("hidden_size", None, "missing"),
    ("num_hidden_layers", "abc", "expected an integer"),
    ("num_attention_heads", 1.5, "expected an integer"),
    ("kv_lora_rank", True, "expected an integer"),
    ("first_k_dense_replace", -1, ">= 0"),
])
def test_bad_hf_fields_name_the_field(field, value, reason):
    d = hf("deepseek_v3")
    if value is None:
        del d[field]
    else:
        d[field] = value
    with pytest.raises(ConfigError, match=reason) as e:
        ModelSpec.from_hf("x", d)
    assert e.value.field == f"model.hf_config.{field}"


def test_bad_family_specific_fields():
    d = hf("nemotron3_super_120b")
    d["hybrid_override_pattern"] = d["hybrid_override_pattern"][:-1] + "X"
    with pytest.raises(ConfigError, match="unknown layer character") as e:
        ModelSpec.from_hf("n", d)
    assert e.value.field == "model.hf_config.hybrid_override_pattern"
    g = hf("gpt_oss_120b")
    g["layer_types"] = g["layer_types"][:-1]
    with pytest.raises(ConfigError) as e:
        ModelSpec.from_hf("g", g)
    assert e.value.field == "model.hf_config.layer_types"
    q = hf("qwen3_235b")
    q["num_key_value_heads"] = 5
    with pytest.raises(ConfigError) as e:
        ModelSpec.from_hf("q", q)
    assert e.value.field == "model.hf_config.num_key_value_heads"
    q["num_key_value_heads"] = 4
    del q["moe_intermediate_size"], q["intermediate_size"]
    with pytest.raises(ConfigError, match="missing") as e:
        ModelSpec.from_hf("q", q)
    assert e.value.field == "model.hf_config.moe_intermediate_size"


def test_model_config_validate_names_fields():
    cfg = load_cfg("deepseek_v3")
    cfg.fp4_format = "mxfp6"
    with pytest.raises(ConfigError) as e:
        cfg.validate("model")
    assert e.value.field == "model.fp4_format"
    cfg = load_cfg("deepseek_v3")
    cfg.hf_config = {}
    with pytest.raises(ConfigError) as e:
        cfg.validate("model")
    assert e.value.field == "model.hf_config"
