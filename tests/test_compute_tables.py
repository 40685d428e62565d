"""Reading the aiconfigurator-core tables: versions, reuse, backward fill, duplicates, lanes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from cosim.compute.tables import (
    TableSet,
    resolve_version,
    shipped_files,
)
from cosim.config.compute import ComputeConfig
from cosim.errors import ConfigError


@pytest.mark.parametrize("framework,version", [("trtllm", "1.3.0rc20"), ("sglang", "0.5.14"),
                                               ("vllm", "0.24.0")])
def test_default_version_is_the_current_slot(framework, version):
    for system in ("h100_sxm", "h200_sxm", "b200_sxm", "gb200"):
        assert resolve_version(system, framework, "") == version
        assert resolve_version(system, framework, "current") == version


def test_next_version_is_the_newest_newer_folder():
    assert resolve_version("b200_sxm", "trtllm", "next") == "1.3.0rc23"


def test_unknown_version_names_compute_version():
    with pytest.raises(ConfigError) as err:
        resolve_version("b200_sxm", "trtllm", "9.9.9")
    assert err.value.field == "compute.version"
    assert "1.3.0rc20" in err.value.reason  # lists what is available


def test_unknown_framework_names_compute_framework():
    with pytest.raises(ConfigError) as err:
        ComputeConfig(framework="tensorrt").validate("compute")
    assert err.value.field == "compute.framework"


def test_reuse_yaml_serves_the_donor_version():
    # b200 trtllm rc23 has no gemm parquet: reuse.yaml points at rc20
    files, note = shipped_files("b200_sxm", "gemm", "trtllm", "1.3.0rc23", "gemm_perf")
    assert files and all(Path(f).parent.name == "1.3.0rc20" for f in files)
    assert "reuse" in note
    # rc23 moe holds its own (DSV4) rows first, then the rc20 donor's
    files, _ = shipped_files("b200_sxm", "moe", "trtllm", "1.3.0rc23", "moe_perf")
    assert [Path(f).parent.name for f in files] == ["1.3.0rc23", "1.3.0rc20"]


def test_backward_fill_from_an_older_folder_never_a_newer_one():
    files, note = shipped_files("b200_sxm", "attention", "trtllm", "1.3.0rc23",
                                "context_attention_perf")
    assert [Path(f).parent.name for f in files] == ["1.3.0rc20"] and "backward fill" in note
    files, _ = shipped_files("b200_sxm", "attention", "trtllm", "1.3.0rc10",
                             "context_attention_perf")
    assert files == []


def test_repeated_measurements_are_aggregated_by_median():
    # h100 sglang context_mla_perf measures every key twice
    table = TableSet("h100_sxm", "sglang").table("context_mla_perf")
    raw = pd.read_parquet(table.sources[0])
    assert table.duplicates_aggregated == len(raw) - len(table.frame) > 0
    key = ["mla_dtype", "kv_cache_dtype", "num_heads", "batch_size", "isl"]
    expected = raw.groupby(key)["latency"].median() * 1e-3
    got = table.frame.set_index(key)["latency_s"]
    assert (got - expected.loc[got.index]).abs().max() < 1e-15


def test_one_kernel_lane_per_key_with_the_framework_default_first():
    # sglang Blackwell attention has several kernel_sources per key; SM100's default is triton
    table = TableSet("b200_sxm", "sglang").table("generation_attention_perf")
    keys = list(table.spec.categories) + list(table.spec.axes)
    assert not table.frame.duplicated(keys).any()
    raw = pd.read_parquet(table.sources[0])
    raw = raw.assign(kv_len=raw["step"] + raw["isl"])
    multi = raw.groupby(keys[:-1] + ["kv_len"])["kernel_source"].transform("nunique") > 1
    with_triton = raw[multi & (raw["kernel_source"] == "triton")]
    assert len(with_triton)
    merged = with_triton.merge(table.frame, on=keys, suffixes=("_raw", ""))
    assert (merged["kernel_source"] == "triton").all()


def test_user_lane_choice_is_honoured():
    ts = TableSet("b200_sxm", "trtllm", lanes={"moe_perf": "moe_torch_flow_min_latency"})
    lanes = ts.table("moe_perf").lanes
    assert lanes.get("moe_torch_flow_min_latency", 0) > 0
    assert "min_latency" in next(iter(ts._lane_order(ts.table("moe_perf").spec)))


def test_missing_system_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        TableSet("tpu_v9", "trtllm")
    assert err.value.field == "hardware.tables"
