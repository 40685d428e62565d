"""Mixed-kind fabrics: topology.server_groups gives each run of servers its GPU kind and its
own NVLink / NIC figures; roles sit on servers of their kind."""

from __future__ import annotations

import numpy as np
import pytest
from disagg_toy_cost import FIXED, config

from cosim.config.topology import ServerGroupConfig
from cosim.config.topology_files import TopologyFileError, get_topology, load_topology
from cosim.errors import ConfigError
from cosim.network.fabric import NIC, NVLINK, FlowBatch
from cosim.network.topology import build_fabric
from cosim.serving.simulation import prepare

# FabricGraph digests of the shipped uniform topologies before server groups existed
# (commit 5d1591f): the mixed-kind support leaves their fabrics bit for bit as they were.
DIGESTS = {("dgx_h200_ib", 2): "3cf9a48d08e7bbc3", ("dgx_h200_ib", 40): "f05107cc44196dbb",
           ("dgx_b200_ib", 2): "95000e927a3bdc19", ("gb200_nvl72", 1): "a3b20c03771a18d3",
           ("dgx_h100_ib", 1): "dec9a9ce98348c0d"}

MIXED = ["deployment=afd", "model=deepseek_v32", "hardware=b200", "topology=dgx_h200_b200_ib",
         *FIXED, "workload.num_requests=4", "output.progress=false"]
H200_ATT = "+hardware@deployment.roles.attention.hardware=h200"


@pytest.mark.parametrize("name,nodes", sorted(DIGESTS))
def test_uniform_topologies_compile_as_before(name, nodes):
    assert build_fabric(get_topology(name, num_nodes=nodes)).digest() == DIGESTS[(name, nodes)]


def test_one_group_with_the_topology_figures_is_the_uniform_fabric():
    plain = get_topology("dgx_h200_ib", num_nodes=4)
    grouped = get_topology("dgx_h200_ib", num_nodes=4, server_groups=[{"gpu": "h200"}])
    assert grouped.mixed and grouped.group_counts() == [4]
    assert build_fabric(grouped).digest() == build_fabric(plain).digest()


def test_mixed_topology_gives_each_server_its_own_links():
    t = get_topology("dgx_h200_b200_ib", num_nodes=3)
    assert t.group_counts() == [1, 2]
    assert [k for k, _, _ in t.server_figures()] == ["h200", "b200", "b200"]
    g = build_fabric(t)
    up = (g.link_class == NVLINK) & (g.link_src < g.num_gpus)
    nv = g.link_bps[up][np.argsort(g.link_src[up])]
    assert nv[:8].tolist() == [450 * 8e9] * 8 and nv[8:].tolist() == [900 * 8e9] * 16
    down = (g.link_class == NVLINK) & (g.link_dst < g.num_gpus)
    assert sorted(g.link_bps[down][g.link_dst[down] < 8].tolist()) == [450 * 8e9] * 8
    assert set(g.link_bps[g.link_class == NIC].tolist()) == {400e9}
    # the B200 group overrode only gb_s: its latency and efficiency are the topology's
    assert t.server_groups[1].nvlink.latency_ns == t.nvlink.latency_ns
    # a flow inside server 0 is slower than the same flow inside server 1 (analytical)
    from cosim.network.analytical import AnalyticalBackend

    be = AnalyticalBackend(g)
    f = FlowBatch(np.array([0, 8]), np.array([1, 9]), np.array([1 << 28, 1 << 28]),
                  np.zeros(2), np.zeros(2, dtype=np.int32))
    fin = be.simulate(f).finish
    assert fin[0] == pytest.approx(2 * fin[1], rel=0.01)


def test_server_group_errors_name_the_field(tmp_path):
    with pytest.raises(ConfigError) as e:
        get_topology("dgx_h200_ib", num_nodes=2, server_groups=[{"gpu": "h200", "count": 1}])
    assert e.value.field == "topology.server_groups" and "sum to 1 servers" in str(e.value)
    with pytest.raises(ConfigError) as e:
        get_topology("dgx_h200_ib", num_nodes=2, server_groups=[
            {"gpu": "h200", "count": 1}, {"gpu": "b200", "nic": {"gbps": 400, "per_gpu": 2}}])
    assert e.value.field == "topology.server_groups[1].nic.per_gpu"
    with pytest.raises(ConfigError) as e:
        get_topology("dgx_h200_ib", num_nodes=2, server_groups=[{"gpu": "h200"}, {"gpu": "b200"}])
    assert e.value.field == "topology.server_groups[1].count"
    bad = tmp_path / "bad_mixed.yaml"
    bad.write_text("nvlink: {gb_s: 450}\nnic: {gbps: 400}\nserver_groups:\n  - h200\n")
    with pytest.raises(TopologyFileError, match=r"server_groups\[0\]: expected a mapping"):
        load_topology(bad)
    bad.write_text("nvlink: {gb_s: 450}\nnic: {gbps: 400}\nnum_nodes: 2\nserver_groups:\n"
                   "  - {gpu: h200, count: 1}\n  - {gpu: b200, nvlink: {gb_s: -1}}\n")
    with pytest.raises(TopologyFileError, match=r"server_groups\[1\]\.nvlink\.gb_s"):
        load_topology(bad)
    assert ServerGroupConfig(gpu="h200").count is None


def _build(extra):
    return prepare(config([*MIXED, *extra]))


def _close(dep, shared):
    dep.close()
    if shared.get("backend") is not None:
        shared["backend"].close()


def test_afd_attention_on_the_h200_server_ffn_on_the_b200_server():
    dep, _, shared = _build([H200_ATT])
    try:
        u = dep.units.units_gpus[0]
        assert u.attention.tolist() == list(range(8)) and u.ffn.tolist() == list(range(8, 16))
        assert dep.describe()["hardware_by_role"] == {"attention": "h200", "ffn": "b200"}
        mem = dep.describe()["memory"]
        assert mem["attention"]["usable_gb"] < mem["ffn"]["usable_gb"]
        # every A2F / F2A flow crosses the scale-out network between the two server kinds
        a2f, f2a = dep.units.afd.traffic.flows(16)
        assert (a2f.src < 8).all() and (a2f.dst >= 8).all() and (f2a.src >= 8).all()
    finally:
        _close(dep, shared)


@pytest.mark.parametrize("extra,field,text", [
    ([], "hardware", "the attention GPUs are b200, but server 0 (topology.server_groups[0]) "
                     "holds h200 GPUs"),
    (["+hardware@deployment.roles.attention.hardware=h200",
      "+hardware@deployment.roles.ffn.hardware=h200"], "deployment.roles.ffn.hardware",
     "the ffn GPUs are h200, but server 1 (topology.server_groups[1]) holds b200 GPUs"),
])
def test_a_role_on_a_server_of_another_kind_is_refused(extra, field, text):
    with pytest.raises(ConfigError) as e:
        _build(extra)
    assert e.value.field == field and text in str(e.value)


def test_chunked_on_a_mixed_fabric_checks_its_replicas():
    base = ["model=deepseek_v32", "topology=dgx_h200_b200_ib", *FIXED, "workload.num_requests=4"]
    with pytest.raises(ConfigError) as e:
        prepare(config([*base, "hardware=h200", "deployment.replicas=2"]))
    assert e.value.field == "hardware" and "server 1" in str(e.value)
    dep, _, shared = prepare(config([*base, "hardware=h200", "deployment.replicas=1"]))
    _close(dep, shared)


def test_alpha_beta_transfers_see_each_servers_links():
    from cosim.serving.deployments._transfers import TransferTimer

    cfg = config([*MIXED, H200_ATT, "deployment.comm.model=alpha_beta"])
    timer = TransferTimer(cfg, 16)
    size = 1 << 28
    f = FlowBatch(np.array([0, 8, 0]), np.array([1, 9, 8]), np.full(3, size), np.zeros(3),
                  np.zeros(3, dtype=np.int32))
    fin = timer.finish(f) - timer.launch_s
    t = cfg.topology
    assert fin[0] == pytest.approx(2 * t.nvlink.latency_ns * 1e-9 + size / (450e9 * 0.8))
    assert fin[1] == pytest.approx(2 * t.nvlink.latency_ns * 1e-9 + size / (900e9 * 0.8))
    assert fin[2] == pytest.approx(2 * t.nic.latency_ns * 1e-9 + size / (50e9 * 0.94))


@pytest.mark.ns3
def test_ns3_sees_each_servers_nvlink():
    pytest.importorskip("ns3", reason="the ns3 wheel (Linux x86-64) is not installed")
    from cosim.network.ns3.client import Ns3Backend

    g = build_fabric(get_topology("dgx_h200_b200_ib"))
    b = Ns3Backend(g, {})
    try:
        f = FlowBatch(np.array([0, 8]), np.array([1, 9]), np.array([1 << 24, 1 << 24]),
                      np.zeros(2), np.zeros(2, dtype=np.int32))
        fin = b.simulate(f).finish
    finally:
        b.close()
    assert fin[0] > 1.8 * fin[1]  # the H200 server's NVLink4 at half NVLink5's rate


def test_pd_prefill_on_h200_servers_decode_on_b200_servers():
    base = ["deployment=pd", "model=deepseek_v32", "hardware=b200", "topology=dgx_h200_b200_ib",
            *FIXED, "workload.num_requests=4"]
    dep, _, shared = prepare(config([*base, "+hardware@deployment.roles.prefill.hardware=h200"]))
    try:
        assert dep.describe()["hardware_by_role"] == {"prefill": "h200", "decode": "b200"}
    finally:
        _close(dep, shared)
    with pytest.raises(ConfigError) as e:
        prepare(config([*base, "+hardware@deployment.roles.decode.hardware=h200"]))
    assert e.value.field == "hardware" and "the prefill GPUs are b200" in str(e.value)
