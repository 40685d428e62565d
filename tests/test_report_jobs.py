"""cosim-report on a sweep's jobs (missing, failed), re-scoring against another SLO, the plot.

A real tiny sweep (`cosim -m`, 4 requests per job, ~3 s): job 0 runs, job 1 fails at config
time (tp=8 does not fit the default dp/ep), and Hydra's basic launcher stops there, so job 2
is never started (missing).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from report_fixtures import summary, sweep

from cosim.report import build_report
from cosim.report.best import annotate
from cosim.report.cli import report_main
from cosim.report.jobs import expected_jobs, sweep_jobs
from cosim.report.plot import draw_pareto
from cosim.report.rescore import score_requests
from cosim.report.runs import ReportError

ROOT = Path(__file__).resolve().parents[1]
COMMON = ["workload.num_requests=4", "output.progress=false"]


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sweep") / "mr"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-m", "cosim.cli", "-m", *COMMON,
                    "deployment.layout.tp=1,8,2", f"hydra.sweep.dir={out}"],
                   env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert (out / "0" / "summary.json").is_file(), "the first job of the sweep did not run"
    return out


def test_expected_jobs_follow_hydras_numbering(real_sweep):
    jobs = expected_jobs(real_sweep / "multirun.yaml")
    assert [j[-1] for j in jobs] == ["deployment.layout.tp=1", "deployment.layout.tp=8",
                                     "deployment.layout.tp=2"]
    # the job folder Hydra wrote holds exactly the expanded overrides
    assert tuple((real_sweep / "0" / ".hydra" / "overrides.yaml").read_text()
                 .replace("- ", "").split()) == jobs[0]


def test_sweep_lists_done_failed_and_missing_jobs(real_sweep):
    jobs = sweep_jobs(real_sweep)
    assert [(j.run_dir, j.job, j.status) for j in jobs] == [
        ("0", 0, "done"), ("1", 1, "failed"), ("2", 2, "missing")]
    assert "no summary.json" in jobs[1].reason
    assert jobs[2].overrides[-1] == "deployment.layout.tp=2"


def test_cli_writes_jobs_csv_and_prints_one_line_per_bad_job(real_sweep, tmp_path, capsys):
    assert report_main([str(real_sweep), "--out", str(tmp_path), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "jobs: 3 (1 done, 1 failed, 1 missing)" in out
    assert "jobs not done: 2 of 3" in out
    df = pd.read_csv(tmp_path / "jobs.csv")
    assert df["status"].tolist() == ["done", "failed", "missing"]
    assert df["overrides"].str.endswith("deployment.layout.tp=2").tolist() == [False, False, True]
    best = json.loads((tmp_path / "best.json").read_text())
    assert best["jobs"]["counts"] == {"done": 1, "infeasible": 0, "failed": 1, "missing": 1}
    assert [j["run_dir"] for j in best["jobs"]["not_done"]] == ["1", "2"]


def test_error_and_infeasible_summaries(tmp_path):
    bad = summary()
    bad["error"] = "network backend died"
    root = sweep(tmp_path / "mr", [(["deployment=chunked"], summary()),
                                   (["deployment=pd"], summary("pd", feasible=False)),
                                   (["deployment=afd"], bad),
                                   (["deployment=pd_afd"], "{not json")])
    # the fixture's multirun.yaml has no override list: the folders are the jobs
    assert [(j.run_dir, j.status) for j in sweep_jobs(root)] == [
        ("0", "done"), ("1", "infeasible"), ("2", "failed"), ("3", "failed")]
    jobs = sweep_jobs(root)
    assert "network backend died" in jobs[2].reason and "not valid JSON" in jobs[3].reason


def test_a_sweep_with_no_finished_job_still_lists_its_jobs(tmp_path, capsys):
    root = sweep(tmp_path / "mr", [(["deployment=pd"], None)])
    assert report_main([str(root), "--no-plot"]) == 2
    err = capsys.readouterr().err
    assert "1 failed" in err and err.strip().splitlines()[-1].startswith("cosim-report: ")


# ---- re-scoring ------------------------------------------------------------------------

def test_score_requests_by_hand():
    req = pd.DataFrame({"finish_s": [1.0, 2.0, np.nan, 3.0],
                        "ttft_s": [0.1, 0.3, np.nan, 0.1],
                        "tpot_s": [0.01, 0.01, np.nan, np.nan],  # last: one-token output
                        "e2e_s": [1.0, 2.0, np.nan, 3.0],
                        "output_tokens": [10, 20, 30, 1]})
    a, g = score_requests(req, ttft_ms=200, tpot_ms=20, e2e_ms=None, simulated_s=4.0)
    assert a == 0.5 and g == (10 + 1) / 4.0  # request 1 misses TTFT, request 2 never finished
    a, g = score_requests(req, ttft_ms=500, tpot_ms=5, e2e_ms=None, simulated_s=4.0)
    assert a == 0.25 and g == 1 / 4.0
    a, _ = score_requests(req, ttft_ms=500, tpot_ms=20, e2e_ms=1500, simulated_s=4.0)
    assert a == 0.25


def test_rescore_at_the_runs_own_slo_reproduces_its_summary(real_sweep):
    stored = json.loads((real_sweep / "0" / "summary.json").read_text())
    rep = build_report(real_sweep, slo_attainment_min=0.0,
                       ttft_ms=stored["slo"]["ttft_ms"], tpot_ms=stored["slo"]["tpot_ms"])
    row = rep.runs.iloc[0]
    assert row["slo_attainment"] == pytest.approx(stored["slo_attainment"])
    assert row["goodput_tok_s"] == pytest.approx(stored["goodput_tok_s"])


def test_rescore_with_a_loose_slo_makes_the_run_eligible(real_sweep, tmp_path, capsys):
    req = pd.read_parquet(real_sweep / "0" / "requests.parquet")
    loose_ttft = float(req["ttft_s"].max()) * 1e3 + 1
    loose_tpot = float(req["tpot_s"].max()) * 1e3 + 1
    before = build_report(real_sweep, slo_attainment_min=0.9)
    assert before.runs["slo_attainment"].iloc[0] < 0.9  # the default SLO is missed
    assert report_main([str(real_sweep), "--out", str(tmp_path), "--no-plot",
                        "--ttft-ms", str(loose_ttft), "--tpot-ms", str(loose_tpot)]) == 0
    best = json.loads((tmp_path / "best.json").read_text())
    scen = best["scenarios"][0]
    assert scen["eligible"] == 1 and scen["best"]["run_dir"] == "0"
    assert f"slo.tpot_ms={loose_tpot}" in scen["scenario"]
    assert best["rescored"]["ttft_ms"] == loose_ttft
    runs = pd.read_csv(tmp_path / "runs.csv")
    assert runs["slo_attainment"].tolist() == [1.0]
    assert runs["stored.slo_attainment"].tolist() == [before.runs["slo_attainment"].iloc[0]]
    assert "re-scored from requests.parquet" in capsys.readouterr().out


def test_rescore_without_requests_table_names_the_file(tmp_path, capsys):
    root = sweep(tmp_path / "mr", [(["deployment=chunked"], summary())])
    assert report_main([str(root), "--no-plot", "--tpot-ms", "30"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"cosim-report: {root / '0' / 'requests.parquet'}: cannot re-score")
    with pytest.raises(ReportError):
        build_report(root, tpot_ms=30)
    rep = build_report(root, tpot_ms=30, skip_bad=True)  # or leave it unscored, listed
    assert rep.best["rescored"]["not_rescored"][0]["run_dir"] == "0"


def test_bad_slo_value_is_rejected(real_sweep, capsys):
    with pytest.raises(SystemExit) as e:
        report_main([str(real_sweep), "--tpot-ms", "-3"])
    assert e.value.code == 2 and "positive" in capsys.readouterr().err


# ---- plot ------------------------------------------------------------------------------

def test_plot_draws_the_tpot_line_and_labels_points(tmp_path):
    root = sweep(tmp_path / "mr", [
        (["deployment=chunked", "workload.arrival.users=4"], summary(x=60.0, y=50.0)),
        (["deployment=chunked", "workload.arrival.users=16"], summary(x=40.0, y=120.0)),
        (["deployment=pd", "workload.arrival.users=16"], summary("pd", x=50.0, y=100.0)),
    ])
    from cosim.report.runs import load_multirun
    runs = annotate(load_multirun(root).runs, "tok_s_per_user_mean", "output_tok_s_per_gpu",
                    slo_attainment_min=0.9)
    fig = draw_pareto(runs, "tok_s_per_user_mean", "output_tok_s_per_gpu", title="t")
    ax = fig.axes[0]
    vlines = [ln for ln in ax.get_lines() if ln.get_label().startswith("TPOT SLO 15 ms")]
    assert len(vlines) == 1 and vlines[0].get_xdata()[0] == pytest.approx(1000 / 15)
    assert any(ln.get_label().startswith("TTFT SLO 50 ms") for ln in ax.get_lines())
    texts = {t.get_text() for t in ax.texts}
    # the configuration without the group the colour shows, keys cut to their last part
    assert texts == {"users=4", "users=16"} and len(ax.texts) == 3


def test_coinciding_points_share_one_label(tmp_path):
    root = sweep(tmp_path / "mr", [
        (["workload.arrival.users=16"], summary(x=40.0, y=120.0)),
        (["workload.arrival.users=64"], summary(x=40.0, y=120.0)),  # saturated: same point
        (["workload.arrival.users=4"], summary(x=60.0, y=50.0)),
    ])
    from cosim.report.runs import load_multirun
    runs = annotate(load_multirun(root).runs, "tok_s_per_user_mean", "output_tok_s_per_gpu")
    ax = draw_pareto(runs, "tok_s_per_user_mean", "output_tok_s_per_gpu").axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["users=16 / users=64", "users=4"]


def test_experiment_grid_from_sweeper_params_and_command_line(tmp_path):
    """An experiment's `hydra.sweeper.params` grid, one key replaced on the command line
    (as Hydra does: the later override of a key wins), one job folder deleted."""
    from report_fixtures import write_job

    root = tmp_path / "mr"
    root.mkdir()
    (root / "multirun.yaml").write_text(
        "hydra:\n"
        "  sweeper:\n"
        "    _target_: hydra._internal.core_plugins.basic_sweeper.BasicSweeper\n"
        "    max_batch_size: null\n"
        "    params:\n"
        "      deployment: chunked,pd,afd\n"
        "      workload.arrival.users: 4,16\n"
        "  overrides:\n"
        "    task:\n"
        "    - +experiment=frontier_small\n"
        "    - deployment=chunked,afd\n")
    jobs = expected_jobs(root / "multirun.yaml")
    assert [j[0] for j in jobs] == ["deployment=chunked"] * 2 + ["deployment=afd"] * 2
    assert jobs[1] == ("deployment=chunked", "workload.arrival.users=16",
                       "+experiment=frontier_small")
    for i, ov in enumerate(jobs):
        if i != 2:
            write_job(root, str(i), list(ov), summary())
    assert [(j.run_dir, j.status) for j in sweep_jobs(root)] == [
        ("0", "done"), ("1", "done"), ("2", "missing"), ("3", "done")]


def test_every_option_is_documented():
    from cosim.report.cli import parser

    page = (ROOT / "docs" / "report.md").read_text()
    options = [s for a in parser()._actions for s in a.option_strings if s.startswith("--")]
    missing = [o for o in options if o != "--help" and f"`{o}" not in page]
    assert not missing, f"docs/report.md does not document {missing}"
