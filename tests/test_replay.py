"""cosim-replay: a recorded flow trace re-timed on the same, a faster, or another fabric."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cosim.api import compose_config
from cosim.apps.replay import replay
from cosim.apps.run import write_outputs
from cosim.config import to_object
from cosim.errors import ConfigError
from cosim.network.flow_replay import gpu_mapping, weighted_quantiles
from cosim.network.flow_trace import read_flow_trace
from cosim.serving.simulation import run_simulation

ROOT = Path(__file__).resolve().parents[1]
RUNS = {
    "chunked": ["deployment=chunked"],
    "afd": ["deployment=afd"],
    "pd": ["deployment=pd"],
    "afd_iteration": ["deployment=afd", "network.mode=iteration", "workload.num_requests=2"],
}
NO_CACHE = ["network.cache.enabled=false"]


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    out = {}
    for name, extra in RUNS.items():
        cfg = compose_config(["workload=chat", "workload.num_requests=40", "output.progress=false",
                              "output.flows=true", *NO_CACHE, *extra])
        res = run_simulation(cfg)
        d = tmp_path_factory.mktemp(name)
        write_outputs(d, res.summary, res.requests, res.iterations, False, {}, res.flows)
        out[name] = d / "flows.parquet"
    return out


def _replay(path: Path, overrides: list[str] = (), gpu_map=None) -> dict:
    cfg = to_object(compose_config([f"flows={path}", *NO_CACHE, *overrides], "replay"))
    return replay(str(path), cfg.topology, cfg.network, gpu_map)


@pytest.mark.parametrize("name", list(RUNS))
def test_same_topology_and_backend_reproduces_every_completion(traces, name):
    doc = _replay(traces[name])
    assert doc["reproduces_recorded_completions"] is True
    assert doc["replayed"]["topology"] == doc["recorded"]["topology"] == "dgx_b200_ib"
    assert doc["replayed"]["backend_calls"] == doc["recorded"]["patterns"]
    for row in doc["classes"]:
        assert row["slowdown"] == 1.0 and row["slowdown_max"] == 1.0
        assert row["before_p99_us"] == row["after_p99_us"]
        assert row["bottleneck_before"] == row["bottleneck_after"] is not None
    for row in doc["flow_completion"]:
        assert row["before_p99_us"] == row["after_p99_us"] and row["flows"] > 0
        assert row["before_p50_us"] <= row["before_p99_us"]


@pytest.mark.parametrize("name", ["chunked", "afd", "pd", "afd_iteration"])
def test_a_strictly_faster_fabric_slows_no_traffic_class(traces, name):
    # same shape, every link class twice the bandwidth (leaf-spine uplinks follow the NICs)
    doc = _replay(traces[name], ["topology=dgx_b200_ib", "topology.nvlink.gb_s=1800",
                                 "topology.nic.gbps=800"])
    assert doc["classes"]
    for row in doc["classes"]:
        for q in ("p50", "p90", "p99", "mean"):
            assert row[f"after_{q}_us"] <= row[f"before_{q}_us"], (row["traffic_class"], q)
        assert row["slowdown"] < 1.0 and row["slowdown_max"] <= 1.0
    for row in doc["flow_completion"]:
        assert row["after_mean_us"] < row["before_mean_us"]


def test_replay_onto_nvl72_moves_the_bottleneck_onto_nvlink(traces):
    doc = _replay(traces["afd"], ["topology=gb200_nvl72"], gpu_map="first")
    assert doc["recorded"]["num_gpus"] == 16 and doc["replayed"]["num_gpus"] == 72
    by = {r["traffic_class"]: r for r in doc["classes"]}
    assert set(by) == {"a2f", "f2a"}
    for r in by.values():  # 8 attention + 8 FFN GPUs: NICs in one, NVLink in the other
        assert r["bottleneck_before"].endswith("(nic)")
        assert r["bottleneck_after_link_class"] == "nvlink"
        assert r["slowdown"] < 1.0


def test_gpu_map_errors_name_both_sizes(traces, tmp_path):
    with pytest.raises(ConfigError) as e:
        _replay(traces["afd"], ["topology=gb200_nvl72"])
    assert e.value.field == "replay.gpu_map"
    assert "16 GPUs" in str(e.value) and "72" in str(e.value)
    with pytest.raises(ConfigError, match="only 8"):
        _replay(traces["afd"], ["topology=dgx_b200_ib", "topology.num_nodes=1"], gpu_map="first")
    with pytest.raises(ConfigError, match="the target of 16 recorded GPUs"):
        _replay(traces["afd"], ["topology=gb200_nvl72"], gpu_map=[0] * 16)
    with pytest.raises(ConfigError, match="outside the topology"):
        _replay(traces["afd"], ["topology=gb200_nvl72"], gpu_map=list(range(60, 76)))
    bad = tmp_path / "map.txt"
    bad.write_text("0 1 2\n3 x 5\n")
    with pytest.raises(ConfigError, match=r"map.txt:2: 'x' is not a GPU id"):
        _replay(traces["afd"], ["topology=gb200_nvl72"], gpu_map=str(bad))
    good = tmp_path / "map.json"
    good.write_text(json.dumps(list(range(71, 55, -1))))
    doc = _replay(traces["afd"], ["topology=gb200_nvl72"], gpu_map=str(good))
    assert doc["replayed"]["gpu_map"] == "explicit"


def test_gpu_mapping_and_weighted_quantiles():
    assert gpu_mapping(4, 4).tolist() == [0, 1, 2, 3]
    assert gpu_mapping(4, 8, "first").tolist() == [0, 1, 2, 3]
    assert gpu_mapping(4, 8, [7, 6, 5, 4]).tolist() == [7, 6, 5, 4]
    x = np.array([1.0, 2.0, 3.0])
    assert weighted_quantiles(x, np.array([1.0, 1.0, 98.0]), (0.5, 0.01)) == [3.0, 1.0]
    assert weighted_quantiles(x, np.ones(3), (0.5,)) == [2.0]


def test_a_hand_edited_trace_is_an_input_error(traces, tmp_path):
    import pyarrow.parquet as pq

    t = pq.read_table(traces["afd"])
    pq.write_table(t.drop(["completion_s"]), tmp_path / "f.parquet")
    with pytest.raises(ConfigError, match="missing column 'completion_s'"):
        _replay(tmp_path / "f.parquet")
    assert read_flow_trace(traces["afd"]).rows == t.num_rows


def _app(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(cwd)}
    return subprocess.run([sys.executable, "-c", "from cosim.cli import replay_main; replay_main()",
                           *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_app_writes_json_and_csv_and_exits_2_on_bad_input(traces, tmp_path):
    ok = _app(f"flows={traces['pd']}", "network.cache.enabled=false", f"hydra.run.dir={tmp_path}/r",
              cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    doc = json.loads((tmp_path / "r" / "replay.json").read_text())
    csv = (tmp_path / "r" / "replay.csv").read_text().splitlines()
    assert csv[0].startswith("traffic_class,transfers,layer_transfers,before_p50_us")
    assert len(csv) == 1 + len(doc["classes"]) == 4  # ep_dispatch, ep_combine, kv_transfer
    bad = _app("flows=missing.parquet", cwd=tmp_path)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().count("\n") == 0 and "missing.parquet: no such file" in bad.stderr
    size = _app(f"flows={traces['afd']}", "topology=gb200_nvl72", cwd=tmp_path)
    assert size.returncode == 2 and "Traceback" not in size.stderr
    assert "16 GPUs" in size.stderr and "72" in size.stderr


@pytest.mark.ns3
def test_ns3_replay_of_an_ns3_recorded_run_reproduces_it(tmp_path):
    cfg = compose_config(["workload=chat", "workload.num_requests=3", "output.progress=false",
                          "output.flows=true", "network=ns3", *NO_CACHE])
    res = run_simulation(cfg)
    write_outputs(tmp_path, res.summary, res.requests, res.iterations, False, {}, res.flows)
    path = tmp_path / "flows.parquet"
    assert set(read_flow_trace(path).columns["backend"].tolist()) == {"ns3"}
    cfg = to_object(compose_config([f"flows={path}", "network=ns3", *NO_CACHE], "replay"))
    doc = replay(str(path), cfg.topology, cfg.network)
    assert doc["replayed"]["backend_variant"].startswith("ns3")
    assert doc["reproduces_recorded_completions"] is True
    # the same traffic on the analytical backend: the same classes, close durations
    ana = _replay(path, ["network=analytical"])
    for a, n in zip(ana["classes"], doc["classes"], strict=True):
        assert a["traffic_class"] == n["traffic_class"]
        assert a["after_mean_us"] == pytest.approx(n["after_mean_us"], rel=0.5)
