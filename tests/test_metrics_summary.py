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


DEPLOYMENT_KEYS = ("kv_transfer_ms_p50", "kv_transfer_ms_p99", "kv_transfers", "attention_busy",
                   "ffn_busy", "comm_exposed_fraction")


def test_every_deployment_kind_reports_the_same_summary_keys_and_a_timeline():
    from disagg_toy_cost import FIXED, ToyStepCost, config, toy_factory

    from cosim.serving.simulation import run_simulation

    toy = toy_factory(ToyStepCost(2e-3, 1e-5, 3e-3, 1e-5))
    out = {kind: run_simulation(config([f"deployment={kind}", *FIXED, "workload.num_requests=24",
                                        "deployment.comm.model=alpha_beta", "topology.num_nodes=3"]),
                                step_cost_factory=toy)
           for kind in ("chunked", "pd", "afd", "pd_afd")}
    keys = {kind: set(o.summary) for kind, o in out.items()}
    assert all(k == keys["chunked"] for k in keys.values())
    assert set(DEPLOYMENT_KEYS) <= keys["chunked"]
    ch = out["chunked"]
    assert ch.summary["kv_transfer_ms_p50"] is None and ch.summary["attention_busy"] is None
    it = ch.iterations
    assert ch.summary["comm_exposed_fraction"] == pytest.approx(it.comm_s.sum() / it.duration_s.sum())
    assert 0 < ch.summary["comm_exposed_fraction"] < 1
    assert out["pd"].summary["kv_transfers"] == 24 and out["pd"].summary["kv_transfer_ms_p50"] > 0
    assert out["afd"].summary["attention_busy"] > 0 and out["pd_afd"].summary["ffn_busy"] > 0
    # timeline.json: one event per iteration of output.timeline_iterations ([0, 3)) per instance
    events = ch.artifacts["timeline.json"]["traceEvents"]
    spans = [e for e in events if e.get("ph") == "X"]
    assert [e["name"] for e in spans] == ["iteration 0", "iteration 1", "iteration 2"]
    first = it.iloc[0]
    assert spans[0]["args"]["comm_ms"] == pytest.approx(first.comm_s * 1e3)
    assert spans[0]["dur"] == pytest.approx(first.duration_s * 1e6)
