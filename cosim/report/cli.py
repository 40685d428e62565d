"""`cosim-report <multirun dir>`: Pareto frontier and best configuration of a sweep.

    cosim -m +experiment=seed_study_small
    cosim-report multirun/seed_study_small/<timestamp> --slo-attainment 0.9

Writes runs.csv, pareto.csv, best.json and pareto.png into `--out` (default
`<multirun dir>/report`) and prints the best run per scenario and deployment. See
docs/report.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cosim.report.best import DEFAULT_GROUP, DEFAULT_SCENARIO
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


def report_main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `cosim-report`; returns the exit status (2 on a bad folder or file)."""
    from cosim.report.build import write_report

    args = parser().parse_args(argv)
    try:
        rep = write_report(args.multirun_dir, args.out, x=args.x, y=args.y, metric=args.metric,
                           slo_attainment_min=args.slo_attainment, group_by=args.by,
                           scenario_by=args.scenario, config_keys=args.config_keys,
                           skip_bad=args.skip_bad, plot=not args.no_plot)
    except ReportError as e:
        print(f"cosim-report: {e}", file=sys.stderr)
        return 2
    for s in rep.best["skipped"]:
        print(f"cosim-report: skipped {s['run_dir']}: {s['reason']}", file=sys.stderr)
    print_best(rep.best)
    for name, path in rep.files.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(report_main())
