"""Hardware configs: datasheet figures, measured-table folders, GPUSpec units and validation."""

from __future__ import annotations

from pathlib import Path

import aiconfigurator_core
import pytest
from omegaconf import OmegaConf

from cosim.config.hardware import HardwareConfig
from cosim.errors import ConfigError
from cosim.hardware import GPUSpec
from cosim.paths import hydra_config_dir

HW_DIR = Path(hydra_config_dir()) / "hardware"
SYSTEMS = Path(aiconfigurator_core.__file__).parent / "systems" / "data"


def load(name: str) -> HardwareConfig:
    raw = OmegaConf.merge(OmegaConf.structured(HardwareConfig), OmegaConf.load(HW_DIR / f"{name}.yaml"))
    return OmegaConf.to_object(raw)


def test_all_hardware_configs_validate_and_cite():
    names = {p.stem for p in HW_DIR.glob("*.yaml")}
    assert {"h100", "h200", "h800", "b200", "gb200", "hypothetical_example"} <= names
    for name in sorted(names):
        cfg = load(name)
        cfg.validate("hardware")
        assert cfg.name == name and cfg.source
        if cfg.tables is not None:
            assert (SYSTEMS / cfg.tables).is_dir(), f"{name}: no table folder {cfg.tables}"


# (bf16, fp8, fp4 TFLOP/s dense, HBM TB/s, NVLink GB/s per direction, tables)
DATASHEET = {
    "h100": (989, 1979, None, 3.35, 450, "h100_sxm"),
    "h200": (989, 1979, None, 4.8, 450, "h200_sxm"),
    "h800": (989, 1979, None, 3.35, 200, "h100_sxm"),
    "b200": (2250, 4500, 9000, 7.7, 900, "b200_sxm"),
    "gb200": (2500, 5000, 10000, 8.0, 900, "gb200"),
}


@pytest.mark.parametrize("name", sorted(DATASHEET))
def test_datasheet_figures(name):
    bf16, fp8, fp4, bw, nvl, tables = DATASHEET[name]
    g = GPUSpec.from_config(load(name))
    assert g.peak_flops("bfloat16") == bf16 * 1e12
    assert g.peak_flops("fp8_block") == fp8 * 1e12
    assert g.peak_flops("nvfp4") == (fp4 or fp8) * 1e12  # Hopper runs fp4 weights at fp8 rate
    assert g.has_native("fp4") == (fp4 is not None)
    assert g.hbm_bw == bw * 1e12 and g.nvlink_bw == nvl * 1e9 and g.tables == tables


def test_units_and_topology_facts():
    h100 = GPUSpec.from_config(load("h100"))
    assert h100.hbm_bytes == pytest.approx(80 * 2**30, rel=0.001)  # "80 GB" HBM is 80 GiB
    assert h100.nic_bw == 400e9 / 8
    assert h100.ridge_point("bfloat16") == pytest.approx(989e12 / 3.35e12)
    gb200 = GPUSpec.from_config(load("gb200"))
    assert gb200.nvlink_domain_gpus == 72 and gb200.gpus_per_node == 4


def test_hypothetical_gpu_is_roofline_only():
    cfg = load("hypothetical_example")
    assert cfg.tables is None
    g = GPUSpec.from_config(cfg)
    assert g.roofline_only and g.peak_flops("fp4") == 20000e12


def test_from_dictconfig():
    g = GPUSpec.from_config(OmegaConf.load(HW_DIR / "b200.yaml"))
    assert g.name == "b200" and g.peak_flops("fp4") == 9e15


@pytest.mark.parametrize("change,field", [
    ({"peak_tflops": {"fp6": 100.0}}, "hardware.peak_tflops.fp6"),
    ({"peak_tflops": {}}, "hardware.peak_tflops"),
    ({"peak_tflops": {"bfloat16": -1.0}}, "hardware.peak_tflops.bfloat16"),
    ({"hbm_gb": 0.0}, "hardware.hbm_gb"),
    ({"nvlink_gb_s": -1.0}, "hardware.nvlink_gb_s"),
    ({"gpus_per_node": 0}, "hardware.gpus_per_node"),
])
def test_bad_values_name_the_field(change, field):
    cfg = load("h100")
    for k, v in change.items():
        setattr(cfg, k, v)
    with pytest.raises(ConfigError) as e:
        GPUSpec.from_config(cfg)
    assert e.value.field == field


def test_unknown_operator_dtype():
    with pytest.raises(ConfigError, match="unknown dtype"):
        GPUSpec.from_config(load("h100")).peak_flops("fp6")
