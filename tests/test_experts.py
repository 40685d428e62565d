import numpy as np
import pytest

from cosim.errors import ConfigError
from cosim.experts import expected_touched, expected_touched_per_gpu, expert_load, place_experts

PROFILE = "traces/expert_load/synthetic_256x4.csv"


@pytest.mark.parametrize("E,N,R", [(256, 126, 0), (256, 120, 0), (256, 24, 0), (256, 32, 32),
                                   (256, 120, 8), (8, 3, 2), (4, 8, 0)])
def test_every_expert_placed(E, N, R):
    pl = place_experts(E, N, expert_load("zipf", E, 1.0), R)
    held = [e for ex in pl.gpu_experts for e in ex]
    assert set(held) == set(range(E)) and len(held) == E + R
    assert max(len(x) for x in pl.gpu_experts) - min(len(x) for x in pl.gpu_experts) <= 1
    assert abs(sum(pl.gpu_load) - 1) < 1e-9
    for ex in pl.gpu_experts:
        assert len(set(ex)) == len(ex)


def test_divisible_balanced_is_todays_contiguous_split():
    pl = place_experts(256, 32)
    assert pl.gpu_experts[0] == tuple(range(8)) and pl.experts_per_gpu_max == 8
    assert pl.imbalance == pytest.approx(1.0)


def test_uneven_split():
    pl = place_experts(256, 24)
    sizes = [len(x) for x in pl.gpu_experts]
    assert sizes.count(11) == 16 and sizes.count(10) == 8


def test_balancer_hand_computed():
    # load .4 .3 .2 .1, 2 GPUs, 2 redundant: replicate e0 then e1; pack heaviest first
    pl = place_experts(4, 2, np.array([0.4, 0.3, 0.2, 0.1]), 2)
    assert pl.replicas == (2, 2, 1, 1)
    assert pl.gpu_experts == ((0, 1, 2), (0, 1, 3))
    assert pl.gpu_load == pytest.approx((0.55, 0.45))
    assert max(place_experts(4, 2, np.array([0.4, 0.3, 0.2, 0.1])).gpu_load) == pytest.approx(0.7)


def test_redundant_go_to_hottest_and_reduce_max_load():
    w = expert_load("profile", 256, profile=PROFILE)
    base = place_experts(256, 32, w)
    red = place_experts(256, 32, w, 32)
    tot = w.sum(axis=0)
    hottest = set(np.argsort(-tot)[:32])
    replicated = {e for e, r in enumerate(red.replicas) if r > 1}
    assert replicated <= hottest and len(replicated) > 0
    assert max(red.gpu_load) < max(base.gpu_load)


def test_bad_inputs_name_field(tmp_path):
    with pytest.raises(ConfigError, match="num_redundant_experts"):
        place_experts(8, 2, None, 9)
    bad = tmp_path / "p.csv"
    bad.write_text("1,2,3\n")
    with pytest.raises(ConfigError, match="expert_load_profile"):
        expert_load("profile", 8, profile=str(bad))


def test_touched_closed_form_and_bounds():
    rng = np.random.default_rng(1)
    E, k = 64, 4
    for T in (1, 2, 8, 32, 256):
        exp = expected_touched(T, k, np.full(E, 1 / E))
        assert exp == pytest.approx(E * (1 - (1 - k / E) ** T))
        assert exp <= E and exp <= T * k
        sims = [len({e for _ in range(T) for e in rng.choice(E, k, replace=False)})
                for _ in range(400)]
        assert np.mean(sims) == pytest.approx(exp, rel=0.05)
    skew = expected_touched(8, k, expert_load("zipf", E, 1.2)[0])
    assert skew < expected_touched(8, k, np.full(E, 1 / E))
    pl = place_experts(E, 8)
    per = expected_touched_per_gpu(8, k, np.full(E, 1 / E), pl)
    assert sum(per) == pytest.approx(expected_touched(8, k, np.full(E, 1 / E)))


@pytest.mark.parametrize("E,N", [(256, 8), (256, 32), (256, 256), (64, 16), (8, 1)])
def test_traffic_placement_golden_when_ep_divides(E, N):
    # today's (pre-issue-9) placement: experts split evenly and contiguously
    from cosim.traffic.ep_alltoall import expert_placement
    gpus = np.arange(100, 100 + N)
    assert np.array_equal(expert_placement(E, gpus), np.repeat(gpus, E // N))
