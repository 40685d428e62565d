"""AFD / EP layer pipelines against their closed forms (docs/deployments/afd.md)."""

import numpy as np
import pytest

from cosim.timeline import (
    AFD_STAGES,
    EP_STAGES,
    afd_comm_hidden,
    afd_exposed_comm,
    afd_iteration_time,
    afd_pipeline,
    ep_pipeline,
    layered_pipeline,
    megascale_min_micro_batches,
    schedule,
    schedule_pipeline,
)

US = 1e-6


@pytest.mark.parametrize("m", [1, 2, 3, 4, 6])
@pytest.mark.parametrize("ta,tf", [(100 * US, 100 * US), (100 * US, 130 * US), (140 * US, 90 * US)])
def test_free_comm_iteration_is_ping_pong_formula(m, ta, tf):
    L = 58  # DeepSeek-V3's MoE layers
    sched = schedule_pipeline(afd_pipeline(L, m, ta, 0.0, tf, 0.0))
    if m == 1:
        expected = L * (ta + tf)  # nothing to overlap with
    else:
        # steady state: the slower group works without pause for L*m micro-batch slots;
        # fill: the first micro-batch's faster stage (or drain: the last one's) is not hidden
        expected = L * m * max(ta, tf) + min(ta, tf)
    assert sched.makespan == pytest.approx(expected, rel=1e-12)
    assert sched.makespan == pytest.approx(afd_iteration_time(L, m, ta, tf), rel=1e-12)


def test_comm_hidden_at_megascale_bound_and_exposed_below_it():
    L, tp, tc = 20, 100 * US, 50 * US
    m_min = megascale_min_micro_batches(tc, tp)  # 2 * (1 + 0.5) = 3
    assert m_min == pytest.approx(3.0)
    for m in (3, 4, 5):
        assert afd_comm_hidden(m, tp, tp, tc, tc)
        t = schedule_pipeline(afd_pipeline(L, m, tp, tc, tp, tc)).makespan
        free = schedule_pipeline(afd_pipeline(L, m, tp, 0.0, tp, 0.0)).makespan
        # hidden: per-layer period m*tp unchanged; only the fill/drain transfers show
        assert t - free == pytest.approx(2 * tc, rel=1e-9)
        assert afd_exposed_comm(L, m, tp, tp, tc, tc) == pytest.approx(2 * tc, rel=1e-9)
    m = 2  # below the bound: each micro-batch's round trip 2tp + 2tc > m*tp sets the period
    assert not afd_comm_hidden(m, tp, tp, tc, tc)
    t = schedule_pipeline(afd_pipeline(L, m, tp, tc, tp, tc)).makespan
    free = schedule_pipeline(afd_pipeline(L, m, tp, 0.0, tp, 0.0)).makespan
    round_trip = 2 * tp + 2 * tc
    assert t == pytest.approx(L * round_trip + (m - 1) * tp, rel=1e-12)
    assert t - free == pytest.approx(afd_exposed_comm(L, m, tp, tp, tc, tc), rel=1e-12)
    # exposed in every layer (the round trip exceeds m*tp), not only at the fill
    assert t - free == pytest.approx(L * (round_trip - m * tp), rel=1e-9)


@pytest.mark.parametrize("m", [2, 3, 4])
def test_slow_link_exposes_comm_by_formula(m):
    L, ta, tf = 30, 100 * US, 110 * US
    t_fast = schedule_pipeline(afd_pipeline(L, m, ta, 10 * US, tf, 10 * US)).makespan
    t_slow_link = 300 * US  # A2F link made slow: the link channel is now the bottleneck
    t_slow = schedule_pipeline(afd_pipeline(L, m, ta, t_slow_link, tf, 10 * US)).makespan
    s = ta + tf + t_slow_link + 10 * US
    expected = max(s + (L * m - 1) * t_slow_link, L * s + (m - 1) * t_slow_link)
    assert t_slow == pytest.approx(expected, rel=1e-12)
    assert t_slow - t_fast == pytest.approx(
        afd_exposed_comm(L, m, ta, tf, t_slow_link, 10 * US)
        - afd_exposed_comm(L, m, ta, tf, 10 * US, 10 * US), rel=1e-9)
    assert not afd_comm_hidden(m, ta, tf, t_slow_link, 10 * US)


def test_closed_form_matches_schedule_on_random_pipelines():
    rng = np.random.default_rng(7)
    for _ in range(300):
        L, m = int(rng.integers(1, 10)), int(rng.integers(1, 7))
        t = rng.uniform(0, 1e-4, 4) * (rng.uniform(size=4) < 0.85)
        got = schedule_pipeline(afd_pipeline(L, m, t[0], t[1], t[2], t[3])).makespan
        assert got == pytest.approx(afd_iteration_time(L, m, t[0], t[2], t[1], t[3]), rel=1e-9, abs=1e-15)


def test_fast_schedule_equals_generic_list_schedule():
    rng = np.random.default_rng(3)
    for _ in range(200):
        L, m = int(rng.integers(1, 12)), int(rng.integers(1, 5))
        base = rng.uniform(0, 1e-4, (1, 4, m)) * (rng.uniform(size=(1, 4, m)) < 0.9)
        d = np.repeat(base, L, axis=0)
        d[: int(rng.integers(0, 3)), 1:, :] = 0.0  # leading dense layers: attention only
        if rng.uniform() < 0.5:
            d[-1] *= rng.uniform()
        for stages in (AFD_STAGES, EP_STAGES):
            p = layered_pipeline(stages, d)
            fast, ref = schedule_pipeline(p), schedule(p.graph())
            np.testing.assert_allclose(fast.start, ref.start, rtol=1e-12, atol=1e-15)
            np.testing.assert_allclose(fast.end, ref.end, rtol=1e-12, atol=1e-15)
            assert fast.busy_s == pytest.approx(ref.busy_s)


def test_dense_layers_do_not_wait_for_ffn_group():
    # 3 dense layers run attention+MLP on the attention GPUs only: no A2F/FFN/F2A tasks
    L, m, ta, tf = 10, 2, 100 * US, 100 * US
    d = np.zeros((L, 4, m))
    d[:, 0, :] = ta
    d[3:, 2, :] = tf
    sched = schedule_pipeline(layered_pipeline(AFD_STAGES, d))
    dense = 3 * m * ta  # attention group busy with dense layers, no bubbles
    assert sched.makespan == pytest.approx(dense + afd_iteration_time(L - 3, m, ta, tf), rel=1e-12)


def test_ep_without_overlap_is_sum_of_stages_and_tbo_hides_comm():
    L, ta, td, te, tc = 61, 80 * US, 30 * US, 90 * US, 40 * US
    serial = schedule_pipeline(ep_pipeline(L, 1, ta, td, te, tc)).makespan
    assert serial == pytest.approx(L * (ta + td + te + tc), rel=1e-12)
    # two-batch overlap: two half batches; compute stream does A0 A1 E0 E1 per layer, the
    # comm stream D0 D1 C0 C1; with comm shorter than compute only fill/drain is exposed
    tbo = schedule_pipeline(ep_pipeline(L, 2, ta / 2, td / 2, te / 2, tc / 2))
    assert tbo.makespan < serial
    assert tbo.busy_fraction("gpu") > 0.9
    assert tbo.makespan >= L * (ta + te)  # never faster than the compute alone


def test_busy_fractions_name_the_bottleneck():
    sched = schedule_pipeline(afd_pipeline(40, 3, 80 * US, 5 * US, 120 * US, 5 * US))
    assert sched.busy_fraction("ffn") > 0.95
    assert sched.busy_fraction("attention") == pytest.approx(80 / 120 * sched.busy_fraction("ffn"), rel=1e-9)


def test_bad_durations_name_the_field():
    with pytest.raises(ValueError, match="durations"):
        layered_pipeline(AFD_STAGES, np.full((2, 4, 2), -1.0))
    with pytest.raises(ValueError, match="durations"):
        layered_pipeline(AFD_STAGES, np.zeros((2, 3, 2)))
