"""Write the report of a multirun directory: runs.csv, pareto.csv, best.json, pareto.png."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cosim.files import write_atomic
from cosim.report.best import DEFAULT_GROUP, DEFAULT_SCENARIO, annotate, best_configurations
from cosim.report.runs import load_multirun

PARETO_COLUMNS = ("scenario", "group", "label", "on_scenario_frontier", "num_gpus",
                  "slo_attainment", "ttft_ms_p99", "tpot_ms_p99", "run_dir")


@dataclass
class Report:
    """What write_report produced: the annotated runs, the best.json document, the files."""

    runs: pd.DataFrame
    pareto: pd.DataFrame
    best: dict[str, Any]
    files: dict[str, Path] = field(default_factory=dict)


def build_report(root: str | Path, *, x: str = "tok_s_per_user_mean",
                 y: str = "output_tok_s_per_gpu", metric: str | None = None,
                 slo_attainment_min: float | None = 0.9,
                 group_by: Sequence[str] = DEFAULT_GROUP,
                 scenario_by: Sequence[str] = DEFAULT_SCENARIO,
                 config_keys: Sequence[str] = (), skip_bad: bool = False) -> Report:
    """Load, annotate and select (no files written); see write_report for the arguments."""
    mr = load_multirun(root, config_keys=config_keys, skip_bad=skip_bad)
    metric = metric or y
    runs = annotate(mr.runs, x, y, slo_attainment_min=slo_attainment_min, group_by=group_by,
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
        "skipped": [{"run_dir": s.run_dir, "reason": s.reason} for s in mr.skipped],
        "scenarios": best_configurations(runs, metric=metric, x=x, y=y,
                                         slo_attainment_min=slo_attainment_min,
                                         override_keys=mr.override_keys,
                                         group_by=group_by, scenario_by=scenario_by),
    }
    return Report(runs=runs, pareto=pareto, best=best)


def write_report(root: str | Path, out_dir: str | Path | None = None, *,
                 x: str = "tok_s_per_user_mean", y: str = "output_tok_s_per_gpu",
                 metric: str | None = None, slo_attainment_min: float | None = 0.9,
                 group_by: Sequence[str] = DEFAULT_GROUP,
                 scenario_by: Sequence[str] = DEFAULT_SCENARIO,
                 config_keys: Sequence[str] = (), skip_bad: bool = False,
                 plot: bool = True) -> Report:
    """Report on the multirun directory `root` into `out_dir` (default `<root>/report`).

    Frontier of `y` against `x` (both maximised) per scenario and group, among feasible runs
    with `slo_attainment >= slo_attainment_min` (None or 0: no SLO constraint); the best run
    maximises `metric` (default `y`). Files: runs.csv (every run, annotated), pareto.csv (the
    frontier runs), best.json, pareto.png.
    """
    rep = build_report(root, x=x, y=y, metric=metric, slo_attainment_min=slo_attainment_min,
                       group_by=group_by, scenario_by=scenario_by, config_keys=config_keys,
                       skip_bad=skip_bad)
    out = Path(out_dir) if out_dir is not None else Path(root) / "report"
    out.mkdir(parents=True, exist_ok=True)
    files = {"runs.csv": out / "runs.csv", "pareto.csv": out / "pareto.csv",
             "best.json": out / "best.json"}
    write_atomic(files["runs.csv"], lambda p: rep.runs.to_csv(p, index=False))
    write_atomic(files["pareto.csv"], lambda p: rep.pareto.to_csv(p, index=False))
    write_atomic(files["best.json"],
                  lambda p: p.write_text(json.dumps(rep.best, indent=2) + "\n"))
    if plot:
        from cosim.report.plot import plot_pareto

        files["pareto.png"] = out / "pareto.png"
        thr = f"slo_attainment >= {slo_attainment_min:g}" if slo_attainment_min else \
            "no SLO constraint"
        write_atomic(files["pareto.png"], lambda p: plot_pareto(
            rep.runs, x, y, p,
            title=f"{Path(root).resolve().name}: frontier among feasible runs, {thr} "
                  "(hollow: not eligible)"))
    rep.files = files
    return rep
