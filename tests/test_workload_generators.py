"""Synthetic workloads, length distributions, arrival processes and the closed-loop driver."""

from __future__ import annotations

import numpy as np
import pytest

from cosim.api import compose_config
from cosim.config import to_object
from cosim.config.workload import ArrivalConfig, LengthConfig, WorkloadConfig
from cosim.errors import ConfigError
from cosim.workload.arrivals import WorkloadDriver, session_start_times
from cosim.workload.block_hashes import BlockHasher
from cosim.workload.build import build_workload
from cosim.workload.lengths import sample_lengths
from cosim.workload.synthetic import generate_synthetic

CTX = 163_840


def workload(name: str, *over: str) -> WorkloadConfig:
    cfg = to_object(compose_config([f"workload={name}", *over]))
    return cfg.workload


@pytest.mark.parametrize("dist", ["lognormal", "gamma", "uniform"])
def test_lengths_have_the_configured_mean_and_spread(dist):
    rng = np.random.default_rng(0)
    x = sample_lengths(LengthConfig(mean=1000, cv=0.5, dist=dist), 200_000, rng)
    assert x.dtype == np.int64 and x.min() >= 0
    assert x.mean() == pytest.approx(1000, rel=0.01)
    assert x.std() / x.mean() == pytest.approx(0.5, rel=0.03)


def test_lengths_clip_and_constant():
    rng = np.random.default_rng(0)
    assert (sample_lengths(LengthConfig(mean=64, cv=0), 5, rng) == 64).all()
    x = sample_lengths(LengthConfig(mean=100, cv=1.0, min=10, max=150), 10_000, rng)
    assert x.min() >= 10 and x.max() <= 150


@pytest.mark.parametrize("name,prefix,new,out", [("chat", 4096, 512, 256),
                                                 ("coding", 2048, 4096, 1024)])
def test_chat_and_coding_follow_the_paper_means(name, prefix, new, out):
    t = generate_synthetic(workload(name, "workload.num_requests=4000"), CTX,
                           np.random.default_rng(1))
    assert len(t) == 4000
    assert t.input_tokens.mean() == pytest.approx(new, rel=0.05)
    assert t.output_tokens.mean() == pytest.approx(out, rel=0.05)
    # the reused prefix comes from a pool of shared prefixes whose lengths spread around the mean
    pools = np.unique(t.pool_tokens)
    assert 10 < pools.size <= 32
    assert pools.mean() == pytest.approx(prefix, rel=0.2)
    assert (t.prefix_tokens == t.pool_tokens).all()


def test_agentic_sessions_grow_their_context_turn_by_turn():
    t = generate_synthetic(workload("agentic", "workload.num_requests=300"), CTX,
                           np.random.default_rng(2))
    later = np.flatnonzero(t.turn > 0)
    assert later.size > 100
    prev = later - 1
    assert (t.session[prev] == t.session[later]).all()
    # turn k reuses everything of turn k-1: its prompt and its output
    assert (t.prefix_tokens[later] == t.prompt_tokens[prev] + t.output_tokens[prev]).all()
    assert (t.prompt_tokens + t.output_tokens <= CTX).all()
    assert t.output_tokens.mean() > 4000  # ~8k output per turn (clipped near the window)
    # block hashes of the later turn start with the earlier turn's context blocks
    h = BlockHasher(t, 64)
    i = int(later[0])
    n = int(t.prompt_tokens[i - 1] + t.output_tokens[i - 1]) // 64
    assert h.hashes(i, 0, n) == h.hashes(i - 1, 0, n)


def test_fixed_is_exact():
    t = generate_synthetic(workload("fixed", "workload.num_requests=50",
                                    "workload.input_tokens.mean=2048",
                                    "workload.output_tokens.mean=128"), CTX,
                           np.random.default_rng(0))
    assert (t.prompt_tokens == 2048).all() and (t.output_tokens == 128).all()


def test_isl_larger_than_the_context_names_the_field():
    w = workload("fixed", "workload.input_tokens.mean=200000")
    with pytest.raises(ConfigError) as e:
        generate_synthetic(w, CTX, np.random.default_rng(0))
    assert e.value.field == "workload.input_tokens.mean"
    w = workload("fixed", "workload.input_tokens.mean=1000", "workload.output_tokens.mean=163000")
    with pytest.raises(ConfigError) as e:
        generate_synthetic(w, CTX, np.random.default_rng(0))
    assert e.value.field == "workload.output_tokens.mean"


@pytest.mark.parametrize("field,value", [("workload.arrival.rate_per_s", -1.0),
                                         ("workload.num_requests", 0),
                                         ("workload.output_tokens.cv", -0.1),
                                         ("workload.input_tokens.dist", "zipf")])
def test_bad_values_name_their_field(field, value):
    w = workload("chat", f"{field}={value}")
    with pytest.raises(ConfigError) as e:
        w.validate()
    assert e.value.field == field


def test_poisson_and_gamma_arrivals():
    rng = np.random.default_rng(3)
    t = session_start_times(ArrivalConfig(process="poisson", rate_per_s=50.0), 100_000, rng)
    gaps = np.diff(t)
    assert t[0] == 0 and (gaps >= 0).all()
    assert 1 / gaps.mean() == pytest.approx(50, rel=0.02)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, rel=0.03)
    g = np.diff(session_start_times(ArrivalConfig(process="gamma", rate_per_s=50.0, cv=3.0),
                                    100_000, rng))
    assert 1 / g.mean() == pytest.approx(50, rel=0.05)
    assert g.std() / g.mean() == pytest.approx(3.0, rel=0.1)


def test_closed_loop_keeps_n_users_busy_and_sessions_in_order():
    w = workload("agentic", "workload.num_requests=60", "workload.arrival.users=4",
                 "workload.arrival.think_time_s=2.0")
    t = build_workload(w, CTX, seed=0)
    d = WorkloadDriver(t, w.arrival)
    times, rids = d.initial()
    assert rids.tolist() == t.session_first_rows()[:4].tolist() and (times == 0).all()
    nxt = d.after_finish(int(rids[0]), 10.0)
    assert nxt is not None
    when, rid = nxt
    if t.session[rid] == t.session[rids[0]]:  # next turn of the same session
        assert rid == rids[0] + 1
    else:  # or the next session, once the first one had a single turn
        assert rid == t.session_first_rows()[4]
    assert when == pytest.approx(10.0 + t.think_s[rid])


def test_same_seed_same_requests():
    w = workload("agentic", "workload.num_requests=100")
    a, b = build_workload(w, CTX, 7), build_workload(w, CTX, 7)
    c = build_workload(w, CTX, 8)
    assert np.array_equal(a.output_tokens, b.output_tokens)
    assert np.array_equal(a.prompt_tokens, b.prompt_tokens)
    assert not np.array_equal(a.output_tokens, c.output_tokens)


def test_closed_loop_never_has_more_requests_in_flight_than_users():
    from test_serving_system import toy

    import cosim

    res = cosim.simulate(["workload=fixed", "workload.num_requests=200", "workload.arrival.users=16",
                          "workload.input_tokens.mean=256", "workload.output_tokens.mean=32",
                          "workload.arrival.think_time_s=0.05", "deployment.comm.model=none",
                          "output.progress=false"], step_cost_factory=toy)
    req = res.requests
    t = np.concatenate([req.arrival_s, req.finish_s])
    step = np.concatenate([np.ones(len(req)), -np.ones(len(req))])
    order = np.lexsort((step, t))  # at equal times a finish comes before the next arrival
    in_flight = np.cumsum(step[order])
    assert in_flight.max() == 16 and in_flight.min() >= 0
    assert (req.arrival_s == 0).sum() == 16  # the users start together; then one per finish


def test_uniform_integers_is_benchmark_serving_random_range():
    """`--random-range-ratio 0.8` lengths: every integer of [int(0.8 L), L] equally likely."""
    import numpy as np

    from cosim.config.workload import LengthConfig
    from cosim.workload.lengths import sample_lengths, uniform_integers

    fields = uniform_integers(819, 1024)
    cfg = LengthConfig(**fields)
    cfg.validate("workload.input_tokens")
    x = sample_lengths(cfg, 412_000, np.random.default_rng(3))
    assert x.min() == 819 and x.max() == 1024
    counts = np.bincount(x - 819, minlength=206)
    # 2,000 expected per value; the binomial std is ~45, so 5 sigma never fails by chance
    assert len(counts) == 206 and np.all(np.abs(counts - 2000) < 225)
    assert fields["mean"] == 921.5
    one = sample_lengths(LengthConfig(**uniform_integers(7, 7)), 100, np.random.default_rng(0))
    assert set(one.tolist()) == {7}
