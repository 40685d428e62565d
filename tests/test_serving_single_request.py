"""A request alone in the system: its latencies are the compute model's step times."""

from __future__ import annotations

import math

import pytest

import cosim
from cosim.compute import ComputeModel, StepCostModel
from cosim.config import to_object
from cosim.model.layout import ParallelLayout
from cosim.model.spec import ModelSpec

ISL, OSL = 1000, 40
ALONE = ["model=deepseek_v32", "hardware=b200", "deployment=chunked", "workload=fixed",
         "workload.num_requests=1", "workload.arrival.users=1",
         f"workload.input_tokens.mean={ISL}", f"workload.output_tokens.mean={OSL}",
         "deployment.comm.model=none", "deployment.scheduler.kv_len_grid_tokens=0",
         "output.progress=false"]


def step_model(res, layout: ParallelLayout) -> StepCostModel:
    cfg = to_object(res.config)
    return StepCostModel(ModelSpec.from_config(cfg.model), ComputeModel(cfg.hardware, cfg.compute),
                         layout)


def test_ttft_is_the_prefill_step_and_tpot_the_batch_of_one_decode_step():
    layout = ParallelLayout(tp=8, dp=1, ep=8)
    res = cosim.simulate([*ALONE, "deployment.layout.tp=8", "deployment.layout.dp=1"])
    r = res.requests.iloc[0]
    sc = step_model(res, layout)
    assert r.ttft_s == pytest.approx(sc.cost(0, 0, ISL, ISL, 1).total_s, rel=1e-12)
    # decode step i attends the prompt, the first token and i generated tokens
    steps = [sc.cost(1, ISL + 1 + i).total_s for i in range(OSL - 1)]
    assert r.tpot_s == pytest.approx(sum(steps) / (OSL - 1), rel=1e-12)
    assert r.e2e_s == pytest.approx(r.ttft_s + sum(steps), rel=1e-12)
    assert r.generated_tokens == OSL and len(res.iterations) == OSL


def test_with_dp_attention_the_rank_attends_alone_and_the_moe_sees_its_tokens():
    layout = ParallelLayout(tp=1, dp=8, ep=8)
    res = cosim.simulate(ALONE)  # chunked default: EP8 + DP8
    r = res.requests.iloc[0]
    sc = step_model(res, layout)
    prefill = sc.attention_cost(0, 0, ISL, ISL, 1).total_s + sc.ffn_cost(math.ceil(ISL / 8)).total_s
    assert r.ttft_s == pytest.approx(prefill, rel=1e-12)
    steps = [sc.attention_cost(1, ISL + 1 + i).total_s + sc.ffn_cost(1).total_s
             for i in range(OSL - 1)]
    assert r.tpot_s == pytest.approx(sum(steps) / (OSL - 1), rel=1e-12)


def test_prefix_hit_reduces_prefill_by_exactly_the_reused_blocks():
    prefix, new = 1000, 200
    res = cosim.simulate([*ALONE, "deployment.layout.tp=8", "deployment.layout.dp=1",
                          "workload.num_requests=2", f"workload.prefix_tokens.mean={prefix}",
                          "workload.prefix_pool=1", f"workload.input_tokens.mean={new}"])
    block = 64
    reused = prefix // block * block  # whole blocks of the shared prefix only
    req = res.requests
    assert req.cached_tokens.tolist() == [0, reused]
    assert req.prefilled_tokens.tolist() == [prefix + new, prefix + new - reused]
    assert res.iterations.prefill_tokens.sum() == 2 * (prefix + new) - reused
    sc = step_model(res, ParallelLayout(tp=8, dp=1, ep=8))
    second = req.iloc[1]
    assert second.ttft_s == pytest.approx(
        sc.cost(0, 0, prefix + new - reused, prefix + new, 1).total_s, rel=1e-12)
    assert res.summary["prefix_hit_rate"] == pytest.approx(reused / (2 * (prefix + new)))
