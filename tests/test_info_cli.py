"""`cosim-info`: the console script end to end (subprocess), and the task over every model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from cosim.apps.info import info_task
from cosim.config import register_configs
from cosim.paths import hydra_config_dir

COSIM_INFO = Path(sys.executable).parent / "cosim-info"


def run_info(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(COSIM_INFO), *overrides], cwd=cwd, capture_output=True, text=True,
                          timeout=120)


def test_cosim_info_deepseek_v3(tmp_path):
    r = run_info("model=deepseek_v3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["total_params"] == pytest.approx(671e9, rel=0.01)
    assert d["active_params"] == pytest.approx(37e9, rel=0.025)
    assert d["num_layers"] == 61
    assert d["kv_cache_bytes_per_token"]["bfloat16"] == 70272
    assert set(d["weight_bytes"]) == {"bfloat16", "fp8", "fp4"}
    assert "hardware" not in d
    assert list(tmp_path.iterdir()) == []  # an inspection command leaves no run folder


def test_cosim_info_with_hardware(tmp_path):
    r = run_info("model=deepseek_v32", "hardware=b200", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    hw = json.loads(r.stdout)["hardware"]
    assert hw["peak_flops"] == {"bfloat16": 2.25e15, "fp8": 4.5e15, "fp4": 9e15}
    assert hw["tables"] == "b200_sxm" and hw["min_gpus_for_weights"] == 4


def test_unknown_model_fails_naming_the_group(tmp_path):
    r = run_info("model=deepseek_v9", cwd=tmp_path)
    assert r.returncode != 0
    assert "model/deepseek_v9" in r.stderr and "deepseek_v3" in r.stderr  # lists the options


def test_dtype_typo_fails_naming_the_field(tmp_path):
    r = run_info("model=deepseek_v3", "model.kv_dtype=bf61", cwd=tmp_path)
    assert r.returncode != 0
    assert "model.kv_dtype" in r.stderr and "bf61" in r.stderr


def _compose(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=hydra_config_dir(), version_base="1.3"):
        return compose(config_name="info", overrides=list(overrides))


MODELS = sorted(p.stem for p in (Path(hydra_config_dir()) / "model").glob("*.yaml"))


@pytest.mark.parametrize("name", MODELS)
def test_info_task_every_model(name, capsys):
    d = info_task(_compose(f"model={name}", "hardware=h200"))
    assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(d))
    assert d["total_params"] > d["active_params"] > 0
    assert d["weight_bytes"]["bfloat16"] == 2 * d["total_params"]
    assert d["hardware"]["name"] == "h200"


def test_info_task_missing_hf_field_names_it():
    from cosim.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        info_task(_compose("model=qwen3_235b", "~model.hf_config.num_experts_per_tok"))
    assert e.value.field == "model.hf_config.num_experts_per_tok"
