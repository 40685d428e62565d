"""Steady state (issue 9): a warm-up window left out of the metrics (metrics.warmup_s /
metrics.warmup_requests) and shared prefixes resident at the start (workload.warm_prefixes)."""

from __future__ import annotations

import numpy as np
import pytest
from test_serving_system import run

from cosim.config import ConfigError
from cosim.metrics import WINDOW_KEYS, warmup_mask
from cosim.serving.kv_cache import KVCache

CHAT = ["workload=chat", "workload.num_requests=120", "workload.arrival.rate_per_s=30"]


def test_warmup_mask_takes_the_window_and_the_first_requests_by_arrival():
    arrival = np.array([3.0, 0.0, 1.0, 0.5, 2.0])
    assert warmup_mask(arrival, 0.0, 0).tolist() == [False] * 5
    assert warmup_mask(arrival, 1.0, 0).tolist() == [False, True, False, True, False]
    assert warmup_mask(arrival, 0.0, 3).tolist() == [False, True, True, True, False]
    assert warmup_mask(arrival, 0.6, 1).tolist() == [False, True, False, True, False]


def test_a_zero_window_changes_no_figure():
    base = run(CHAT).summary
    zero = run([*CHAT, "metrics.warmup_s=0", "metrics.warmup_requests=0"]).summary
    skip = {"sim_wall_s"}
    assert {k: v for k, v in zero.items() if k not in skip} == \
        {k: v for k, v in base.items() if k not in skip}
    assert base["warmup_excluded_requests"] == 0 and "including_warmup" not in base
    assert base["warm_prefix_blocks"] == 0


def test_the_warmup_window_leaves_out_the_early_requests():
    res = run([*CHAT, "metrics.warmup_requests=40", "slo=loose"])
    s, req = res.summary, res.requests
    early = warmup_mask(req.arrival_s.to_numpy(), 0.0, 40)
    assert s["warmup_excluded_requests"] == early.sum() == 40
    kept = req[~early]
    assert s["ttft_ms_p90"] == pytest.approx(np.percentile(kept.ttft_s, 90) * 1e3)
    span = kept.finish_s.max() - kept.arrival_s.min()
    assert s["simulated_s"] == pytest.approx(span)
    assert s["output_tok_s"] == pytest.approx(kept.output_tokens.sum() / span)
    assert s["slo_attainment"] == pytest.approx(kept.meets_slo.mean())
    assert s["goodput_tok_s"] == pytest.approx(kept.output_tokens[kept.meets_slo].sum() / span)
    assert s["prefix_hit_rate"] == pytest.approx(kept.cached_tokens.sum() / kept.prompt_tokens.sum())
    assert s["requests_completed"] == len(req)  # whole-run counts stay whole-run
    full = s["including_warmup"]
    assert set(full) == set(WINDOW_KEYS)
    assert full["ttft_ms_p90"] == pytest.approx(np.percentile(req.ttft_s, 90) * 1e3)
    assert full["simulated_s"] == pytest.approx(req.finish_s.max() - req.arrival_s.min())

    by_time = run([*CHAT, "metrics.warmup_s=1.0"]).summary
    t0 = req.arrival_s.min()
    assert by_time["warmup_excluded_requests"] == int((req.arrival_s < t0 + 1.0).sum()) > 0


def test_kv_warm_places_whole_chains_while_blocks_are_free():
    kv = KVCache(5, 16)
    assert kv.warm([[1, 2, 3], [4, 5, 6]]) == 5  # second chain: its leading two blocks
    kv.check()
    assert kv.free == 0 and kv.available == 5 and kv.hit_blocks == 0
    assert kv.match([4, 5, 6]) == (2, 2)
    assert kv.allocate(1)  # evicts a tail first: chain 1's last block (LRU order)
    assert kv.match([1, 2, 3]) == (2, 2)
    kv.check()
    assert kv.warm([[1, 2, 3]]) == 0  # nothing free: nothing placed


def test_warm_prefixes_raise_the_prefix_hit_rate_of_a_short_run():
    short = ["workload=chat", "workload.num_requests=40", "workload.arrival.rate_per_s=30"]
    cold = run(short).summary
    warm = run([*short, "workload.warm_prefixes=true"]).summary
    assert warm["warm_prefix_blocks"] > 0
    assert warm["prefix_hit_rate"] > cold["prefix_hit_rate"]
    assert warm["requests_completed"] == cold["requests_completed"] == 40


@pytest.mark.parametrize("override, field", [
    ("workload.warm_prefixes=true workload.prefix_pool=0", "workload.warm_prefixes"),
    ("metrics.warmup_s=-1", "metrics.warmup_s"),
    ("metrics.warmup_requests=-3", "metrics.warmup_requests"),
])
def test_bad_values_name_the_field(override, field):
    with pytest.raises(ConfigError) as e:
        run([*CHAT, *override.split()])
    assert str(e.value).startswith(field + ":")


@pytest.mark.parametrize("kind", ["pd", "afd", "pd_afd"])
def test_warm_prefixes_reach_the_entry_instances_of_every_kind(kind):
    from disagg_toy_cost import ToyStepCost, config, toy_factory

    from cosim.serving.simulation import run_simulation

    toy = toy_factory(ToyStepCost(2e-3, 1e-5, 3e-3, 1e-5))
    common = [f"deployment={kind}", "workload=chat", "workload.num_requests=24",
              "workload.output_tokens.mean=16",
              "deployment.comm.model=alpha_beta", "topology.num_nodes=3"]
    cold = run_simulation(config(common), step_cost_factory=toy).summary
    warm = run_simulation(config([*common, "workload.warm_prefixes=true"]),
                          step_cost_factory=toy).summary
    assert warm["warm_prefix_blocks"] > 0 and cold["warm_prefix_blocks"] == 0
    assert warm["prefix_hit_rate"] > cold["prefix_hit_rate"]
    assert warm["requests_completed"] == 24


def test_a_window_over_every_request_leaves_no_figure_and_valid_json():
    import json

    s = run(["workload=chat", "workload.num_requests=30", "metrics.warmup_requests=1000"]).summary
    assert s["warmup_excluded_requests"] == 30 == s["requests_completed"]
    assert s["output_tok_s"] is None and s["ttft_ms_p50"] is None and s["slo_attainment"] is None
    assert s["including_warmup"]["output_tok_s"] > 0
    json.dumps(s, allow_nan=False)
