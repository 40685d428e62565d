"""deployment.experts and compute.moe_weights wired into runs: pricing at the hottest GPU,
replicas in the traffic, memory, summary.json, bad input (docs/experts.md)."""

import json

import numpy as np
import pytest
from experts_reference_cases import CASES, REFERENCE, summary_of

from cosim.compute import ComputeModel, StepCostModel
from cosim.config.compute import ComputeConfig
from cosim.errors import ConfigError
from cosim.experts.group import expert_group
from cosim.experts.placement import place_experts
from cosim.model.forward import forward_operators
from cosim.model.layout import ParallelLayout
from cosim.serving.expert_layouts import ExpertLayouts, popularity_of
from cosim.traffic.ep_alltoall import ep_token_counts, pair_gpus
from cosim.traffic.expert_routing import route_tokens

PROFILE = "traces/expert_load/synthetic_256x4.csv"


@pytest.fixture(scope="module")
def dsv32():
    from cosim.api import compose_config
    from cosim.config import to_object
    from cosim.model.spec import ModelSpec

    cfg = to_object(compose_config(["model=deepseek_v32", "hardware=h200"]))
    return cfg, ModelSpec.from_config(cfg.model)


def _experts_cfg(**kw):
    from cosim.config.deployment import ExpertsConfig

    return ExpertsConfig(**kw)


def _on_keys_of(got, ref):
    """`got` restricted to the keys of `ref`, recursively."""
    if isinstance(ref, dict):
        return {k: _on_keys_of(got.get(k) if isinstance(got, dict) else None, v)
                for k, v in ref.items()}
    return got


@pytest.mark.parametrize("case", list(CASES))
def test_balanced_divisible_equals_before(case):
    """pd, pd_afd and a 128-expert model: bit for bit what the code before gave
    (chunked and afd: tests/test_des_fast_paths.py)."""
    ref = json.loads(REFERENCE.read_text())[case]
    got = summary_of(case)
    # keys added to summary.json after the reference (at any depth: additive reports such
    # as `experts` or a deployment's cost by role) are not results: compare the reference's
    assert _on_keys_of(got, ref) == ref
    assert all(r["imbalance"] == 1.0 for r in got["experts"].values())


def test_even_split_is_not_attached(dsv32):
    _, spec = dsv32
    ex = ExpertLayouts(spec, _experts_cfg())
    lay = ParallelLayout(dp=8, ep=8)
    assert ex(lay) is lay and ex(lay).experts is None
    assert ex.summary()["ep8"]["imbalance"] == 1.0


def _moe_cost(spec, cfg, layout, tokens, weights="all"):
    comp = ComputeConfig(moe_weights=weights)
    model = StepCostModel(spec, ComputeModel(cfg.hardware, comp), layout)
    return model.ffn_cost(tokens)


def test_forced_balanced_group_prices_like_the_even_split(dsv32):
    """The hottest-GPU query at an even balanced placement is the even split's query."""
    cfg, spec = dsv32
    lay = ParallelLayout(dp=8, ep=8)
    forced = ParallelLayout(dp=8, ep=8, experts=expert_group(
        256, 8, np.full((1, 256), 1 / 256), load="balanced"))
    for t in (1, 16, 64, 512):
        a = _moe_cost(spec, cfg, lay, t).ffn_s
        b = _moe_cost(spec, cfg, forced, t).ffn_s
        assert b == pytest.approx(a, rel=1e-12)


def test_uneven_and_skewed_hottest_gpu_costs_more(dsv32):
    cfg, spec = dsv32
    ex = ExpertLayouts(spec, _experts_cfg())
    e24 = ex(ParallelLayout(dp=24, ep=24))
    g = e24.experts
    assert g.hot_experts == 11 and g.hot_share == pytest.approx(11 / 256)
    # the EP24 step is priced at the GPU with 11 experts, not the mean 10.67
    ops = [o for o in forward_operators(spec, "generation", 64, 2048, layout=e24)
           if o.name == "moe.experts"]
    assert ops[0].dims["hot_experts"] == 11
    skew = ExpertLayouts(spec, _experts_cfg(load="zipf", zipf_exponent=1.0))
    z = skew(ParallelLayout(dp=32, ep=32))
    even = ParallelLayout(dp=32, ep=32)
    assert z.experts.imbalance > 1.5
    assert _moe_cost(spec, cfg, z, 256).ffn_s > _moe_cost(spec, cfg, even, 256).ffn_s


def test_redundant_experts_lower_the_hottest_gpu_and_take_memory(dsv32):
    """32 redundant experts on EP32 (the DeepSeek-V3 prefill): the hottest GPU's load falls
    on the skewed profile, its step gets cheaper, each GPU holds 9 experts."""
    from cosim.serving.memory_plan import plan_memory

    cfg, spec = dsv32
    base = ExpertLayouts(spec, _experts_cfg(load="profile", profile=PROFILE))
    red = ExpertLayouts(spec, _experts_cfg(load="profile", profile=PROFILE, num_redundant=32))
    lay = ParallelLayout(dp=32, ep=32)
    b, r = base(lay), red(lay)
    assert r.experts.hot_share < b.experts.hot_share
    assert r.experts.hot_experts == 9
    assert _moe_cost(spec, cfg, r, 4096).ffn_s < _moe_cost(spec, cfg, b, 4096).ffn_s
    d = cfg.deployment
    pb = plan_memory(spec, b, cfg.hardware, d.memory, d.scheduler, 1)
    pr = plan_memory(spec, r, cfg.hardware, d.memory, d.scheduler, 1)
    assert pr.weight_bytes > pb.weight_bytes


def test_touched_weights_lower_small_decode_batches_only(dsv32):
    cfg, spec = dsv32
    lay = ParallelLayout(dp=8, ep=8)
    small_all = _moe_cost(spec, cfg, lay, 2, "all")  # 16 tokens into the MoE
    small_t = _moe_cost(spec, cfg, lay, 2, "touched")
    assert small_t.ffn_s < small_all.ffn_s
    big_all = _moe_cost(spec, cfg, lay, 1024, "all")
    big_t = _moe_cost(spec, cfg, lay, 1024, "touched")
    assert big_t.ffn_s == pytest.approx(big_all.ffn_s, rel=1e-6)
    m = ComputeModel(cfg.hardware, ComputeConfig(moe_weights="touched"))
    op = next(o for o in forward_operators(spec, "generation", 4, 2048, layout=lay)
              if o.name == "moe.experts")
    lat = m.latency(op, "generation")
    assert any(f.startswith("touched") for f in lat.flags) and lat.source != "measured"


def test_replicas_receive_their_experts_traffic():
    E, N, k = 16, 4, 2
    w = np.array([8.0] + [1.0] * 15)
    pl = place_experts(E, N, w, num_redundant=2)
    gpus = np.arange(10, 14)
    routing = route_tokens(4000, E, k, seed=3, popularity=w)
    token_gpu = np.repeat(gpus, 1000)
    pg = pair_gpus(routing, token_gpu, pl, gpus)
    for e in range(E):
        holders = {int(gpus[g]) for g in range(N) if e in pl.gpu_experts[g]}
        assert set(np.unique(pg[routing == e]).tolist()) <= holders
    hot = {int(gpus[g]) for g in range(N) if 0 in pl.gpu_experts[g]}
    assert pl.replicas[0] == 3 and set(np.unique(pg[routing == 0]).tolist()) == hot
    src, dst, tok, _ = ep_token_counts(routing, token_gpu, None, 8, "expert", pair_gpu=pg)
    assert tok.sum() == int((pg != token_gpu[:, None]).sum())


def test_run_reports_imbalance_and_uses_replicas():
    from cosim.api import compose_config
    from cosim.serving.simulation import run_simulation

    base = ["model=deepseek_v32", "hardware=b200", "topology=dgx_b200_ib", "workload=chat",
            "workload.num_requests=40", "workload.arrival.rate_per_s=40", "network=analytical",
            "network.cache.enabled=false", "output.progress=false", "deployment=chunked",
            "topology.num_nodes=3", "deployment.layout.dp=24", "deployment.layout.ep=24",
            "deployment.experts.load=profile", f"deployment.experts.profile={PROFILE}",
            # the hottest GPU's pair share alone (touched experts, the default, also counts
            # the extra replica each GPU then holds: tests/test_experts_wiring's touched tests)
            "compute.moe_weights=all"]
    a = run_simulation(compose_config(base)).summary
    b = run_simulation(compose_config([*base, "deployment.experts.num_redundant=24"])).summary
    ea, eb = a["experts"]["ep24"], b["experts"]["ep24"]
    assert ea["experts_per_gpu_max"] == 11 and eb["experts_per_gpu_max"] == 12
    assert eb["imbalance"] < ea["imbalance"]
    assert b["tpot_ms_p50"] < a["tpot_ms_p50"]


def test_bad_input_names_the_field(dsv32, tmp_path):
    _, spec = dsv32
    with pytest.raises(ConfigError, match="deployment.experts.num_redundant"):
        ExpertLayouts(spec, _experts_cfg(num_redundant=256 * 7 + 1))(ParallelLayout(dp=8, ep=8))
    bad = tmp_path / "p.csv"
    bad.write_text("1,2,3\n")
    with pytest.raises(ConfigError, match=r"deployment.experts.profile.*3 expert counts"):
        popularity_of(_experts_cfg(load="profile", profile=str(bad)), 256)
    for kw, field in (({"load": "uniform"}, "load"), ({"num_redundant": -1}, "num_redundant"),
                      ({"load": "profile"}, "profile"), ({"zipf_exponent": -1}, "zipf_exponent")):
        with pytest.raises(ConfigError, match=f"deployment.experts.{field}"):
            _experts_cfg(**kw).validate("deployment.experts")
    with pytest.raises(ConfigError, match="compute.moe_weights"):
        ComputeConfig(moe_weights="some").validate()


def test_bad_input_cli_exit_code_2(tmp_path):
    import subprocess
    import sys

    bad = tmp_path / "p.csv"
    bad.write_text("1,2\n")
    r = subprocess.run([sys.executable, "-m", "cosim.cli", "deployment.experts.load=profile",
                        f"deployment.experts.profile={bad}", "output.progress=false",
                        f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True)
    assert r.returncode == 2
    lines = [x for x in r.stderr.strip().splitlines() if x]
    assert len(lines) == 1 and "deployment.experts.profile" in lines[0]


def test_pair_shares_capped_at_one_over_topk():
    from cosim.experts import zipf_load
    from cosim.serving.expert_layouts import cap_shares

    w = zipf_load(256, 1.0)
    assert w.max() > 1 / 8  # Zipf s=1 gives the top expert more than a token can
    p = cap_shares(w, 8)
    assert p.sum() == pytest.approx(1.0) and p.max() <= 1 / 8 + 1e-12
    assert np.all(np.diff(p[1:]) <= 1e-15)  # order kept among the uncapped
    even = np.full(64, 1 / 64)
    assert np.array_equal(cap_shares(even, 8), even)


def test_hottest_gpu_touched_matches_random_routings_and_bounds():
    """ExpertGroup.touched (what the MoE op carries) against routings drawn by the traffic's
    router under the same popularity, replicas split per source as the traffic does."""
    E, N, k = 64, 8, 4
    rng = np.random.default_rng(5)
    w = rng.pareto(1.5, E) + 0.2
    from cosim.serving.expert_layouts import cap_shares

    pop = cap_shares(w, k)
    g = expert_group(E, N, pop[None, :], load="profile", num_redundant=8)
    hot = g._hot(g.layers[0])
    held = g.layers[0].gpu_experts[hot]
    gpus = np.arange(N)
    for T in (1, 4, 16, 64):
        exp = g.touched(T, k)
        assert exp <= len(held) and exp <= T * k
        seen = []
        for s in range(300):
            routing = route_tokens(T, E, k, seed=1, stream=s + 1, popularity=pop)
            # one token per draw from a random source: its replica choice is source-based
            src = rng.integers(0, N, size=T)
            pg = pair_gpus(routing, src, g.layers[0], gpus)
            seen.append(len({(int(e), int(d)) for e, d in zip(routing.ravel(), pg.ravel(),
                                                                strict=True) if d == hot}))
        # the closed form treats the k picks of a token as independent draws: within 5 %
        assert np.mean(seen) == pytest.approx(exp, rel=0.05, abs=0.05)


def test_estimate_prices_the_hottest_gpu():
    from hydra import compose, initialize_config_dir

    from cosim.apps.estimate import run_estimate
    from cosim.config import register_configs, to_object
    from cosim.paths import hydra_config_dir

    register_configs()

    def doc(*ov):
        with initialize_config_dir(config_dir=hydra_config_dir(), version_base="1.3"):
            c = compose(config_name="estimate", overrides=["ep=24", "dp=24", "batch=4",
                                                           "compute.moe_weights=all", *ov])
        return run_estimate(to_object(c))

    even, skew = doc(), doc("experts.load=zipf")
    moe = [next(o for o in d["ops"] if o["name"] == "moe.experts") for d in (even, skew)]
    assert even["experts"]["hottest_gpu_experts"] == 11 and skew["experts"]["imbalance"] > 2
    assert moe[1]["latency_s"] > moe[0]["latency_s"]


def test_a2f_copies_go_to_replica_holders():
    from cosim.traffic.m2n import m2n_flows

    E, N = 256, 126
    pop = popularity_of(_experts_cfg(load="profile", profile=PROFILE), E, 8)
    g = expert_group(E, N, pop, load="profile", num_redundant=122)
    att, ffn = np.arange(2), np.arange(2, 2 + N)
    fb = m2n_flows(att, ffn, 64, 100, topk=8, num_experts=E, experts=g)
    plain = m2n_flows(att, ffn, 64, 100, topk=8, num_experts=E)
    assert set(np.unique(fb.dst).tolist()) <= set(ffn.tolist())
    # one copy per (token, FFN GPU): never more than top-k copies of each token
    assert fb.size.sum() <= 2 * 64 * 8 * 100 and plain.size.sum() <= 2 * 64 * 8 * 100
    # per FFN GPU received bytes: the redundant placement evens out the profile's hot GPU
    def max_over_mean(f):
        per = np.bincount(f.dst - 2, weights=f.size, minlength=N)
        return per.max() / per.mean()
    skew_only = m2n_flows(att, ffn, 64, 100, topk=8, num_experts=E,
                          experts=expert_group(E, N, pop, load="profile"))
    assert max_over_mean(fb) < max_over_mean(skew_only)
