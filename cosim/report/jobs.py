"""The jobs of a sweep and their status: done, infeasible, failed or missing.

Hydra writes `multirun.yaml` (the sweep's resolved config) at the top of a sweep folder and
one folder per job holding `.hydra/overrides.yaml`. The jobs a sweep was asked for are the
cross product of its override list (`hydra.overrides.task`, plus `hydra.sweeper.params` of
an experiment file), expanded exactly as Hydra's BasicSweeper does (its own
`split_arguments`, so the order is Hydra's job numbering). Each expected job is matched to
the job folder whose overrides are the same; a job with no such folder is **missing** (the
sweep stopped before it: the basic launcher stops at the first failed job, or the sweep was
interrupted). A job folder without `summary.json`, with one that is not a cosim summary
or carries an `error` field, or with a parquet file that does not read
(cosim.report.outputs), is **failed**; a summary with `feasible: false` is
**infeasible** (a result: the configuration does not fit); the rest are **done**.

A sweep whose grid cannot be expanded here (another sweeper, e.g. Optuna, or a `glob()`
sweep that needs the config) lists its job folders only, and says so in `Job.reason`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cosim.report.outputs import PARQUET_FILES, parquet_problem
from cosim.report.runs import (
    OVERRIDES,
    SUMMARY,
    ReportError,
    _natural_key,
    read_overrides,
    read_summary,
)

MULTIRUN = "multirun.yaml"
STATUSES = ("done", "infeasible", "failed", "missing")
BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"


@dataclass(frozen=True)
class Job:
    """One job of a sweep: where it is (relative to the report root), what it overrides."""

    run_dir: str
    job: int | None          # Hydra's job number where known
    overrides: tuple[str, ...]
    status: str              # one of STATUSES
    reason: str = ""


def _norm(lines: list[str] | tuple[str, ...]) -> frozenset[str]:
    return frozenset(s.strip() for s in lines)


def expected_jobs(multirun_yaml: Path) -> list[tuple[str, ...]] | None:
    """The override lists of the jobs the sweep asked for, in Hydra's order; None when the
    sweep cannot be expanded here (another sweeper, a sweep that needs the config)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    try:
        cfg = OmegaConf.load(multirun_yaml)
    except Exception as e:  # yaml or omegaconf errors: name the file either way
        raise ReportError(f"{multirun_yaml}: cannot read: {' '.join(str(e).split())}") from None
    hydra = cfg.get("hydra") or {}
    sweeper = hydra.get("sweeper") or {}
    if sweeper.get("_target_", BASIC_SWEEPER) != BASIC_SWEEPER:
        return None
    params = sweeper.get("params")
    params = OmegaConf.to_container(params, resolve=False) if OmegaConf.is_config(params) else {}
    ov_node = hydra.get("overrides")
    if ov_node is None or ov_node.get("task") is None:
        return None  # not a multirun.yaml Hydra wrote: nothing to expand
    task = list(ov_node.get("task"))
    args = [f"{k}={v}" for k, v in params.items()] + [str(t) for t in task]
    try:
        parsed = OverridesParser.create().parse_overrides(args)
        batches = BasicSweeper.split_arguments(parsed, None)
    except (HydraException, AssertionError, ValueError):
        return None
    return [tuple(job) for batch in batches for job in batch]


def _folder_status(d: Path) -> tuple[str, str]:
    if not (d / SUMMARY).is_file():
        return "failed", f"no {SUMMARY} (the run failed or is still running)"
    try:
        doc = read_summary(d / SUMMARY)
    except ReportError as e:
        return "failed", str(e)
    if doc.get("error"):
        return "failed", f"{SUMMARY}: error: {doc['error']}"
    for name in PARQUET_FILES:  # a damaged file is re-run by a resumed sweep: not done
        problem = parquet_problem(d / name) if (d / name).exists() else ""
        if problem:
            return "failed", problem
    if doc.get("feasible") is False:
        return "infeasible", str(doc.get("infeasible_reason") or "infeasible")
    return "done", ""


def sweep_jobs(root: str | Path) -> list[Job]:
    """Every job under `root` (a sweep folder, a parent of sweeps, or one run folder)."""
    root = Path(root)
    folders = {p.parent.parent for p in root.rglob("overrides.yaml") if p.parent.name == ".hydra"}
    folders |= {p.parent for p in root.rglob(SUMMARY) if p.is_file()}
    jobs: list[Job] = []
    claimed: set[Path] = set()
    for my in sorted(root.rglob(MULTIRUN), key=lambda p: _natural_key(p.relative_to(root))):
        sweep_dir = my.parent
        expected = expected_jobs(my)
        if expected is None:
            continue  # its folders are listed below, one by one
        mine = {d: _norm(read_overrides(d / OVERRIDES)) for d in folders
                if d.parent == sweep_dir and d not in claimed}
        by_ov: dict[frozenset[str], list[Path]] = {}
        for d in sorted(mine, key=lambda p: _natural_key(p.relative_to(root))):
            by_ov.setdefault(mine[d], []).append(d)
        for num, ov in enumerate(expected):
            hits = by_ov.get(_norm(ov)) or []
            if hits:
                d = hits.pop(0)
                claimed.add(d)
                status, reason = _folder_status(d)
                jobs.append(Job(str(d.relative_to(root)) or ".", num, ov, status, reason))
            else:
                rel = (sweep_dir / str(num)).relative_to(root)
                jobs.append(Job(str(rel), num, ov, "missing",
                                f"no job folder with these overrides in {sweep_dir.name}/ "
                                "(the sweep stopped or was interrupted before it)"))
    for d in sorted(folders - claimed, key=lambda p: _natural_key(p.relative_to(root))):
        ov = tuple(read_overrides(d / OVERRIDES))
        status, reason = _folder_status(d)
        num = int(d.name) if d.name.isdigit() else None
        jobs.append(Job(str(d.relative_to(root)) or ".", num, ov, status, reason))
    return jobs


def jobs_frame(jobs: list[Job]):
    """jobs.csv's table: run_dir, job, status, overrides, reason."""
    import pandas as pd

    return pd.DataFrame([{"run_dir": j.run_dir, "job": j.job, "status": j.status,
                          "overrides": " ".join(j.overrides), "reason": j.reason}
                         for j in jobs], columns=["run_dir", "job", "status", "overrides",
                                                  "reason"]).astype({"job": "Int64"})


def status_counts(jobs: list[Job]) -> dict[str, int]:
    return {s: sum(j.status == s for j in jobs) for s in STATUSES}


def jobs_json(jobs: list[Job]) -> dict:
    """best.json's `jobs` entry: counts, and the jobs that are failed or missing."""
    return {"counts": status_counts(jobs),
            "not_done": [{"run_dir": j.run_dir, "job": j.job, "status": j.status,
                          "overrides": list(j.overrides), "reason": j.reason}
                         for j in jobs if j.status in ("failed", "missing")]}


__all__ = ["Job", "STATUSES", "expected_jobs", "jobs_frame", "jobs_json", "status_counts",
           "sweep_jobs"]
