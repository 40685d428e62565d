"""Topology YAML files: shipped ones load, bad ones fail naming file, key and reason."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from cosim.config import register_configs
from cosim.config.topology_files import (
    TopologyFileError,
    get_topology,
    load_topology,
    topology_files,
)
from cosim.errors import ConfigError
from cosim.network.topology import build_fabric
from cosim.paths import hydra_config_dir

SHIPPED = ["dgx_h100_ib", "dgx_h200_ib", "dgx_h800_ib", "dgx_b200_ib", "gb200_nvl72"]

GOOD = """
description: test fabric
num_nodes: 2
gpus_per_node: 4
nvlink: {gb_s: 100, latency_ns: 200, efficiency: 0.8}
nic: {gbps: 200, per_gpu: 1, latency_ns: 500, efficiency: 0.9}
fabric: {servers_per_leaf: 4, spines: 2, oversubscription: 1.0, latency_ns: 300,
         efficiency: 0.9, cross_rail: spine}
"""


def write(tmp_path, name, text):
    p = tmp_path / f"{name}.yaml"
    p.write_text(text)
    return p


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_topologies_load_and_build(name):
    topo = get_topology(name, num_nodes=2)
    graph = build_fabric(topo)
    assert graph.num_gpus == 2 * topo.gpus_per_node
    assert topo.sources, "every shipped figure names its source"


def test_shipped_nvlink_and_nic_rates():
    assert get_topology("dgx_h800_ib").nvlink.gb_s == 200
    assert get_topology("dgx_h100_ib").nvlink.gb_s == 450
    assert get_topology("dgx_b200_ib").nvlink.gb_s == 900
    assert get_topology("dgx_b200_ib").nic.gbps == 400
    nvl72 = get_topology("gb200_nvl72")
    assert nvl72.gpus_per_node == 72 and nvl72.nvlink.gb_s == 900


def test_good_file_loads(tmp_path):
    topo = load_topology(write(tmp_path, "mini", GOOD))
    assert topo.name == "mini" and topo.nic.gbps == 200


@pytest.mark.parametrize("text,key,reason", [
    (GOOD.replace("gbps: 200", "gbs: 200"), "nic.gbs", "unknown key"),
    (GOOD.replace("gb_s: 100", "gb_s: -100"), "nvlink.gb_s", "positive"),
    (GOOD.replace("gbps: 200", "gbps: 400Gbs"), "nic.gbps", "400Gbs"),
    (GOOD.replace("efficiency: 0.8", "efficiency: 1.5"), "nvlink.efficiency", "(0, 1]"),
    (GOOD.replace("cross_rail: spine", "cross_rail: magic"), "fabric.cross_rail", "magic"),
    (GOOD.replace("oversubscription: 1.0", "oversubscription: 0.5"), "fabric.oversubscription", ">= 1"),
    (GOOD + "num_gpus: 6\n", "num_gpus", "multiple"),
    (GOOD + "colour: red\n", "colour", "unknown key"),
])
def test_bad_file_names_file_key_reason(tmp_path, text, key, reason):
    path = write(tmp_path, "bad", text)
    with pytest.raises(TopologyFileError) as e:
        load_topology(path)
    msg = str(e.value)
    assert str(path) in msg and key in msg and reason in msg, msg


def test_name_must_match_file(tmp_path):
    with pytest.raises(TopologyFileError, match="differs from the file name"):
        load_topology(write(tmp_path, "mini", GOOD + "name: other\n"))


def test_invalid_yaml_names_line(tmp_path):
    with pytest.raises(TopologyFileError, match="line"):
        load_topology(write(tmp_path, "broken", "nvlink: {gb_s: [1,\n"))


def test_user_folder_is_searched_first(tmp_path, monkeypatch):
    write(tmp_path, "mini", GOOD)
    monkeypatch.setenv("COSIM_TOPOLOGY_PATH", str(tmp_path))
    assert topology_files()["mini"] == tmp_path / "mini.yaml"
    assert "dgx_h100_ib" in topology_files()


def test_num_gpus_sizes_the_fabric():
    topo = get_topology("dgx_h100_ib", num_gpus=32)
    assert build_fabric(topo).num_gpus == 32
    with pytest.raises(ConfigError, match="num_gpus"):
        get_topology("dgx_h100_ib", num_gpus=12)


def test_hydra_group_selects_and_overrides():
    register_configs()
    with initialize_config_dir(config_dir=hydra_config_dir(), version_base="1.3"):
        cfg = compose("microbench", overrides=["topology=dgx_b200_ib", "topology.num_nodes=4"])
    topo = OmegaConf.to_object(cfg.topology)
    assert topo.name == "dgx_b200_ib" and topo.num_nodes == 4
    assert build_fabric(topo).num_gpus == 32
