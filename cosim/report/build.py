"""Write the report of a multirun directory: runs.csv, pareto.csv, best.json, jobs.csv,
pareto.png."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cosim.files import write_atomic
from cosim.report.best import DEFAULT_GROUP, DEFAULT_SCENARIO, annotate, best_configurations
from cosim.report.jobs import Job, jobs_frame, jobs_json, sweep_jobs
from cosim.report.rescore import rescore
from cosim.report.runs import load_multirun

PARETO_COLUMNS = ("scenario", "group", "label", "on_scenario_frontier", "num_gpus",
                  "slo_attainment", "ttft_ms_p99", "tpot_ms_p99", "run_dir")


@dataclass
class Report:
    """What write_report produced: the annotated runs, the best.json document, the files."""

    runs: pd.DataFrame
    pareto: pd.DataFrame
    best: dict[str, Any]
    jobs: list[Job] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)


def build_report(root: str | Path, *, x: str = "tok_s_per_user_mean",
                 y: str = "output_tok_s_per_gpu", metric: str | None = None,
                 slo_attainment_min: float | None = 0.9,
                 group_by: Sequence[str] = DEFAULT_GROUP,
                 scenario_by: Sequence[str] = DEFAULT_SCENARIO,
                 config_keys: Sequence[str] = (), skip_bad: bool = False,
                 ttft_ms: float | None = None, tpot_ms: float | None = None) -> Report:
    """Load, annotate and select (no files written); see write_report for the arguments."""
    jobs = sweep_jobs(root)
    mr = load_multirun(root, config_keys=config_keys, skip_bad=skip_bad)
    metric = metric or y
    table = mr.runs
    rescored: dict[str, Any] | None = None
    if ttft_ms is not None or tpot_ms is not None:
        table, not_rescored = rescore(table, root, ttft_ms=ttft_ms, tpot_ms=tpot_ms,
                                      skip_bad=skip_bad)
        rescored = {"ttft_ms": ttft_ms, "tpot_ms": tpot_ms,
                    "source": "requests.parquet of each run (ttft_s, tpot_s, e2e_s)",
                    "not_rescored": not_rescored}
    runs = annotate(table, x, y, slo_attainment_min=slo_attainment_min, group_by=group_by,
                    scenario_by=scenario_by)
    cols = [c for c in dict.fromkeys(("scenario", "group", x, y, metric) + PARETO_COLUMNS)
            if c in runs.columns]
    pareto = runs[runs["on_frontier"]][cols + [k for k in mr.override_keys if k not in cols]]
    pareto = pareto.sort_values(["scenario", "group", x], kind="stable").reset_index(drop=True)
    best = {
        "multirun": str(Path(root).resolve()),
        "x": x, "y": y, "metric": metric,
        "group_by": list(group_by),
        "scenario_by": [c for c in scenario_by if c in mr.runs.columns],
        "constraint": {"feasible": True, "slo_attainment_min": slo_attainment_min},
        "runs": int(len(runs)),
        "eligible": int(runs["eligible"].sum()),
        "rescored": rescored,
        "jobs": jobs_json(jobs),
        "skipped": [{"run_dir": s.run_dir, "reason": s.reason} for s in mr.skipped],
        "scenarios": best_configurations(runs, metric=metric, x=x, y=y,
                                         slo_attainment_min=slo_attainment_min,
                                         override_keys=mr.override_keys,
                                         group_by=group_by, scenario_by=scenario_by),
    }
    return Report(runs=runs, pareto=pareto, best=best, jobs=jobs)


def write_report(root: str | Path, out_dir: str | Path | None = None, *,
                 x: str = "tok_s_per_user_mean", y: str = "output_tok_s_per_gpu",
                 metric: str | None = None, slo_attainment_min: float | None = 0.9,
                 group_by: Sequence[str] = DEFAULT_GROUP,
                 scenario_by: Sequence[str] = DEFAULT_SCENARIO,
                 config_keys: Sequence[str] = (), skip_bad: bool = False,
                 plot: bool = True, ttft_ms: float | None = None,
                 tpot_ms: float | None = None) -> Report:
    """Report on the multirun directory `root` into `out_dir` (default `<root>/report`).

    Frontier of `y` against `x` (both maximised) per scenario and group, among feasible runs
    with `slo_attainment >= slo_attainment_min` (None or 0: no SLO constraint); the best run
    maximises `metric` (default `y`). `ttft_ms` / `tpot_ms`: re-score every run against
    these objectives from its requests.parquet (cosim.report.rescore) before selecting.
    Files: runs.csv (every run, annotated), pareto.csv (the frontier runs), best.json,
    jobs.csv (every job of the sweep with its status: done, infeasible, failed, missing),
    pareto.png.
    """
    rep = build_report(root, x=x, y=y, metric=metric, slo_attainment_min=slo_attainment_min,
                       group_by=group_by, scenario_by=scenario_by, config_keys=config_keys,
                       skip_bad=skip_bad, ttft_ms=ttft_ms, tpot_ms=tpot_ms)
    out = Path(out_dir) if out_dir is not None else Path(root) / "report"
    out.mkdir(parents=True, exist_ok=True)
    files = {"runs.csv": out / "runs.csv", "pareto.csv": out / "pareto.csv",
             "best.json": out / "best.json", "jobs.csv": out / "jobs.csv"}
    write_atomic(files["jobs.csv"], lambda p: jobs_frame(rep.jobs).to_csv(p, index=False))
    write_atomic(files["runs.csv"], lambda p: rep.runs.to_csv(p, index=False))
    write_atomic(files["pareto.csv"], lambda p: rep.pareto.to_csv(p, index=False))
    write_atomic(files["best.json"],
                  lambda p: p.write_text(json.dumps(rep.best, indent=2) + "\n"))
    if plot:
        from cosim.report.plot import plot_pareto

        files["pareto.png"] = out / "pareto.png"
        slo = " (re-scored)" if rep.best["rescored"] else ""
        thr = f"slo_attainment >= {slo_attainment_min:g}" if slo_attainment_min else \
            "no SLO constraint"
        thr += slo
        write_atomic(files["pareto.png"], lambda p: plot_pareto(
            rep.runs, x, y, p,
            title=f"{Path(root).resolve().name}: frontier among feasible runs, {thr} "
                  "(hollow: not eligible)"))
    rep.files = files
    return rep
