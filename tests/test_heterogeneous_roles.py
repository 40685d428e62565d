"""Heterogeneous roles: a role's own `hardware` prices its stage and sizes its memory."""

from __future__ import annotations

import pytest
from disagg_toy_cost import FIXED, config

from cosim.errors import ConfigError
from cosim.serving.simulation import prepare, run_simulation

AFD = ["deployment=afd", "model=deepseek_v32", "hardware=b200", "topology=dgx_b200_ib",
       "topology.num_nodes=2", *FIXED, "workload.num_requests=4", "output.progress=false"]
H200_ATT = "+hardware@deployment.roles.attention.hardware=h200"


def build(extra):
    dep, _, shared = prepare(config([*AFD, *extra]))
    return dep, shared


def close(dep, shared):
    dep.close()
    if shared.get("backend") is not None:
        shared["backend"].close()


def test_afd_attention_on_h200_ffn_on_b200_prices_each_stage_on_its_kind():
    het, s1 = build([H200_ATT])
    h200, s2 = build(["hardware=h200"])
    b200, s3 = build([])
    try:
        att = het.units.cost.attention(4, 4 * 2048)
        assert att == h200.units.cost.attention(4, 4 * 2048) != b200.units.cost.attention(4, 4 * 2048)
        ffn = het.instances[0].ffn_cost.ffn(16)
        assert ffn == b200.units.cost.ffn(16) != h200.units.cost.ffn(16)
        # memory plan per role on its own HBM
        mem = het.describe()["memory"]
        assert mem["attention"]["usable_gb"] == h200.describe()["memory"]["attention"]["usable_gb"]
        assert mem["ffn"]["usable_gb"] == b200.describe()["memory"]["ffn"]["usable_gb"]
        assert mem["attention"]["usable_gb"] < mem["ffn"]["usable_gb"]
        d = het.describe()
        assert d["hardware_by_role"] == {"attention": "h200", "ffn": "b200"}
        cost = d["cost_by_role"]
        assert cost["attention"]["usd_per_hour"] == pytest.approx(8 * cost["attention"]["usd_per_gpu_hour"])
        assert het.usd_per_gpu_hour() == pytest.approx(
            (cost["attention"]["usd_per_hour"] + cost["ffn"]["usd_per_hour"]) / 16)
        assert b200.usd_per_gpu_hour() == b200.ctx.cfg.hardware.usd_per_gpu_hour
    finally:
        for dep, sh in ((het, s1), (h200, s2), (b200, s3)):
            close(dep, sh)


def test_a_run_reports_memory_and_cost_per_role():
    s = run_simulation(config([*AFD, H200_ATT])).summary
    assert s["feasible"]
    cost = s["deployment"]["cost_by_role"]
    assert s["usd_per_hour"] == pytest.approx(cost["attention"]["usd_per_hour"]
                                              + cost["ffn"]["usd_per_hour"])
    assert set(s["deployment"]["memory"]) == {"attention", "ffn"}


def test_two_kinds_on_one_server_is_refused():
    small = ["deployment.roles.attention.layout.dp=4", "deployment.roles.ffn.layout.ep=4"]
    with pytest.raises(ConfigError) as e:
        build([H200_ATT, *small])
    assert e.value.field == "deployment.roles.ffn.hardware"
    assert "server 0 would hold h200 GPUs (attention) and b200 GPUs (ffn)" in str(e.value)
    dep, sh = build([H200_ATT, *small, "deployment.placement.attention=[0,1,2,3]",
                     "deployment.placement.ffn=[8,9,10,11]"])
    close(dep, sh)


def test_pd_prefill_and_decode_on_their_own_kinds():
    cfg = config(["deployment=pd", "model=deepseek_v32", "hardware=b200", "topology=dgx_b200_ib",
                  *FIXED, "workload.num_requests=4", "+hardware@deployment.roles.prefill.hardware=h200"])
    dep, _, shared = prepare(cfg)
    try:
        d = dep.describe()
        assert d["hardware_by_role"] == {"prefill": "h200", "decode": "b200"}
        assert d["memory"]["prefill"]["usable_gb"] < d["memory"]["decode"]["usable_gb"]
        p, q = dep.prefill[0].cost, dep.decode[0].cost
        assert p is not q and p.whole(0, 0, 512, 0, 1) != q.whole(0, 0, 512, 0, 1)
    finally:
        close(dep, shared)
