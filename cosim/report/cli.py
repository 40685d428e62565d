"""`cosim-report <multirun dir>`: Pareto frontier and best configuration of a sweep.

    cosim -m +experiment=seed_study_small
    cosim-report multirun/seed_study_small/<timestamp> --slo-attainment 0.9

    cosim-report multirun/.../<timestamp> --ttft-ms 200 --tpot-ms 30   # another SLO, no re-run

Writes runs.csv, pareto.csv, best.json, jobs.csv and pareto.png into `--out` (default
`<multirun dir>/report`), prints the sweep's failed and missing jobs (one line each) and the
best run per scenario and deployment. See docs/report.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cosim.report.best import DEFAULT_GROUP, DEFAULT_SCENARIO
from cosim.report.jobs import Job, status_counts, sweep_jobs
from cosim.report.runs import ReportError


def _columns(text: str) -> list[str]:
    return [c.strip() for c in text.split(",") if c.strip()]


def _attainment(text: str) -> float | None:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a fraction in [0, 1], got {v}")
    return v


def _ms(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of milliseconds, got {v}")
    return v


def parser() -> argparse.ArgumentParser:
    """The command-line parser of cosim-report."""
    p = argparse.ArgumentParser(
        prog="cosim-report",
        description="Pareto frontier (tokens/s per GPU vs tokens/s per user) and best "
                    "configuration per SLO and deployment over a Hydra multirun directory.")
    p.add_argument("multirun_dir", help="folder written by `cosim -m ...` (searched at any depth "
                                        "for run folders with summary.json)")
    p.add_argument("--out", default=None, help="output folder (default: <multirun_dir>/report)")
    p.add_argument("--slo-attainment", type=_attainment, default=0.9, metavar="FRACTION",
                   help="eligible runs reach at least this SLO attainment (default 0.9; 0: no "
                        "SLO constraint, feasible runs only)")
    p.add_argument("--ttft-ms", type=_ms, default=None, metavar="MS",
                   help="re-score every run against this TTFT objective from its "
                        "requests.parquet (default: each run's own SLO)")
    p.add_argument("--tpot-ms", type=_ms, default=None, metavar="MS",
                   help="re-score every run against this TPOT objective (default: each run's "
                        "own SLO)")
    p.add_argument("--x", default="tok_s_per_user_mean",
                   help="frontier x metric, maximised (default tok_s_per_user_mean)")
    p.add_argument("--y", default="output_tok_s_per_gpu",
                   help="frontier y metric, maximised (default output_tok_s_per_gpu)")
    p.add_argument("--metric", default=None,
                   help="what the best run maximises (default: the y metric)")
    p.add_argument("--by", type=_columns, default=list(DEFAULT_GROUP), metavar="COLS",
                   help="comma-separated columns that name a group (colour, own frontier); "
                        "default deployment_kind; e.g. deployment_kind,hardware")
    p.add_argument("--scenario", type=_columns, default=list(DEFAULT_SCENARIO), metavar="COLS",
                   help="comma-separated columns that separate scenarios (own panel and best); "
                        "default model,workload,slo.ttft_ms,slo.tpot_ms (absent ones ignored)")
    p.add_argument("--config-keys", type=_columns, default=[], metavar="KEYS",
                   help="dotted keys of .hydra/config.yaml to add as cfg.<key> columns")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip runs with a malformed summary.json/overrides.yaml instead of failing")
    p.add_argument("--no-plot", action="store_true", help="do not draw pareto.png")
    return p


def _fmt(v: object, spec: str = ",.1f") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


SHORT_NAMES = {"output_tok_s_per_gpu": "out tok/s/GPU", "total_tok_s_per_gpu": "tok/s/GPU",
               "tok_s_per_user_mean": "tok/s/user", "goodput_tok_s": "goodput tok/s"}


def print_best(best: dict) -> None:
    """The best run per scenario and group as a table on stdout."""
    from rich.console import Console
    from rich.table import Table

    metric, x = best["metric"], best["x"]
    thr = best["constraint"]["slo_attainment_min"]
    console = Console()
    for scen in best["scenarios"]:
        t = Table(title=f"{scen['scenario']}: {scen['eligible']}/{scen['runs']} runs eligible"
                        + (f" (SLO attainment >= {thr:g})" if thr else ""))
        for col in ("group", "best run", SHORT_NAMES.get(metric, metric), SHORT_NAMES.get(x, x),
                    "SLO att.", "GPUs"):
            t.add_column(col, justify="left" if col in ("group", "best run") else "right",
                         overflow="fold")
        for g, v in scen["by_group"].items():
            b = v["best"]
            if b is None:
                t.add_row(g, f"[dim]{v['reason']}[/dim]", "-", "-", "-", "-")
                continue
            t.add_row(g, b["detail"], _fmt(b.get(metric)),
                      _fmt(b.get(x)), _fmt(b.get("slo_attainment"), ".1%"),
                      _fmt(b.get("num_gpus")))
        console.print(t)
        if scen["best"] is not None:
            console.print(f"  best: {scen['best']['group']}: {scen['best']['label']} "
                          f"({metric} = {_fmt(scen['best'].get(metric))})")


def print_jobs(jobs: list[Job], file=None) -> None:
    """One line per failed or missing job, then the counts; nothing for a clean sweep."""
    from rich.console import Console
    from rich.table import Table

    console = Console(file=file)
    bad = [j for j in jobs if j.status in ("failed", "missing")]
    counts = status_counts(jobs)
    line = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    if bad:
        t = Table(title=f"jobs not done: {len(bad)} of {len(jobs)}")
        for col in ("job", "status", "overrides", "reason"):
            t.add_column(col, overflow="fold")
        for j in bad:
            t.add_row(j.run_dir, j.status, " ".join(j.overrides), j.reason)
        console.print(t)
    console.print(f"jobs: {len(jobs)} ({line or 'none'})")


def report_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `cosim-report`; returns the exit status (2 on a bad folder or file)."""
    from cosim.report.build import write_report

    args = parser().parse_args(argv)
    try:
        rep = write_report(args.multirun_dir, args.out, x=args.x, y=args.y, metric=args.metric,
                           slo_attainment_min=args.slo_attainment, group_by=args.by,
                           scenario_by=args.scenario, config_keys=args.config_keys,
                           skip_bad=args.skip_bad, plot=not args.no_plot,
                           ttft_ms=args.ttft_ms, tpot_ms=args.tpot_ms)
    except ReportError as e:
        try:  # a sweep whose every job failed still gets its job list
            jobs = sweep_jobs(args.multirun_dir)
        except (ReportError, OSError):
            jobs = []
        if jobs:
            print_jobs(jobs, file=sys.stderr)
        print(f"cosim-report: {e}", file=sys.stderr)
        return 2
    print_jobs(rep.jobs)
    if rep.best["rescored"]:
        r = rep.best["rescored"]
        print("re-scored from requests.parquet: "
              + ", ".join(f"{k} = {r[k]:g}" for k in ("ttft_ms", "tpot_ms") if r[k] is not None))
        for s in r["not_rescored"]:
            print(f"cosim-report: not re-scored {s['run_dir']}: {s['reason']}", file=sys.stderr)
    for s in rep.best["skipped"]:
        print(f"cosim-report: skipped {s['run_dir']}: {s['reason']}", file=sys.stderr)
    print_best(rep.best)
    counts = status_counts(rep.jobs)
    if counts["failed"] or counts["missing"]:
        print(f"note: {counts['failed'] + counts['missing']} of {len(rep.jobs)} jobs are not "
              f"done ({counts['failed']} failed, {counts['missing']} missing): the best runs "
              "above are chosen among the finished ones; re-run the sweep's command into its "
              "folder to run only those (docs/report.md, \"Resuming a sweep\")")
    for name, path in rep.files.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(report_main())
