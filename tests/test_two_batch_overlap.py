"""Two-batch overlap (deployment.overlap=two_batch) in chunked and pd: the schedule, the
free-communication closed form, the upper bound, and overlap off = the plain instances."""

from __future__ import annotations

import numpy as np
import pytest
from disagg_toy_cost import FIXED, ToyStepCost, config, toy_factory

from cosim.serving.instance import Instance
from cosim.serving.simulation import prepare, run_simulation
from cosim.serving.two_batch import TwoBatchInstance, split_plan
from cosim.timeline import ep_pipeline, schedule_pipeline, shared_chain_makespan

MS = 1e-3
# attention a0 + a1 * tokens, FFN f0 + f1 * tokens per rank (whole stack), no context term
TOY = ToyStepCost(a0=2 * MS, a1=0.005 * MS, f0=4 * MS, f1=0.01 * MS)
LOAD = [*FIXED, "workload.num_requests=24", "workload.arrival.users=8",
        "workload.output_tokens.mean=32"]
AB = ["deployment.comm.model=alpha_beta", "topology.num_nodes=2"]


def run(extra: list[str]):
    cfg = config([*LOAD, *extra])
    return run_simulation(cfg, step_cost_factory=toy_factory(TOY))


def test_shared_chain_makespan_is_the_timeline_schedule_of_the_ep_pipeline():
    rng = np.random.default_rng(3)
    for _ in range(200):
        L = int(rng.integers(1, 9))
        t = rng.exponential(1.0, size=(4, 2)) * (rng.random((4, 2)) > 0.2)
        sched = schedule_pipeline(ep_pipeline(L, 2, t[0][None], t[1][None], t[2][None], t[3][None]))
        assert shared_chain_makespan(L, t.tolist(), [0, 1, 0, 1]) == sched.makespan


def test_split_plan_keeps_every_token_and_context():
    for plan in [(7, 700, 0, 0, 0), (1, 50, 0, 0, 0), (0, 0, 513, 900, 1), (4, 40, 10, 300, 3)]:
        a, b = split_plan(plan)
        assert a[0] + b[0] == plan[0] and a[1] + b[1] == plan[1] and a[2] + b[2] == plan[2]
        assert a[0] + a[2] >= b[0] + b[2]  # the first half takes the odd token
        for h in (a, b):
            assert (h[4] >= 1) == (h[2] >= 1) and h[4] <= h[2]


def test_overlap_off_builds_todays_instances_and_results():
    default = run([])
    explicit = run(["deployment.overlap=none"])
    dep, _, _ = prepare(config([*LOAD, "deployment.overlap=none"]), toy_factory(TOY))
    assert {type(i) for i in dep.instances} == {Instance}  # the unchanged code path
    assert default.iterations.equals(explicit.iterations)
    assert default.requests.equals(explicit.requests)
    assert "two_batch_overlap" not in default.summary["deployment"]


def test_free_communication_iteration_is_the_two_halves_compute():
    # dp = 8 ranks, comm free: an overlapped iteration is compute(h0) + compute(h1) on the
    # compute stream = max-rank attention of each half + FFN of each half's tokens; with the
    # toy cost and decode-only batches of n tokens (split n0 = ceil(n/2), n1 per rank) that is
    # 2 (a0 + f0) + a1 (max rank tokens of both halves) + f1 (ceil(T0/8) + ceil(T1/8)).
    out = run(["deployment.overlap=two_batch", "deployment.comm.model=none"])
    it = out.iterations
    assert (it.comm_s == 0).all()
    assert np.allclose(it.duration_s, it.compute_s, rtol=0, atol=1e-15)
    assert out.summary["deployment"]["two_batch_overlap"]["overlapped_iterations"] > 0
    dep, _, _ = prepare(config([*LOAD, "deployment.overlap=two_batch",
                                "deployment.comm.model=none"]), toy_factory(TOY))
    inst = dep.instances[0]
    assert isinstance(inst, TwoBatchInstance)
    h0 = (0.7 * MS, 0.0, 1.1 * MS, 0.0)
    h1 = (0.5 * MS, 0.0, 0.9 * MS, 0.0)
    total, free = inst.iteration_time(h0, h1)
    assert total == free == pytest.approx(sum(h0) + sum(h1), rel=1e-12)


def test_dp1_decode_iteration_with_free_comm_is_two_toy_steps():
    # one attention rank (tp = 8, dp = 1): a decode-only iteration of n >= 2 requests costs
    # cost(ceil(n/2)) + cost(floor(n/2)) = 2 (a0 + f0) + (a1 + f1) n exactly
    out = run(["deployment.overlap=two_batch", "deployment.comm.model=none",
               "deployment.layout.tp=8", "deployment.layout.dp=1"])
    it = out.iterations
    dec = it[(it.prefill_tokens == 0) & (it.decode_requests >= 2)]
    assert len(dec) > 10
    want = 2 * (TOY.a0 + TOY.f0) + (TOY.a1 + TOY.f1) * dec.decode_requests
    assert np.allclose(dec.duration_s, want, rtol=1e-12, atol=0)
    one = it[(it.prefill_tokens == 0) & (it.decode_requests == 1)]  # cannot split: plain
    assert np.allclose(one.duration_s, TOY.a0 + TOY.f0 + TOY.a1 + TOY.f1, rtol=1e-12, atol=0)


def test_overlap_is_never_slower_than_compute_plus_comm_of_the_halves():
    dep, _, _ = prepare(config([*LOAD, "deployment.overlap=two_batch"]), toy_factory(TOY))
    inst = dep.instances[0]
    rng = np.random.default_rng(5)
    for _ in range(300):
        h0, h1 = (tuple(x) for x in rng.exponential(MS, size=(2, 4)))
        total, free = inst.iteration_time(h0, h1)
        assert total <= sum(h0) + sum(h1) * (1 + 1e-12)
        assert free == pytest.approx(h0[0] + h0[2] + h1[0] + h1[2], rel=1e-12)
        assert total >= max(free, h0[1] + h0[3] + h1[1] + h1[3]) * (1 - 1e-12)


def test_overlap_hides_ep_communication_across_servers():
    # EP16 over two servers (NIC-bound dispatch/combine): the exposed share of iteration time
    # drops with two-batch overlap, and every row is compute + exposed comm
    lay = ["deployment.layout.dp=16", "deployment.layout.ep=16"]
    plain = run([*AB, *lay])
    tbo = run([*AB, *lay, "deployment.overlap=two_batch"])
    it = tbo.iterations
    assert (it.comm_s >= -1e-15).all()
    assert np.allclose(it.duration_s, it.compute_s + it.comm_s, rtol=1e-12, atol=0)
    assert tbo.summary["comm_exposed_fraction"] < plain.summary["comm_exposed_fraction"]


def test_pd_instances_overlap_too():
    out = run(["deployment=pd", "deployment.overlap=two_batch", *AB])
    d = out.summary["deployment"]["two_batch_overlap"]
    assert d["instances"] == 2 and d["overlapped_iterations"] > 0
    assert out.summary["requests_completed"] == 24


def test_fabric_lookups_are_counted_once_per_half():
    # every half asks the fabric for its dispatch + combine once (the stage split reuses that
    # answer): lookups = 2 x (2 per split iteration + 1 per unsplit one)
    out = run(["deployment.overlap=two_batch", "network=analytical", "network.cache.enabled=false",
               "topology.num_nodes=2", "deployment.layout.dp=16", "deployment.layout.ep=16"])
    d = out.summary["deployment"]["two_batch_overlap"]
    calls = 2 * d["overlapped_iterations"] + (d["iterations"] - d["overlapped_iterations"])
    assert out.summary["network_lookups"] == 2 * calls
