"""The hot path of the AFD iteration (AFDTimer.phase_totals, layer_stage_sum, chain_makespan's
local-state loop) gives the values of the array path bit for bit."""

import numpy as np

from cosim.serving.deployments.afd import layer_stage_sum
from cosim.timeline import afd_pipeline, chain_makespan, schedule_pipeline


def test_layer_stage_sum_is_numpys_block_sum_bit_for_bit():
    rng = np.random.default_rng(11)
    for _ in range(3000):
        m, L = int(rng.integers(1, 8)), int(rng.integers(1, 300))
        if 4 * L * m > 8192:
            continue
        row = (rng.random(m) * 10.0 ** rng.uniform(-7, -2, m)).tolist()
        if rng.random() < 0.2:
            row[int(rng.integers(m))] = 0.0
        d = np.zeros((L, 4, m))
        d[:, 0, :] = row
        assert layer_stage_sum(L, row) == float(d.sum(axis=(0, 2))[0])


def test_chain_makespan_with_idle_parts_matches_schedule_pipeline():
    """Stages with work in some micro-batches only (a part without tokens) and stages
    without any work (free communication) take chain_makespan's two loops."""
    rng = np.random.default_rng(5)
    for i in range(300):
        m, L = int(rng.integers(1, 5)), int(rng.integers(1, 62))
        ta, a2f, tf, f2a = (rng.random(m) * 1e-3 for _ in range(4))
        ta[rng.random(m) < 0.3] = 0.0
        a2f[rng.random(m) < 0.3] = 0.0
        if i % 4 == 0:
            a2f[:] = 0.0
            f2a[:] = 0.0
        sched = schedule_pipeline(afd_pipeline(L, m, ta[None, :], a2f[None, :], tf[None, :],
                                               f2a[None, :]))
        got = chain_makespan(L, [ta.tolist(), a2f.tolist(), tf.tolist(), f2a.tolist()])
        assert got == sched.makespan


class _Timer:
    mode = "phase"
    backend = None
    free = False
    recorder = None


class _Traffic:
    """Isolated A2F / F2A times as a function of the tokens per GPU (no network)."""

    timer = _Timer()

    @staticmethod
    def times(t: int) -> tuple[float, float]:
        return (1e-6 * t + 3e-6, 0.8e-6 * t + 2e-6) if t > 0 else (0.0, 0.0)


def test_phase_totals_are_iterations_values():
    from cosim.serving.deployments.afd import AFDTimer

    rng = np.random.default_rng(3)
    for i in range(300):
        m, L = int(rng.integers(1, 5)), int(rng.choice([1, 3, 61]))
        ta = rng.random(m) * 1e-4
        tf = rng.random(m) * 1e-4
        tok = rng.integers(1, 200, m)
        if i % 3 == 0:  # identical micro-batches: the closed form
            ta[:], tf[:], tok[:] = ta[0], tf[0], tok[0]
        ref = AFDTimer(L, _Traffic(), None).iteration(ta, tf, tok)
        got = AFDTimer(L, _Traffic(), None).phase_totals(ta.tolist(), tf.tolist(), tok.tolist())
        assert got == (ref.total_s, ref.free_s, ref.attention_busy_s, ref.ffn_busy_s)
