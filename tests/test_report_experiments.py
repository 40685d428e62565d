"""Experiment files (hydra_configs/experiment/) and launcher configs compose; a small sweep
runs end to end and cosim-report reads it."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from cosim.config import apply_kind_overrides, register_configs, to_object, validate
from cosim.paths import hydra_config_dir
from cosim.report.cli import report_main
from cosim.serving.deployments import known_deployments

EXPERIMENTS = sorted(p.stem for p in (Path(hydra_config_dir()) / "experiment").glob("*.yaml"))


def compose_cfg(overrides: list[str], hydra_cfg: bool = False):
    register_configs()
    with initialize_config_dir(config_dir=hydra_config_dir(), version_base="1.3"):
        return compose("config", overrides=overrides, return_hydra_config=hydra_cfg)


def points_of(name: str):
    """Each swept configuration of experiment `name` as (overrides, composed config)."""
    register_configs()
    with initialize_config_dir(config_dir=hydra_config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=[f"+experiment={name}"], return_hydra_config=True)
        params = OmegaConf.to_container(cfg.hydra.sweeper.params)
        assert params, f"{name} declares no hydra.sweeper.params"
        assert f"multirun/{name}/" in OmegaConf.to_container(cfg.hydra.sweep)["dir"]
        for point in sweep_points(params):
            yield point, compose("config", overrides=[f"+experiment={name}", *point])


def sweep_points(params: dict, full: bool = False) -> list[list[str]]:
    """Override lists of the basic sweeper (comma lists only): the cartesian product, or
    (full=False) a covering set in which every value of every key appears at least once."""
    keys = list(params)
    values = [str(params[k]).split(",") for k in keys]
    if full:
        combos = list(itertools.product(*values))
    else:
        n = max(len(v) for v in values)
        combos = [tuple(v[i % len(v)] for v in values) for i in range(n)]
    return [[f"{k}={v}" for k, v in zip(keys, combo, strict=True)] for combo in combos]


def test_the_documented_experiments_exist():
    assert {"seed_study_small", "seed_study", "frontier_small", "pd_ratio",
            "afd_ratio", "kinds_small"} <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_swept_value_composes_and_validates(name):
    for point, cfg in points_of(name):
        cfg = apply_kind_overrides(cfg, known_deployments())  # kind-scoped keys (docs/report.md)
        validate(to_object(cfg))
        for ov in point:  # a swept value reached the config (a group choice: its name/kind)
            key, value = ov.split("=")
            key = key.lstrip("+")
            if key.startswith("kind_overrides."):  # applied to the deployment of its kind only
                _, kind, key = key.split(".", 2)
                if cfg.deployment.kind != kind:
                    continue
                key = f"deployment.{key}"
            node = OmegaConf.select(cfg, key)
            got = (node.get("name", node.get("kind")) if OmegaConf.is_config(node) else node)
            assert str(got) == value, (name, key, got)


def test_seed_study_small_is_the_3x2_sweep_of_the_brief():
    cfg = compose_cfg(["+experiment=seed_study_small"], hydra_cfg=True)
    params = OmegaConf.to_container(cfg.hydra.sweeper.params)
    assert params == {"deployment": "chunked,pd,afd", "workload": "chat,coding"}
    assert cfg.workload.num_requests == 100


def test_parallel_launcher_uses_joblib_with_an_integer_job_count(monkeypatch):
    monkeypatch.setenv("COSIM_JOBS", "3")
    cfg = compose_cfg(["hydra/launcher=parallel"], hydra_cfg=True)
    assert cfg.hydra.launcher._target_.endswith("JoblibLauncher")
    assert cfg.hydra.launcher.n_jobs == 3


@pytest.mark.parametrize("launcher,plugin", [("slurm", "hydra_plugins.hydra_submitit_launcher"),
                                             ("ray", "hydra_plugins.hydra_ray_launcher")])
def test_cluster_launchers_compose_when_their_plugin_is_installed(launcher, plugin):
    pytest.importorskip(plugin)
    cfg = compose_cfg([f"hydra/launcher={launcher}"], hydra_cfg=True)
    assert "_target_" in cfg.hydra.launcher


def test_small_sweep_runs_and_is_reported(tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = subprocess.run(
        [sys.executable, "-c", "from cosim.cli import main; main()", "-m",
         "+experiment=seed_study_small", "deployment=chunked,pd", "workload.num_requests=3",
         "output.progress=false", f"hydra.sweep.dir={sweep_dir}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert report_main([str(sweep_dir), "--slo-attainment", "0"]) == 0
    best = json.loads((sweep_dir / "report" / "best.json").read_text())
    assert best["runs"] == 4  # 2 deployments x 2 workloads
    assert [s["scenario"].split()[1] for s in best["scenarios"]] == ["workload=chat",
                                                                     "workload=coding"]
    for scen in best["scenarios"]:
        assert set(scen["by_group"]) == {"chunked", "pd"}
    assert (sweep_dir / "report" / "pareto.png").stat().st_size > 0
