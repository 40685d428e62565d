"""deployment.placement: where the AFD roles' GPUs sit, and the bytes per link class."""

from __future__ import annotations

import numpy as np
import pytest
from disagg_toy_cost import FIXED, ToyStepCost, config, toy_factory

from cosim.errors import ConfigError
from cosim.serving.deployments.placement import TrafficBytes, locality_key, place_afd_units
from cosim.serving.simulation import run_simulation
from cosim.traffic.tags import FlowTag

MS = 1e-3
TOY = ToyStepCost(a0=4 * MS, a1=0.05 * MS, f0=3 * MS, f1=0.2 * MS)
# one unit of 2 attention (DP2) + 6 FFN (EP6) GPUs: it fits in one 8-GPU server
SMALL = ["deployment.roles.attention.layout.dp=2", "deployment.roles.ffn.layout.ep=6"]


def run(extra: list[str], users: int = 16):
    cfg = config(["deployment=afd", *FIXED, f"workload.num_requests={users}",
                  f"workload.arrival.users={users}", *extra])
    return run_simulation(cfg, step_cost_factory=toy_factory(TOY))


def gpus(units):
    return [(u.attention.tolist(), u.ffn.tolist()) for u in units]


def test_contiguous_is_the_old_assignment():
    units = place_afd_units("contiguous", "contiguous", 2, 3, 3, 4, 32, 8)
    assert gpus(units) == [([4, 5, 6], [7, 8, 9]), ([10, 11, 12], [13, 14, 15])]


def test_packed_keeps_a_unit_that_fits_inside_one_domain():
    # 3 + 3 GPUs per unit on 8-GPU servers: contiguous puts unit 1 across servers 0 and 1
    units = place_afd_units("packed", "packed", 3, 3, 3, 0, 24, 8)
    assert gpus(units) == [([0, 1, 2], [3, 4, 5]), ([8, 9, 10], [11, 12, 13]),
                           ([16, 17, 18], [19, 20, 21])]
    # a unit larger than a domain fills domains in order (the contiguous blocks)
    big = place_afd_units("packed", "packed", 1, 8, 8, 0, 16, 8)
    assert gpus(big) == [(list(range(8)), list(range(8, 16)))]


def test_spread_deals_round_robin_over_servers():
    units = place_afd_units("spread", "spread", 1, 2, 6, 0, 16, 8)
    assert gpus(units) == [([0, 8], [1, 9, 2, 10, 3, 11])]
    # attention packed, FFN spread over what is left
    mixed = place_afd_units("packed", "spread", 1, 2, 6, 0, 16, 8)
    assert gpus(mixed) == [([0, 1], [2, 8, 3, 9, 4, 10])]


def test_explicit_list_and_locality_key():
    units = place_afd_units([8, 9], "packed", 1, 2, 6, 0, 16, 8)
    assert gpus(units) == [([8, 9], [0, 1, 2, 3, 4, 5])]
    a = place_afd_units([0, 1], [2, 3], 1, 2, 2, 0, 16, 8)[0]
    b = place_afd_units([8, 9], [10, 11], 1, 2, 2, 0, 16, 8)[0]
    c = place_afd_units([0, 8], [1, 9], 1, 2, 2, 0, 16, 8)[0]
    assert locality_key(a, 8) == locality_key(b, 8) != locality_key(c, 8)


@pytest.mark.parametrize("att, ffn, field, needle", [
    ([0, 1, 2], "packed", "deployment.placement.attention", "lists 3 GPUs, the role has 2"),
    ([0, 99], "packed", "deployment.placement.attention", "GPU 99 is outside the topology"),
    ([0, 0], "packed", "deployment.placement.attention", "GPU 0 appears twice"),
    ([0, 1], [1, 2, 3, 4, 5, 6], "deployment.placement.ffn", "GPU 1 is also placed"),
])
def test_bad_lists_name_the_field(att, ffn, field, needle):
    with pytest.raises(ConfigError) as e:
        place_afd_units(att, ffn, 1, 2, 6, 0, 16, 8)
    assert e.value.field == field and needle in str(e.value)


@pytest.mark.parametrize("override, field, needle", [
    ("deployment.placement.attention=[0,0]", "deployment.placement.attention", "appears twice"),
    ("deployment.placement.attention=[0,20]", "deployment.placement.attention", "outside the topology"),
    ("deployment.placement.ffn=[2,3]", "deployment.placement.ffn", "lists 2 GPUs, the role has 6"),
    ("deployment.placement.ffn=near", "deployment.placement.ffn", "must be contiguous, packed"),
])
def test_bad_placement_in_a_run_is_a_config_error(override, field, needle):
    with pytest.raises(ConfigError) as e:
        run([*SMALL, override])
    assert e.value.field == field and needle in str(e.value)


def test_placement_on_chunked_is_refused():
    with pytest.raises(ConfigError, match=r"^deployment\.placement: places the AFD roles"):
        config(["deployment.placement.attention=spread"]).deployment.validate()


def test_default_and_listed_contiguous_give_identical_results():
    base = run(SMALL)
    same = run([*SMALL, "deployment.placement.attention=[0,1]",
                "deployment.placement.ffn=[2,3,4,5,6,7]"])
    assert base.summary["deployment"]["afd"]["unit_gpus"] == [
        {"attention": [0, 1], "ffn": [2, 3, 4, 5, 6, 7]}]
    for k in ("tpot_ms_p50", "ttft_ms_p90", "iteration_ms_mean", "traffic_bytes"):
        assert base.summary[k] == same.summary[k]
    np.testing.assert_array_equal(base.iterations.duration_s, same.iterations.duration_s)


def test_bytes_per_link_class_follow_the_placement():
    packed = run([*SMALL, "deployment.placement.attention=packed",
                  "deployment.placement.ffn=packed"]).summary
    spread = run([*SMALL, "deployment.placement.attention=spread",
                  "deployment.placement.ffn=spread"]).summary
    for cls in ("a2f", "f2a"):
        p, s = packed["traffic_bytes"][cls], spread["traffic_bytes"][cls]
        assert p["scale_out_bytes"] == 0 and p["nvlink_bytes"] > 0
        assert s["scale_out_bytes"] > 0
        # the same tokens travel: only the link class moves
        assert p["nvlink_bytes"] == pytest.approx(s["nvlink_bytes"] + s["scale_out_bytes"])
    assert spread["deployment"]["afd"]["unit_gpus"] == [
        {"attention": [0, 8], "ffn": [1, 9, 2, 10, 3, 11]}]


def test_kv_transfer_bytes_are_counted_by_link_class():
    cfg = config(["deployment=pd", *FIXED, "workload.num_requests=8", "workload.arrival.users=8"])
    out = run_simulation(cfg, step_cost_factory=toy_factory(TOY))
    kv = out.summary["traffic_bytes"]["kv_transfer"]
    moved = out.summary["deployment"]["kv_bytes_moved"]
    assert moved > 0 and kv["nvlink_bytes"] + kv["scale_out_bytes"] == pytest.approx(moved)


def test_traffic_bytes_split_by_endpoints():
    tb = TrafficBytes(8)
    tb.add_flows(np.array([0, 0, 9]), np.array([1, 8, 10]), np.array([10, 20, 30]),
                 np.array([int(FlowTag.A2F), int(FlowTag.A2F), int(FlowTag.KV)]), times=2)
    assert tb.to_dict() == {"a2f": {"nvlink_bytes": 20.0, "scale_out_bytes": 40.0},
                            "kv_transfer": {"nvlink_bytes": 60.0, "scale_out_bytes": 0.0}}


def test_pd_afd_places_the_units_after_the_prefill_gpus_and_sends_kv_to_them():
    def pd_afd(extra):
        cfg = config(["deployment=pd_afd", *FIXED, "topology.num_nodes=3",
                      "workload.num_requests=8", "workload.arrival.users=8", *SMALL, *extra])
        return run_simulation(cfg, step_cost_factory=toy_factory(TOY)).summary

    packed = pd_afd(["deployment.placement.attention=packed", "deployment.placement.ffn=packed"])
    spread = pd_afd(["deployment.placement.attention=spread", "deployment.placement.ffn=spread"])
    assert packed["deployment"]["afd"]["unit_gpus"] == [
        {"attention": [8, 9], "ffn": [10, 11, 12, 13, 14, 15]}]
    # spread: round-robin over the servers with free GPUs (server 0 holds the prefill instance)
    assert spread["deployment"]["afd"]["unit_gpus"] == [
        {"attention": [8, 16], "ffn": [9, 17, 10, 18, 11, 19]}]
    # the prefill instance (GPUs 0-7) sends the KV to the unit's attention GPUs: another server
    for s in (packed, spread):
        kv = s["traffic_bytes"]["kv_transfer"]
        assert kv["nvlink_bytes"] == 0 and kv["scale_out_bytes"] > 0
    assert packed["traffic_bytes"]["a2f"]["scale_out_bytes"] == 0
    assert spread["traffic_bytes"]["a2f"]["scale_out_bytes"] > 0
    with pytest.raises(ConfigError, match=r"^deployment\.placement\.attention: GPU 3 is also placed "
                                          r"for the prefill instances"):
        pd_afd(["deployment.placement.attention=[3,8]"])


def test_alpha_beta_link_bytes_by_hand():
    from cosim.model.layout import ParallelLayout
    from cosim.serving.comm import AlphaBetaComm, LinkFigures, TrafficShape, expected_remote_ranks

    shape = TrafficShape(hidden=128, num_layers=4, num_moe_layers=3, num_dense_layers=1,
                         num_experts=16, topk=2)
    links = LinkFigures(1e11, 1e-6, 5e10, 2e-6, gpus_per_node=4)
    c = AlphaBetaComm(ParallelLayout(tp=8, dp=1, ep=8), shape, links, dispatch_dtype="bfloat16",
                      combine_dtype="bfloat16", activation_dtype="bfloat16")
    out = c.link_bytes(80)
    ep_total = 80 * expected_remote_ranks(8, 2) * 256 * 3  # tokens x remote ranks x bf16 x layers
    assert sum(out["ep_dispatch"]) == pytest.approx(ep_total)
    assert out["ep_dispatch"][0] == pytest.approx(ep_total * 3 / 7)  # 3 of 7 peers on the server
    ar_total = 2 * 7 / 8 * 80 * 256 * 8 * (4 + 1)  # ring: 2(tp-1)/tp x bytes on each of 8 GPUs
    assert sum(out["allreduce"]) == pytest.approx(ar_total)
    assert out["allreduce"][1] == pytest.approx(ar_total * 2 / 8)  # 2 of the 8 ring edges cross
    assert c.link_bytes(0) == {}


@pytest.mark.parametrize("layout, crosses", [(["deployment.layout.dp=8", "deployment.layout.ep=8"], False),
                                             (["deployment.layout.dp=16", "deployment.layout.ep=16"], True)])
def test_chunked_ep_bytes_leave_the_server_only_when_the_ep_group_does(layout, crosses):
    cfg = config([*FIXED, "workload.num_requests=16", "workload.arrival.users=16", *layout])
    s = run_simulation(cfg, step_cost_factory=toy_factory(TOY)).summary
    d, c = s["traffic_bytes"]["ep_dispatch"], s["traffic_bytes"]["ep_combine"]
    assert d["nvlink_bytes"] > 0 and (d["scale_out_bytes"] > 0) == crosses
    # the same token copies travel both ways: combine (bf16) / dispatch (fp8 + scales) bytes
    ratio = (c["nvlink_bytes"] + c["scale_out_bytes"]) / (d["nvlink_bytes"] + d["scale_out_bytes"])
    assert ratio == pytest.approx(2 * 7168 / (7168 + 7168 // 128 * 4))
    assert "a2f" not in s["traffic_bytes"] and "kv_transfer" not in s["traffic_bytes"]


def test_cli_bad_placement_is_one_line_and_exit_2(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    p = subprocess.run([sys.executable, "-c", "from cosim.cli import main; main()", "deployment=afd",
                        "deployment.placement.ffn=[8,9,10,11,12,13,14,99]",
                        "workload.num_requests=4", "output.progress=false",
                        f"hydra.run.dir={tmp_path}"],
                       capture_output=True, text=True, env=env, timeout=300)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1, p.stderr[-2000:]
    assert "deployment.placement.ffn: GPU 99 is outside the topology" in lines[0]
