"""cosim-microbench on the analytical backend: config composition, patterns, JSON out."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from cosim.apps.microbench import microbench_task
from cosim.config import register_configs
from cosim.errors import ConfigError
from cosim.paths import hydra_config_dir


def bench(*overrides: str) -> dict:
    register_configs()
    with initialize_config_dir(config_dir=hydra_config_dir(), version_base="1.3"):
        cfg = compose("microbench", overrides=list(overrides))
    return microbench_task(cfg)


def test_ep8_dispatch_is_nvlink_bound(capsys):
    out = bench("topology.num_nodes=1", "tokens=512")
    printed = json.loads(capsys.readouterr().out)
    assert printed["flows"] == out["flows"] == 56
    assert out["nic_gb_s_per_gpu"] == 0
    # bounded by the H800's achievable NVLink: 200 GB/s x 0.8
    assert 100 < out["nvlink_gb_s_per_gpu"] <= 160 * 1.0001
    assert out["nvlink_gbps_per_gpu"] == pytest.approx(8 * out["nvlink_gb_s_per_gpu"])
    for key in ("latency_s", "wall_s", "events", "deepep_nvl_gb_s_per_gpu"):
        assert key in out


def test_ep16_node_dedup_uses_nics_below_line_rate():
    out = bench("topology.num_nodes=2", "tokens=512", "pattern=ep_combine")
    assert 0 < out["nic_gb_s_per_gpu"] <= 50 * 0.94 * 1.0001
    assert out["nic_gpus"] == 16


@pytest.mark.parametrize("pattern,extra", [
    ("all_to_all", ["bytes=65536"]),
    ("m2n", ["m2n_mode=topk", "m2n_attn=8"]),
    ("m2n", ["m2n_mode=broadcast", "m2n_direction=f2a"]),
    ("allreduce", ["allreduce=ring"]),
    ("allreduce", ["allreduce=nvls", "topology.num_nodes=1"]),
    ("kv_transfer", ["kv_layers=4", "tokens=256"]),
])
def test_every_pattern_runs(pattern, extra):
    out = bench("topology.num_nodes=2", "tokens=128", f"pattern={pattern}", *extra)
    assert out["flows"] > 0 and out["latency_s"] > 0


def test_bad_values_name_the_field():
    with pytest.raises(ConfigError, match="^ep:"):
        bench("topology.num_nodes=1", "ep=64")
    with pytest.raises(ConfigError, match="^pattern:"):
        bench("pattern=broadcast_storm")


def test_console_script_prints_json():
    proc = subprocess.run(
        [sys.executable, "-c", "from cosim.cli import microbench_main; microbench_main()",
         "topology=dgx_b200_ib", "topology.num_nodes=2", "pattern=all_to_all", "bytes=1048576"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["topology"] == "dgx_b200_ib:16gpu" and out["flows"] == 240
