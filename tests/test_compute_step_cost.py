"""StepCostModel: one continuous-batching iteration, bucketed memoisation, AFD halves."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cosim.compute import ComputeModel, StepCostModel, estimate
from cosim.compute.step_cost import bucket, bucket_error
from cosim.config.compute import ComputeConfig
from cosim.config.hardware import HardwareConfig
from cosim.config.model import ModelConfig
from cosim.model.forward import forward_operators
from cosim.model.layout import ParallelLayout
from cosim.model.operators import Phase
from cosim.model.spec import ModelSpec
from cosim.paths import hydra_config_dir

CONFIGS = Path(hydra_config_dir())
LAYOUT = ParallelLayout(tp=1, dp=8, ep=8)


def _load(group: str, name: str, schema):
    raw = OmegaConf.merge(OmegaConf.structured(schema),
                          OmegaConf.load(CONFIGS / group / f"{name}.yaml"))
    return OmegaConf.to_object(raw)


@pytest.fixture(scope="module")
def parts():
    spec = ModelSpec.from_config(_load("model", "deepseek_v32", ModelConfig))
    model = ComputeModel(_load("hardware", "b200", HardwareConfig), ComputeConfig())
    return spec, model


@pytest.fixture()
def step(parts):
    spec, model = parts
    return StepCostModel(spec, model, LAYOUT)


def test_bucket_grid_is_exact_when_small_and_within_one_and_a_half_percent_above():
    assert [bucket(x) for x in range(64)] == list(range(64))
    prev = 0
    for x in range(64, 300_000, 7):
        b = bucket(x)
        assert abs(b - x) / x <= 1 / 64  # 32 steps per octave: at most 1.56 % of x
        assert b >= prev and bucket(b) == b  # monotone and idempotent
        prev = b


def test_decode_only_and_prefill_only_match_the_forward_pass_estimate(parts, step):
    spec, model = parts
    dec = estimate(forward_operators(spec, Phase.generation, 32, 4096, 1, LAYOUT), model)
    assert step.cost(32, 4096).total_s == pytest.approx(dec.total_s, rel=1e-9)
    pre = estimate(forward_operators(spec, Phase.context, 2, 3072, 1024, LAYOUT), model)
    got = step.cost(0, 0, prefill_tokens=2048, prefill_kv_len=3072, prefill_requests=2)
    assert got.total_s == pytest.approx(pre.total_s, rel=1e-9)


def test_mixed_iteration_shares_the_weights_of_both_parts(step):
    dec = step.cost(48, 8192)
    pre = step.cost(0, 0, 1024, 1024, 1)
    mixed = step.cost(48, 8192, 1024, 1024, 1)
    assert mixed.total_s > max(dec.total_s, pre.total_s)
    assert mixed.total_s < dec.total_s + pre.total_s  # GEMM/MoE weights read once
    assert mixed.attention_s + mixed.ffn_s + mixed.other_s == pytest.approx(mixed.total_s)
    assert sum(mixed.by_source.values()) == pytest.approx(mixed.total_s)


def test_attention_and_ffn_halves_add_up_to_the_iteration(step):
    args = (32, 6000, 512, 9000, 2)  # 32 + 512 tokens: a bucket point, so no rounding
    whole = step.cost(*args)
    attn = step.attention_cost(*args)
    ffn = step.ffn_cost(32 + 512)
    assert attn.ffn_s == 0 and ffn.attention_s == 0 and ffn.other_s == 0
    assert attn.total_s + ffn.total_s == pytest.approx(whole.total_s, rel=1e-9)


def test_repeated_calls_hit_the_cache(step):
    first = step.cost(64, 4096, 256, 4096, 1)
    misses = step.misses
    assert step.cost(64, 4096, 256, 4096, 1) is first
    same_bucket = step.cost(64, 4097, 256, 4096, 1)  # 4097 rounds onto 4096
    assert same_bucket is first and step.misses == misses


def test_cost_grows_with_decode_batch_and_context(step):
    by_batch = [step.cost(b, 4096).total_s for b in (1, 8, 64, 256)]
    by_kv = [step.cost(64, kv).total_s for kv in (512, 4096, 32768, 131072)]
    assert by_batch == sorted(by_batch) and by_kv == sorted(by_kv)


def test_bucketing_error_is_small(step):
    samples = [(b, kv, 0, 0, 0) for b in (3, 70, 130, 200) for kv in (999, 5003, 40111)]
    samples += [(17, 3001, pt, pt + 777, 1) for pt in (100, 1000, 3333)]
    err = bucket_error(step, samples)
    assert err["max"] < 0.03


def test_bad_arguments_are_rejected(step):
    with pytest.raises(ValueError):
        step.cost(-1, 4096)
    with pytest.raises(ValueError):
        step.cost(1.5, 4096)
