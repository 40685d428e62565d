"""AFD deployment: iteration times against the ping-pong closed form, memory plan per group."""

import numpy as np
import pytest
from disagg_toy_cost import FIXED, ToyStepCost, config, toy_factory

from cosim.model.spec import ModelSpec
from cosim.network.analytical import AnalyticalBackend
from cosim.network.topology import build_fabric
from cosim.serving.simulation import run_simulation
from cosim.timeline import afd_comm_hidden, afd_iteration_time, megascale_min_micro_batches
from cosim.traffic.ep_alltoall import token_bytes
from cosim.traffic.m2n import m2n_flows

MS = 1e-3
DP = 8  # attention-DP ranks of the default AFD unit


def afd_run(m: int, users: int, toy: ToyStepCost, extra: list[str]):
    cfg = config(["deployment=afd", f"deployment.micro_batches={m}",
                  *FIXED, f"workload.num_requests={users}", f"workload.arrival.users={users}",
                  "deployment.roles.attention.scheduler.kv_len_grid_tokens=0", *extra])
    return cfg, run_simulation(cfg, step_cost_factory=toy_factory(toy))


def decode_rows(out, users: int):
    it = out.iterations
    rows = it[(it.prefill_tokens == 0) & (it.decode_requests == users)]
    assert len(rows) >= 5
    return rows


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_decode_iteration_is_the_ping_pong_formula_with_free_comm(m):
    users = DP * 4 * 3  # 12 requests per attention rank: every m splits them evenly
    toy = ToyStepCost(a0=4 * MS, a1=0.05 * MS, f0=3 * MS, f1=0.2 * MS)
    cfg, out = afd_run(m, users, toy, ["deployment.comm.model=none"])
    L = ModelSpec.from_config(cfg.model).num_layers
    per_mb = users // DP // m  # requests per rank per micro-batch
    ta = toy.attention_cost(per_mb, 0).total_s / L
    tf = toy.ffn_cost(per_mb).total_s / L  # the MoE sees per_mb tokens of each of the 8 ranks
    expected = afd_iteration_time(L, m, ta, tf)
    if m >= 2:
        assert expected == pytest.approx(L * m * max(ta, tf) + min(ta, tf), rel=1e-12)
    rows = decode_rows(out, users)
    np.testing.assert_allclose(rows.duration_s, expected, rtol=1e-12)
    np.testing.assert_allclose(rows.comm_s, 0.0, atol=1e-15)
    assert out.requests.generated_tokens.sum() == out.requests.output_tokens.sum()


def _transfer_times(cfg, tokens_per_gpu: int) -> tuple[float, float]:
    """A2F / F2A time of one micro-batch, timed independently on the analytical backend."""
    spec = ModelSpec.from_config(cfg.model)
    be = AnalyticalBackend(build_fabric(cfg.topology), frame_bytes=cfg.network.analytical.frame_bytes,
                           rtol=cfg.network.analytical.rtol)
    att, ffn = np.arange(0, 8), np.arange(8, 16)
    kw = {"mode": "topk", "topk": spec.moe.topk, "num_experts": spec.moe.num_experts,
          "imbalance": 0.0, "seed": 0}
    a2f = m2n_flows(att, ffn, tokens_per_gpu, token_bytes(spec.hidden_size, "fp8"), direction="a2f", **kw)
    f2a = m2n_flows(att, ffn, tokens_per_gpu, token_bytes(spec.hidden_size, "bfloat16"),
                    direction="f2a", **kw)
    launch = cfg.deployment.comm.launch_us * 1e-6  # each transfer is a launched collective
    return be.simulate(a2f).makespan + launch, be.simulate(f2a).makespan + launch


@pytest.mark.parametrize("nic_gbps,m", [(400, 4), (400, 2), (5, 4)])
def test_comm_hidden_above_megascale_bound_and_exposed_on_a_slow_link(nic_gbps, m):
    users = DP * 4 * 8  # 32 per rank
    net = ["network=analytical", "network.cache.enabled=false", f"topology.nic.gbps={nic_gbps}"]
    cfg0 = config(["deployment=afd", *FIXED, *net])
    L = ModelSpec.from_config(cfg0.model).num_layers
    per_mb = users // DP // m
    t_a2f, t_f2a = _transfer_times(cfg0, per_mb)
    t_comm = max(t_a2f, t_f2a)
    # balanced compute, per layer and micro-batch tp = 2 * t_comm at the healthy link (400G):
    # MegaScale-Infer's bound is then m >= 2 (1 + 1/2) = 3
    tp_layer = 2 * max(_transfer_times(config(["deployment=afd", *FIXED, "network=analytical",
                                                "network.cache.enabled=false"]), per_mb))
    toy = ToyStepCost(a0=tp_layer * L, a1=0.0, f0=tp_layer * L, f1=0.0)
    cfg, out = afd_run(m, users, toy, net)
    rows = decode_rows(out, users)
    expected = afd_iteration_time(L, m, tp_layer, tp_layer, t_a2f, t_f2a)
    free = afd_iteration_time(L, m, tp_layer, tp_layer)
    np.testing.assert_allclose(rows.duration_s, expected, rtol=1e-9)
    np.testing.assert_allclose(rows.comm_s, expected - free, rtol=1e-6, atol=1e-12)
    hidden = m >= megascale_min_micro_batches(t_comm, tp_layer)
    assert hidden == afd_comm_hidden(m, tp_layer, tp_layer, t_a2f, t_f2a)
    if hidden:  # only the pipeline fill (first A2F) and drain (last F2A) show
        assert expected - free == pytest.approx(t_a2f + t_f2a, rel=1e-9)
    else:  # exposed in every layer, not only at the fill and drain
        assert expected - free > 10 * (t_a2f + t_f2a)


def test_ffn_group_that_cannot_hold_its_experts_is_infeasible():
    cfg = config(["deployment=afd", *FIXED, "workload.num_requests=8",
                  "deployment.roles.ffn.layout.ep=1"])
    out = run_simulation(cfg, step_cost_factory=toy_factory(ToyStepCost(1e-3, 0, 1e-3, 0)))
    s = out.summary
    assert s["feasible"] is False
    assert "FFN GPUs" in s["infeasible_reason"]
    mem = s["deployment"]["memory"]
    assert mem["attention"]["feasible"] and not mem["ffn"]["feasible"]
    assert mem["ffn"]["kv_tokens"] == 0  # FFN GPUs hold no KV cache


def test_attention_gpus_hold_only_attention_side_weights():
    cfg = config(["deployment=afd", *FIXED, "workload.num_requests=8"])
    out = run_simulation(cfg, step_cost_factory=toy_factory(ToyStepCost(1e-3, 0, 1e-3, 0)))
    mem = out.summary["deployment"]["memory"]
    spec = ModelSpec.from_config(cfg.model)
    from cosim.model.layout import ParallelLayout

    att = spec.weight_bytes_per_gpu(ParallelLayout(tp=1, dp=8), "attention")
    ffn = spec.weight_bytes_per_gpu(ParallelLayout(ep=8), "ffn")
    assert mem["attention"]["weight_gb"] == pytest.approx(att / 1e9, abs=1e-3)
    assert mem["ffn"]["weight_gb"] == pytest.approx(ffn / 1e9, abs=1e-3)
    assert out.summary["deployment"]["gpus_by_role"] == {"attention": 8, "ffn": 8}
    assert out.summary["num_gpus"] == 16


def test_iteration_mode_couples_the_timeline_with_the_network():
    # All A2F/F2A flows of an iteration in one batch: cross-rail A2F and F2A flows share the
    # leaf->spine uplinks of a rail-optimised fabric, so contention can only add time; decode
    # micro-batches are small and barely overlap, a 12k-token prefill iteration overlaps more.
    users = DP * 2 * 3
    toy = ToyStepCost(a0=6 * MS, a1=0.05 * MS, f0=5 * MS, f1=0.1 * MS)
    net = ["network=analytical", "network.cache.enabled=false"]
    _, phase = afd_run(3, users, toy, net)
    _, it = afd_run(3, users, toy, [*net, "network.mode=iteration"])
    comm = it.summary["comm"]
    assert comm["afd_network_mode"] == "iteration"
    assert comm["afd_iteration_mode_solves"] >= 1 and comm["afd_unconverged"] == 0
    t_it, t_ph = it.iterations.duration_s.to_numpy(), phase.iterations.duration_s.to_numpy()
    assert len(t_it) == len(t_ph)
    # the backend merges events within network.analytical.rtol (1 % of elapsed time), so
    # "never shorter" holds up to that
    assert np.all(t_it >= t_ph * (1 - 1e-3))
    np.testing.assert_allclose(decode_rows(it, users).duration_s, decode_rows(phase, users).duration_s,
                               rtol=1e-3)
    np.testing.assert_allclose(it.iterations.compute_s, phase.iterations.compute_s, rtol=1e-12)
    assert it.summary["comm_exposed_fraction"] >= phase.summary["comm_exposed_fraction"]
    assert 0 < it.summary["attention_busy"] <= 1 and 0 < it.summary["ffn_busy"] <= 1


@pytest.mark.parametrize("override,field", [
    ("deployment.micro_batches=0", "deployment.micro_batches"),
    ("+deployment.options.micro_batches=0", "deployment.options.micro_batches"),
    ("deployment.options.a2f_dtype=fp4", "deployment.options.a2f_dtype"),
    ("deployment.roles.ffn.count=2", "deployment.roles.ffn.count"),
    ("deployment.roles.attention.layout.ep=8", "deployment.roles.attention.layout.ep"),
])
def test_bad_afd_config_names_the_field(override, field):
    from cosim.errors import ConfigError

    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        run_simulation(config(["deployment=afd", *FIXED, override]),
                       step_cost_factory=toy_factory(ToyStepCost(1e-3, 0, 1e-3, 0)))


def test_config_validation_checks_the_roles_before_anything_is_built():
    from cosim.config import validate
    from cosim.errors import ConfigError

    with pytest.raises(ConfigError, match=r"deployment\.roles\.ffn\.count"):
        validate(config(["deployment=afd", "deployment.roles.ffn.count=2"]))
    with pytest.raises(ConfigError, match=r"deployment\.roles\.attention"):
        validate(config(["deployment=pd", "deployment.kind=afd"]))  # pd's roles, afd's kind


def test_micro_batches_is_a_deployment_knob_and_the_old_option_overrides_it():
    toy = ToyStepCost(1e-3, 0, 1e-3, 0)
    base = ["deployment=afd", *FIXED, "workload.num_requests=16", "deployment.comm.model=none"]
    top = run_simulation(config([*base, "deployment.micro_batches=2"]),
                         step_cost_factory=toy_factory(toy))
    old = run_simulation(config([*base, "deployment.micro_batches=2",
                                 "+deployment.options.micro_batches=4"]),
                         step_cost_factory=toy_factory(toy))
    assert top.summary["deployment"]["afd"]["micro_batches"] == 2
    assert old.summary["deployment"]["afd"]["micro_batches"] == 4


def test_micro_batch_cost_linear_split_divides_the_full_batch_latency_floor():
    # a pure latency floor (no per-token cost): per_microbatch pays it m times per stage,
    # linear_split pays it once, spread over the m micro-batches
    toy = ToyStepCost(1e-3, 0, 1e-3, 0)
    base = ["deployment=afd", *FIXED, "workload.num_requests=16", "deployment.comm.model=none",
            "deployment.micro_batches=4"]
    default = run_simulation(config(base), step_cost_factory=toy_factory(toy))
    per = run_simulation(config([*base, "deployment.micro_batch_cost=per_microbatch"]),
                         step_cost_factory=toy_factory(toy))
    lin = run_simulation(config([*base, "deployment.micro_batch_cost=linear_split"]),
                         step_cost_factory=toy_factory(toy))
    np.testing.assert_array_equal(default.iterations.duration_s, per.iterations.duration_s)
    # on a flat floor linear_split's micro-batch stages are 1/m of per_microbatch's
    assert lin.iterations.duration_s.sum() < per.iterations.duration_s.sum()


def test_bad_micro_batch_cost_names_the_field():
    from cosim.errors import ConfigError

    with pytest.raises(ConfigError, match=r"deployment\.micro_batch_cost"):
        run_simulation(config(["deployment=afd", *FIXED, "deployment.micro_batch_cost=fast"]),
                       step_cost_factory=toy_factory(ToyStepCost(1e-3, 0, 1e-3, 0)))
