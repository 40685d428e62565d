"""Metric definitions: TTFT / TPOT / E2E, SLO verdicts, throughput figures of summary.json."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from test_serving_engine import table
from test_serving_system import run

from cosim.config.slo import SLOConfig
from cosim.metrics import requests_frame
from cosim.serving.request_state import RequestState

REQUIRED = ("feasible", "infeasible_reason", "num_gpus", "requests_completed", "simulated_s",
            "sim_wall_s", "input_tok_s", "output_tok_s", "output_tok_s_per_gpu",
            "total_tok_s_per_gpu", "tok_s_per_user_mean", "ttft_ms_p50", "ttft_ms_p90",
            "ttft_ms_p99", "tpot_ms_p50", "tpot_ms_p90", "tpot_ms_p99", "e2e_ms_p50", "e2e_ms_p99",
            "slo_attainment", "goodput_tok_s", "prefix_hit_rate", "preemptions",
            "compute_sources", "network_cache_hits", "network_cache_misses")


def test_request_latencies_and_slo_verdicts():
    t = table([100, 100, 100], [11, 1, 11])
    st = RequestState(t)
    st.arrival_s = [0.0, 0.0, 1.0]
    st.first_token_s = [0.04, 0.2, 1.06]
    st.finish_s = [0.14, 0.2, 1.46]
    st.scheduled_s = [0.01, 0.0, 1.0]
    req = requests_frame(t, st, SLOConfig(), "chat")  # chat: TTFT 50 ms, TPOT 15 ms
    assert req.ttft_s.tolist() == pytest.approx([0.04, 0.2, 0.06])
    assert req.tpot_s[0] == pytest.approx(0.01) and math.isnan(req.tpot_s[1])
    assert req.tpot_s[2] == pytest.approx(0.04)
    assert req.e2e_s.tolist() == pytest.approx([0.14, 0.2, 0.46])
    assert req.queue_s.tolist() == pytest.approx([0.01, 0.0, 0.0])
    assert req.meets_ttft.tolist() == [True, False, False]
    assert req.meets_tpot.tolist() == [True, True, False]  # one output token: no TPOT
    assert req.meets_slo.tolist() == [True, False, False]
    loose = requests_frame(t, st, SLOConfig(ttft_ms=500.0, tpot_ms=50.0), "chat")
    assert loose.meets_slo.all()


def test_slo_default_depends_on_the_workload():
    slo = SLOConfig()
    assert [slo.ttft_ms_for(w) for w in ("chat", "coding", "agentic", "fixed")] == [50, 100, 150, 100]
    assert SLOConfig(ttft_ms=80.0).ttft_ms_for("agentic") == 80


def test_summary_figures_follow_from_the_request_table():
    res = run(["workload=chat", "workload.num_requests=200", "workload.arrival.rate_per_s=30",
               "slo=loose"])
    s, req = res.summary, res.requests
    for k in REQUIRED:
        assert k in s, k
    json.dumps(s, allow_nan=False)  # valid JSON: no NaN
    span = req.finish_s.max() - req.arrival_s.min()
    assert s["simulated_s"] == pytest.approx(span)
    assert s["output_tok_s"] == pytest.approx(req.output_tokens.sum() / span)
    assert s["input_tok_s"] == pytest.approx(req.prompt_tokens.sum() / span)
    assert s["output_tok_s_per_gpu"] == pytest.approx(s["output_tok_s"] / 8)
    assert s["total_tok_s_per_gpu"] == pytest.approx((s["input_tok_s"] + s["output_tok_s"]) / 8)
    assert s["tok_s_per_user_mean"] == pytest.approx(float(np.nanmean(1 / req.tpot_s)))
    assert s["ttft_ms_p90"] == pytest.approx(np.percentile(req.ttft_s, 90) * 1e3)
    assert s["slo_attainment"] == pytest.approx(req.meets_slo.mean())
    assert 0 < s["slo_attainment"] <= 1
    assert s["goodput_tok_s"] == pytest.approx(req.output_tokens[req.meets_slo].sum() / span)
    assert s["compute_sources"] == pytest.approx({"toy": 1.0})
    assert s["slo"] == {"ttft_ms": 500.0, "tpot_ms": 50.0, "e2e_ms": None}
