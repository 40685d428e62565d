"""`cosim -m` over several deployment kinds: kind-scoped keys (`+kind_overrides.<kind>.<key>`)
apply only to jobs of that kind and are validated against that kind's schema."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from cosim.config import (
    ConfigError,
    apply_kind_overrides,
    register_configs,
    to_object,
    validate,
)
from cosim.paths import hydra_config_dir
from cosim.report.runs import load_multirun
from cosim.serving.deployments import known_deployments

AFD_DP = "+kind_overrides.afd.roles.attention.layout.dp"


def _compose(overrides):
    register_configs()
    with initialize_config_dir(config_dir=hydra_config_dir(), version_base="1.3"):
        return compose("config", overrides=overrides)


def _cosim(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from cosim.cli import main; main()", *args,
                           "output.progress=false"],
                          cwd=cwd, capture_output=True, text=True, timeout=300)


def test_kind_keys_apply_only_to_their_kind():
    afd = apply_kind_overrides(_compose(["deployment=afd", f"{AFD_DP}=4"]), known_deployments())
    assert afd.deployment.roles.attention.layout.dp == 4
    assert afd.deployment.roles.ffn.layout.ep == 8  # the rest of afd.yaml is kept
    chunked = _compose(["deployment=chunked", f"{AFD_DP}=4"])
    out = apply_kind_overrides(chunked, known_deployments())
    assert dict(out.deployment.roles) == {}
    assert out.deployment.layout.dp == 8
    # the Config dataclass path (cosim.simulate accepts one) gives the same deployment
    obj = to_object(_compose(["deployment=afd", f"{AFD_DP}=2"]))
    assert to_object(apply_kind_overrides(obj)).deployment.roles["attention"].layout.dp == 2


def test_options_stay_free_and_are_checked_per_kind():
    cfg = apply_kind_overrides(_compose(["deployment=pd", "+kind_overrides.pd.options.kv_transfer=layerwise"]))
    assert cfg.deployment.options.kv_transfer == "layerwise"
    validate(to_object(cfg))
    bad = apply_kind_overrides(_compose(["deployment=pd", "+kind_overrides.pd.options.nope=1"]))
    with pytest.raises(ConfigError) as e:
        validate(to_object(bad))
    assert e.value.field == "deployment.options.nope"


def _doc_kind_overrides() -> list[str]:
    text = (Path(__file__).parents[1] / "docs" / "report.md").read_text()
    return sorted(set(re.findall(r"\+kind_overrides\.(?:chunked|pd|afd|pd_afd)\.[\w.]+=[\w]+", text)))


def test_the_documented_kind_keys_apply_and_validate():
    keys = _doc_kind_overrides()
    assert len(keys) >= 5
    for kind in ("chunked", "pd", "afd"):
        cfg = apply_kind_overrides(_compose([f"deployment={kind}", *keys]), known_deployments())
        validate(to_object(cfg))
        for ov in keys:
            key, value = ov.lstrip("+").split("=")
            _, k, rest = key.split(".", 2)
            if k == kind:
                assert str(OmegaConf.select(cfg, f"deployment.{rest}")) == value, ov


def test_no_kind_overrides_is_a_no_op():
    cfg = _compose([])
    assert apply_kind_overrides(cfg, known_deployments()) is cfg


@pytest.mark.parametrize("override, field, needle", [
    ("+kind_overrides.afd.roles.attention.layout.foo=4",
     "kind_overrides.afd.roles.attention.layout.foo", "Key 'foo' not in 'LayoutConfig'"),
    ("+kind_overrides.afd.roles.attention.layout.dp=abc",
     "kind_overrides.afd.roles.attention.layout.dp", "could not be converted to Integer"),
    ("+kind_overrides.afd.roles.prefil.count=2", "kind_overrides.afd.roles.prefil", "prefil"),
    ("+kind_overrides.adf.replicas=2", "kind_overrides.adf", "unknown deployment kind 'adf'"),
    ("+kind_overrides.afd=3", "kind_overrides.afd", "expected deployment keys"),
])
def test_bad_kind_keys_name_the_field(override, field, needle):
    with pytest.raises(ConfigError) as e:
        apply_kind_overrides(_compose(["deployment=afd", override]), known_deployments())
    assert e.value.field == field
    assert needle in str(e.value)


def test_multirun_over_two_kinds_with_afd_keys(tmp_path):
    sweep = tmp_path / "sweep"
    proc = _cosim("-m", "deployment=chunked,afd", f"{AFD_DP}=4", "workload.num_requests=6",
                  f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summaries = {json.loads(p.read_text())["deployment_kind"]: json.loads(p.read_text())
                 for p in sweep.glob("*/summary.json")}
    assert set(summaries) == {"chunked", "afd"}
    assert summaries["chunked"]["num_gpus"] == 8  # chunked.yaml: one EP8 replica
    assert summaries["afd"]["num_gpus"] == 4 + 8  # DP4 attention + EP8 FFN
    assert all(s["requests_completed"] == 6 for s in summaries.values())
    # the report shows the kind key only where it applied, and the deployment each job ran
    runs = load_multirun(sweep, config_keys=["deployment.roles.attention.layout.dp"]).runs
    by_kind = runs.set_index("deployment_kind")
    col = "kind_overrides.afd.roles.attention.layout.dp"
    assert by_kind.loc["afd", col] == 4
    assert by_kind.loc["afd", "cfg.deployment.roles.attention.layout.dp"] == 4
    assert by_kind[col].isna()["chunked"]
    assert by_kind.loc["chunked", "label"] == "deployment=chunked"


def test_unknown_kind_key_exits_2_with_one_line(tmp_path):
    proc = _cosim("deployment=afd", "+kind_overrides.afd.roles.attention.layout.foo=4",
                  "workload.num_requests=4", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("cosim:")]
    assert lines == ["cosim: configuration error: kind_overrides.afd.roles.attention.layout.foo: "
                     "not valid for deployment kind 'afd': Key 'foo' not in 'LayoutConfig'"]
    assert not (tmp_path / "run" / "summary.json").exists()
