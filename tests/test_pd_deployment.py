"""P/D deployment: KV transfer on the fabric, TTFT, token conservation across deployments."""

import numpy as np
import pytest
from disagg_toy_cost import FIXED, ToyStepCost, config, toy_factory

from cosim.model.spec import ModelSpec
from cosim.network.analytical import AnalyticalBackend
from cosim.network.flows import FlowBatch
from cosim.network.topology import build_fabric
from cosim.serving.simulation import run_simulation

MS = 1e-3
TOY = ToyStepCost(a0=5 * MS, a1=0.01 * MS, f0=6 * MS, f1=0.02 * MS)
NET = ["network=analytical", "network.cache.enabled=false"]
SAME_SCHED = ["deployment.roles.prefill.scheduler.max_batched_tokens=2048",
              "deployment.roles.prefill.scheduler.max_running_requests=64"]


def one_request(deployment: list[str], extra: list[str] = ()):
    cfg = config([*deployment, *FIXED, "workload.num_requests=1", "workload.arrival.users=1",
                  "workload.input_tokens.mean=1024", *NET, *extra])
    return cfg, run_simulation(cfg, step_cost_factory=toy_factory(TOY))


def test_ttft_grows_by_exactly_the_kv_transfer_time_when_nothing_queues():
    cfg, chunked = one_request(["deployment=chunked"])
    _, pd = one_request(["deployment=pd", *SAME_SCHED])
    _, pd_prefill = one_request(["deployment=pd", *SAME_SCHED, "deployment.options.first_token_on=prefill"])
    # the KV of the 1024-token prompt from prefill GPU 0 (rank 0) to decode GPU 8 (rank 0),
    # timed alone on the same fabric
    spec = ModelSpec.from_config(cfg.model)
    kv_bytes = int(np.ceil(spec.kv_bytes(1024)))
    be = AnalyticalBackend(build_fabric(cfg.topology), frame_bytes=cfg.network.analytical.frame_bytes,
                           rtol=cfg.network.analytical.rtol)
    t_kv = (be.simulate(FlowBatch.from_arrays([0], [8], [kv_bytes])).makespan
            + cfg.deployment.comm.launch_us * 1e-6)
    assert t_kv > 0
    ttft_c = float(chunked.requests.ttft_s[0])
    assert float(pd.requests.ttft_s[0]) == pytest.approx(ttft_c + t_kv, rel=1e-12)
    assert float(pd_prefill.requests.ttft_s[0]) == pytest.approx(ttft_c, rel=1e-12)
    # the transfer is reported on its own
    assert pd.summary["kv_transfer_ms_p50"] == pytest.approx(t_kv * 1e3, rel=1e-9)


def test_layerwise_streaming_hides_part_of_the_transfer():
    _, whole = one_request(["deployment=pd", *SAME_SCHED])
    _, layerwise = one_request(["deployment=pd", *SAME_SCHED, "deployment.options.kv_transfer=layerwise"])
    assert layerwise.summary["kv_transfer_ms_p50"] < whole.summary["kv_transfer_ms_p50"]
    assert layerwise.requests.ttft_s[0] < whole.requests.ttft_s[0]


@pytest.mark.parametrize("deployment", [
    ["deployment=chunked", "deployment.replicas=2"],
    ["deployment=pd"],
    ["deployment=afd"],
    ["deployment=pd_afd", "topology.num_nodes=3"],
])
def test_every_deployment_produces_each_output_token_once(deployment):
    cfg = config([*deployment, "workload=chat", "workload.num_requests=60",
                  "workload.arrival.rate_per_s=200", "deployment.comm.model=none"])
    out = run_simulation(cfg, step_cost_factory=toy_factory(TOY))
    r = out.requests
    assert out.summary["requests_completed"] == 60
    np.testing.assert_array_equal(r.generated_tokens, r.output_tokens)
    assert out.summary["num_gpus"] == (24 if "pd_afd" in deployment[0] else 16)


def test_same_trace_same_token_counts_across_deployments():
    totals = {}
    for dep in (["deployment=chunked", "deployment.replicas=2"], ["deployment=pd"], ["deployment=afd"]):
        cfg = config([*dep, "workload=chat", "workload.num_requests=40", "deployment.comm.model=none"])
        out = run_simulation(cfg, step_cost_factory=toy_factory(TOY))
        totals[dep[0]] = (int(out.requests.output_tokens.sum()), int(out.requests.generated_tokens.sum()),
                          int(out.requests.prompt_tokens.sum()))
    assert len(set(totals.values())) == 1, totals


def test_unknown_option_and_missing_role_name_the_field():
    from cosim.errors import ConfigError

    with pytest.raises(ConfigError, match="deployment.options.kv_tranfser"):
        run_simulation(config(["deployment=pd", "+deployment.options.kv_tranfser=whole", *FIXED]),
                       step_cost_factory=toy_factory(TOY))
    with pytest.raises(ConfigError, match="deployment.roles.decode"):
        run_simulation(config(["deployment=pd", "~deployment.roles.decode", *FIXED]),
                       step_cost_factory=toy_factory(TOY))
    with pytest.raises(ConfigError, match="topology.num_nodes"):
        run_simulation(config(["deployment=pd_afd", *FIXED, *NET, "topology.num_nodes=2"]),
                       step_cost_factory=toy_factory(TOY))


@pytest.mark.parametrize("kind", ["pd", "afd", "pd_afd"])
def test_transfers_and_instances_share_the_run_network_backend(kind, tmp_path):
    # one backend per run (with network=ns3 a second one would be a second ns-3 server)
    from cosim.serving.simulation import prepare

    cfg = config([f"deployment={kind}", *FIXED, "network=analytical", "topology.num_nodes=3",
                  f"network.cache.path={tmp_path / 'net.sqlite'}"])
    dep, ctx, shared = prepare(cfg, step_cost_factory=toy_factory(TOY))
    try:
        assert shared is ctx.shared and dep.timer.backend is shared["backend"]
        assert all(getattr(c.comm, "backend", shared["backend"]) is shared["backend"]
                   for c in dep.cost_models())
        assert dep.timer.lookups is shared["lookups"]
        dep.close()  # leaves the shared backend to the run: it still answers
        one = FlowBatch.from_arrays(np.array([0]), np.array([1]), np.array([1 << 20]))
        assert shared["backend"].simulate(one).makespan > 0
    finally:
        shared["backend"].close()
