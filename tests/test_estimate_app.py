"""`cosim-estimate`: the Hydra app and its JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from hydra import compose, initialize_config_dir

from cosim.apps.estimate import estimate_task, run_estimate
from cosim.config import register_configs, to_object
from cosim.errors import ConfigError
from cosim.paths import hydra_config_dir


def cfg(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=hydra_config_dir(), version_base="1.3"):
        return compose(config_name="estimate", overrides=list(overrides))


def test_decode_estimate_prices_dsa_and_moe_from_tables(capsys):
    doc = estimate_task(cfg("model=deepseek_v32", "hardware=b200", "phase=decode", "batch=64",
                            "context=4096"))
    printed = json.loads(capsys.readouterr().out)
    assert printed["total_s"] == doc["total_s"] > 0
    ops = {o["name"]: o for o in printed["ops"]}
    assert ops["attn.dsa"]["source"] in ("measured", "interpolated")
    assert ops["moe.experts"]["source"] in ("measured", "interpolated")
    for o in printed["ops"]:
        assert {"name", "latency_s", "source", "count", "stage"} <= set(o)
    assert sum(printed["by_source"].values()) == pytest.approx(printed["total_s"])
    assert printed["compute"]["framework"] == "trtllm"
    assert printed["compute"]["version"] == "1.3.0rc20"


def test_prefill_chunk_and_layout_reach_the_operators():
    doc = run_estimate(to_object(cfg("model=qwen3_235b", "hardware=h200", "phase=prefill",
                                     "batch=1", "context=8192", "chunk=2048", "tp=4",
                                     "compute.framework=sglang")))
    assert doc["chunk"] == 2048 and doc["layout"] == {"tp": 4, "dp": 1, "ep": 4, "moe_tp": 1}
    core = next(o for o in doc["ops"] if o["name"] == "attn.core")
    assert core["source"] in ("interpolated", "roofline")  # a prefix: no prefix rows
    assert doc["compute"]["version"] == "0.5.14"


def test_roofline_only_hardware():
    doc = run_estimate(to_object(cfg("model=llama31_70b", "hardware=hypothetical_example",
                                     "batch=8", "context=2048")))
    assert {o["source"] for o in doc["ops"]} == {"roofline"}


@pytest.mark.parametrize("override,field", [("phase=train", "phase"),
                                            ("compute.framework=tensorrt", "compute.framework"),
                                            ("compute.version=0.0.1", "compute.version"),
                                            ("chunk=9000", "chunk")])
def test_bad_values_name_the_field(override, field):
    with pytest.raises(ConfigError) as err:
        run_estimate(to_object(cfg("context=4096", "phase=prefill", override)))
    assert err.value.field == field


def test_console_script_prints_json():
    exe = os.path.join(os.path.dirname(sys.executable), "cosim-estimate")
    out = subprocess.run([exe, "model=deepseek_v32", "hardware=b200", "phase=decode", "batch=64",
                          "context=4096"], capture_output=True, text=True, check=True, timeout=120)
    doc = json.loads(out.stdout)
    sources = {o["name"]: o["source"] for o in doc["ops"]}
    assert sources["attn.dsa"] != "roofline" and sources["moe.experts"] != "roofline"
