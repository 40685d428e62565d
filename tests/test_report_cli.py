"""cosim-report: the files it writes, its console output and its exit status."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from report_fixtures import summary, sweep

from cosim.report.cli import report_main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def two_workloads(tmp_path):
    runs = []
    for wl in ("chat", "coding"):
        for dep, pts in (("chunked", [(20, 200, 0.5), (30, 150, 0.95), (40, 100, 0.99)]),
                         ("afd", [(35, 90, 0.97), (60, 50, 1.0)])):
            for users, (x, y, att) in zip((64, 16, 4), pts, strict=False):
                runs.append(([f"deployment={dep}", f"workload={wl}",
                              f"workload.arrival.users={users}"],
                             summary(dep, wl, x=float(x), y=float(y), attainment=att,
                                     ttft_ms=50.0 if wl == "chat" else 100.0)))
    return sweep(tmp_path / "multirun" / "12-00-00", runs)


def test_writes_runs_pareto_best_and_png(two_workloads, tmp_path, capsys):
    out = tmp_path / "rep"
    assert report_main([str(two_workloads), "--out", str(out), "--slo-attainment", "0.9"]) == 0
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 10
    for col in ("label", "deployment", "workload.arrival.users", "output_tok_s_per_gpu",
                "eligible", "on_frontier", "on_scenario_frontier", "scenario", "group"):
        assert col in runs.columns
    pareto = pd.read_csv(out / "pareto.csv")
    # per workload: chunked B, C (A misses the SLO) and afd's two runs
    assert len(pareto) == 8
    assert set(pareto["run_dir"]) == set(runs.loc[runs["on_frontier"], "run_dir"])
    best = json.loads((out / "best.json").read_text())
    assert [s["best"]["output_tok_s_per_gpu"] for s in best["scenarios"]] == [150.0, 150.0]
    assert best["constraint"] == {"feasible": True, "slo_attainment_min": 0.9}
    png = (out / "pareto.png").read_bytes()
    assert png.startswith(PNG_SIGNATURE) and len(png) > 10_000
    text = capsys.readouterr().out
    assert "chunked" in text and "pareto.png" in text


def test_default_output_folder_is_inside_the_multirun(two_workloads):
    assert report_main([str(two_workloads), "--no-plot", "--x", "goodput_tok_s"]) == 0
    assert (two_workloads / "report" / "best.json").exists()
    assert not (two_workloads / "report" / "pareto.png").exists()
    # the report folder itself is not taken for a run on the next call
    assert report_main([str(two_workloads), "--no-plot"]) == 0


def test_errors_exit_2_with_one_line_naming_the_problem(tmp_path, capsys):
    assert report_main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"cosim-report: {tmp_path}: no runs found")
    root = sweep(tmp_path / "bad", [(["deployment=pd"], '{"feasible": tru')])
    assert report_main([str(root)]) == 2
    assert str(root / "0" / "summary.json") in capsys.readouterr().err


def test_bad_threshold_is_rejected_by_the_parser(two_workloads, capsys):
    with pytest.raises(SystemExit) as exc:
        report_main([str(two_workloads), "--slo-attainment", "1.5"])
    assert exc.value.code == 2
    assert "must be a fraction in [0, 1]" in capsys.readouterr().err


def test_runs_as_a_program(two_workloads, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "cosim.report.cli", str(two_workloads),
                           "--out", str(tmp_path / "r"), "--no-plot"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r" / "pareto.csv").exists()
