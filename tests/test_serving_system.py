"""Whole-system properties of serving runs: conservation, Little's law, determinism, KV bounds,
infeasible layouts, routing.

A toy step cost (affine in tokens; a stand-in for cosim.compute's tables, used only here)
keeps these runs fast; the closed forms against the real compute model are in
test_serving_single_request.py.
"""

from __future__ import annotations

import numpy as np
import pytest

import cosim
from cosim.api import compose_config
from cosim.compute.step_cost import StepCost
from cosim.metrics import CACHE_HISTORY_KEYS
from cosim.serving.engine import Engine
from cosim.serving.events import RequestArrival
from cosim.serving.simulation import prepare

MS = 1e-3


class AffineStepCost:
    """Per-rank attention 2 ms + 5 us/token + 1 ns/context token; FFN 4 ms + 10 us/token."""

    def attention_cost(self, db, dkv, pt=0, pkv=0, pr=0):
        t = 2 * MS + 5e-6 * (db + pt) + 1e-9 * (db * dkv + pt * pkv)
        return StepCost(t, t, 0.0, 0.0, {"toy": t})

    def ffn_cost(self, tokens):
        t = 4 * MS + 10e-6 * tokens
        return StepCost(t, 0.0, t, 0.0, {"toy": t})

    def cost(self, db, dkv, pt=0, pkv=0, pr=0):
        return self.attention_cost(db, dkv, pt, pkv, pr) + self.ffn_cost(db + pt)


def toy(spec, layout):
    return AffineStepCost()


def run(overrides, **kw):
    return cosim.simulate([*overrides, "output.progress=false", "deployment.comm.model=alpha_beta"],
                          step_cost_factory=toy, **kw)


CHAT = ["workload=chat", "workload.num_requests=400", "workload.arrival.rate_per_s=30"]


def test_every_output_token_is_produced_once():
    res = run(CHAT)
    req, it = res.requests, res.iterations
    assert res.summary["requests_completed"] == len(req) == 400
    assert (req.generated_tokens == req.output_tokens).all()
    assert res.summary["preemptions"] == 0
    # one token per decode slot, plus the first token of each request with its last chunk
    assert it.decode_requests.sum() + len(req) == req.output_tokens.sum()
    assert it.prefill_tokens.sum() == req.prefilled_tokens.sum()
    assert (req.prefilled_tokens == req.prompt_tokens - req.cached_tokens).all()
    assert (req.first_token_s >= req.arrival_s).all() and (req.finish_s >= req.first_token_s).all()


def test_littles_law_holds_at_steady_state():
    lam = 25.0
    res = run(["workload=fixed", "workload.num_requests=3000", "workload.arrival.process=poisson",
               f"workload.arrival.rate_per_s={lam}", "workload.input_tokens.mean=512",
               "workload.output_tokens.mean=128", "workload.output_tokens.cv=0.5",
               "workload.output_tokens.dist=gamma"])
    req, it = res.requests, res.iterations
    t0, t1 = np.quantile(req.arrival_s, [0.1, 0.9])  # steady-state window
    inside = (it.start_s >= t0) & (it.start_s < t1)
    # time-average number in the system, from what the instance held at each iteration
    L = float(((it.waiting + it.running) * it.duration_s)[inside].sum() / (t1 - t0))
    arrived = (req.arrival_s >= t0) & (req.arrival_s < t1)
    lam_hat = arrived.sum() / (t1 - t0)
    W = float(req.e2e_s[arrived].mean())
    assert lam_hat == pytest.approx(lam, rel=0.1)  # Poisson count over ~100 s: ~2 % std
    assert L == pytest.approx(lam_hat * W, rel=0.05)
    assert L > 5  # a real queueing system, not an empty one


def test_same_seed_same_results_other_seed_other_results():
    a, b = run(CHAT), run(CHAT)
    c = run([*CHAT, "seed=1"])
    sa = {k: v for k, v in a.summary.items() if k != "sim_wall_s"}
    sb = {k: v for k, v in b.summary.items() if k != "sim_wall_s"}
    assert sa == sb
    assert a.requests.equals(b.requests) and a.iterations.equals(b.iterations)
    assert c.summary["ttft_ms_p50"] != a.summary["ttft_ms_p50"]


def test_kv_capacity_is_never_exceeded_and_preemption_recomputes():
    over = ["workload=fixed", "workload.num_requests=300", "workload.arrival.users=256",
            "workload.input_tokens.mean=1024", "workload.output_tokens.mean=512",
            "deployment.comm.model=none", "output.progress=false"]
    cfg = compose_config(over)
    dep, _, _ = prepare(cfg, step_cost_factory=toy)
    plan = dep.memory["replica"]
    # shrink the KV cache to ~12 requests' worth per rank (of 32 running per rank)
    target = 12 * 1600 * plan.kv_bytes_per_token
    reserve = cfg.deployment.memory.runtime_reserve_gb + (plan.kv_bytes - target) / 1e9
    cfg = compose_config([*over, f"deployment.memory.runtime_reserve_gb={reserve}"])
    dep, ctx, _ = prepare(cfg, step_cost_factory=toy)
    assert dep.feasible, dep.infeasible_reason
    eng = Engine()
    times, rids = ctx.driver.initial()
    for t, rid in zip(times.tolist(), rids.tolist(), strict=True):
        eng.schedule(t, RequestArrival(dep, rid))
    eng.run()
    st = ctx.state
    assert st.completed == 300 and st.generated == st.output
    assert st.preempted_total > 0
    for inst in dep.instances:
        for rank in inst.ranks:
            rank.kv.check()
            assert rank.kv.peak_used <= rank.kv.capacity
        used = np.array([row[9] for row in inst.rows])
        assert used.max() <= inst.kv_capacity_blocks


def test_a_layout_whose_weights_do_not_fit_is_reported_infeasible_not_simulated():
    res = run(["workload=chat", "workload.num_requests=10", "deployment.layout.dp=1",
               "deployment.layout.ep=1"])
    s = res.summary
    assert s["feasible"] is False
    assert "weights" in s["infeasible_reason"] and "exceed" in s["infeasible_reason"]
    assert len(res.iterations) == 0 and res.requests.finish_s.isna().all()
    assert "requests_completed" not in s and s["num_gpus"] == 1


def test_round_robin_and_least_loaded_spread_requests_over_replicas():
    rr = run([*CHAT, "deployment.replicas=3", "topology.num_nodes=3", "workload.num_requests=90"])
    assert rr.requests.instance.tolist() == [i % 3 for i in range(90)]
    ll = run(["workload=fixed", "workload.num_requests=90", "workload.arrival.process=burst",
              "deployment.replicas=3", "topology.num_nodes=3", "deployment.router=least_loaded"])
    counts = np.bincount(ll.requests.instance, minlength=3)
    assert counts.max() - counts.min() <= 1


def test_prefix_aware_routing_finds_cached_prefixes():
    base = ["workload=chat", "workload.num_requests=300", "workload.arrival.rate_per_s=20",
            "workload.prefix_pool=4", "deployment.replicas=4", "topology.num_nodes=4"]
    rr = run([*base, "deployment.router=round_robin"])
    pa = run([*base, "deployment.router=prefix_aware"])
    assert pa.summary["prefix_hit_rate"] > rr.summary["prefix_hit_rate"] + 0.05


def test_same_seed_same_results_with_the_fabric_and_its_cache(tmp_path):
    over = ["workload=chat", "workload.num_requests=150", "workload.arrival.rate_per_s=30",
            "network=analytical", f"network.cache.path={tmp_path / 'net.sqlite'}",
            "output.progress=false"]
    a = cosim.simulate(over, step_cost_factory=toy)  # fills the on-disk cache
    b = cosim.simulate(over, step_cost_factory=toy)  # answers from it
    assert a.summary["comm"]["comm_model"] == "fabric:analytical"
    assert a.summary["network_cache_misses"] > 0 and b.summary["network_cache_misses"] == 0
    # the same lookups; on the second run the disk answers what the first one simulated
    assert b.summary["network_lookups"] == a.summary["network_lookups"] > 0
    assert b.summary["network_cache_hits_sqlite"] == a.summary["network_cache_misses"]
    assert b.summary["network_cache_hit_rate"] == 1.0
    history = {"sim_wall_s", *CACHE_HISTORY_KEYS}
    assert ({k: v for k, v in a.summary.items() if k not in history}
            == {k: v for k, v in b.summary.items() if k not in history})
    assert a.requests.equals(b.requests) and a.iterations.equals(b.iterations)
