"""GPU price per hour (hardware.usd_per_gpu_hour) and the cost figures of summary.json."""

import math
import subprocess
import sys

import pytest
from disagg_toy_cost import config

from cosim.config import ConfigError
from cosim.metrics import cost_fields
from cosim.paths import hydra_config_dir


def _hardware_names():
    from pathlib import Path

    return sorted(p.stem for p in (Path(hydra_config_dir()) / "hardware").glob("*.yaml"))


@pytest.mark.parametrize("name", _hardware_names())
def test_every_hardware_config_has_a_price_or_null_and_says_where_from(name):
    hw = config([f"hardware={name}"]).hardware
    hw.validate()
    p = hw.usd_per_gpu_hour
    assert p is None or p >= 0
    assert hw.price_source.strip(), "price_source: name the public source (or why there is none)"
    if p is not None:
        assert "http" in hw.price_source  # a documented public source, with its address


def test_shipped_prices():
    prices = {n: config([f"hardware={n}"]).hardware.usd_per_gpu_hour for n in ("h100", "h200", "b200")}
    assert prices == {"h100": 3.20, "h200": 3.99, "b200": 6.00}  # Hyperstack on-demand, 2026-08-26


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, True])
def test_a_bad_price_is_a_config_error_naming_the_field(bad):
    hw = config(["hardware=b200"]).hardware
    hw.usd_per_gpu_hour = bad
    with pytest.raises(ConfigError) as e:
        hw.validate()
    assert e.value.field == "hardware.usd_per_gpu_hour"


def test_cost_fields():
    assert cost_fields(None, 8, 1000.0) == {"usd_per_hour": None, "usd_per_mtok": None}
    got = cost_fields(6.0, 8, 1000.0)
    assert got["usd_per_hour"] == 48.0
    assert got["usd_per_mtok"] == pytest.approx(48.0 / 3.6)  # 3.6 M tokens an hour
    assert cost_fields(6.0, 8, 0.0)["usd_per_mtok"] is None
    assert cost_fields(6.0, 8, math.nan)["usd_per_mtok"] is None
    assert cost_fields(0.0, 8, 1000.0) == {"usd_per_hour": 0.0, "usd_per_mtok": 0.0}


@pytest.mark.parametrize("price", ["2.5", "null"])
def test_summary_carries_the_cost_of_a_run(price):
    from cosim.serving.simulation import run_simulation

    cfg = config(["workload=fixed", "workload.num_requests=16", "workload.input_tokens.mean=128",
                  "workload.output_tokens.mean=16", "network.cache.enabled=false",
                  f"hardware.usd_per_gpu_hour={price}"])
    s = run_simulation(cfg).summary
    if price == "null":
        assert s["usd_per_hour"] is None and s["usd_per_mtok"] is None
        return
    assert s["usd_per_hour"] == pytest.approx(2.5 * s["num_gpus"])
    assert s["usd_per_mtok"] == pytest.approx(s["usd_per_hour"] / (s["output_tok_s"] * 3600) * 1e6)


def test_cli_rejects_a_negative_price_in_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-c", "from cosim.cli import main; main()",
                        "hardware.usd_per_gpu_hour=-1", f"hydra.run.dir={tmp_path}"],
                       capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == ["cosim: configuration error: hardware.usd_per_gpu_hour: must be a number >= 0 "
                     "or null, got -1.0"]


def test_docs_price_table_is_current():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, str(root / "scripts" / "cost_table.py"), "--check"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
