"""Read a Hydra multirun directory into a DataFrame: one row per run, overrides + summary.

A run is a folder holding `summary.json` (written by `cosim`) and, from Hydra,
`.hydra/overrides.yaml` (and `.hydra/config.yaml`). Folders are found at any depth, so a
multirun directory, a parent of several sweeps, or a single run folder all work. A job
folder with `.hydra/` but no summary.json (a run that failed or is still running) is
skipped and listed in `Multirun.skipped`; a malformed file is an error naming the file.

Columns: `run_dir` (relative to the root), one column per override key (`deployment`,
`workload.num_requests`, `experiment`, ... with the `+`/`++` prefix dropped), `overrides`
(the override list as one string), `label` (only the overrides whose value varies between
runs), then every summary.json field; nested fields are flattened with dots
(`slo.tpot_ms`, `deployment.gpus_by_role.prefill`, `compute_sources.measured`). A flattened
summary field whose name equals an override key is renamed `summary.<name>`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from cosim.config.kinds import KEY as KIND_KEY
from cosim.config.kinds import apply_kind_overrides
from cosim.errors import ConfigError

SUMMARY = "summary.json"
OVERRIDES = Path(".hydra") / "overrides.yaml"
CONFIG = Path(".hydra") / "config.yaml"
# summary.json fields a run must have to be reported (issue 3's contract)
REQUIRED_FIELDS = ("feasible",)
# the headline metrics put first in runs.csv (present ones only)
HEADLINE = ("deployment_kind", "workload", "model", "hardware", "feasible", "infeasible_reason",
            "num_gpus", "requests_completed", "output_tok_s_per_gpu", "total_tok_s_per_gpu",
            "tok_s_per_user_mean", "slo_attainment", "goodput_tok_s", "ttft_ms_p50",
            "ttft_ms_p99", "tpot_ms_p50", "tpot_ms_p99")


class ReportError(ValueError):
    """A multirun folder or one of its files cannot be reported; the message names it."""


@dataclass
class SkippedRun:
    run_dir: str
    reason: str


@dataclass
class Multirun:
    """The runs of a multirun directory (see the module docstring for the columns)."""

    root: Path
    runs: pd.DataFrame
    skipped: list[SkippedRun] = field(default_factory=list)
    override_keys: list[str] = field(default_factory=list)


def _natural_key(rel: Path) -> list[tuple[int, int | str]]:
    # job folders are 0, 1, ..., 10: sort numerically, not as text
    return [(0, int(p)) if p.isdigit() else (1, p) for p in rel.parts]


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            if v:
                out.update(_flatten(v, key + "."))
            else:
                out[key] = None
        elif isinstance(v, (list, tuple)):
            out[key] = json.dumps(v)  # cells stay scalar (CSV, groupby)
        else:
            out[key] = v
    return out


def parse_overrides(lines: Sequence[str], where: str) -> dict[str, Any]:
    """Hydra override strings -> {key: value}; `where` names the file in errors."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    out: dict[str, Any] = {}
    for i, line in enumerate(lines, 1):
        if not isinstance(line, str):
            raise ReportError(f"{where}: item {i} is not an override string: {line!r}")
        try:
            ov = parser.parse_override(line)
        except HydraException as e:
            raise ReportError(f"{where}: item {i} ({line!r}) is not a Hydra override: "
                              f"{' '.join(str(e).split())}") from None
        key = ov.key_or_group + (f"@{ov.package}" if ov.package else "")
        if ov.is_delete():
            out[key] = None
            continue
        value = ov.value()
        if isinstance(value, (list, dict)):
            value = json.dumps(value)
        elif not isinstance(value, (str, int, float, bool)) and value is not None:
            value = str(value)  # sweeps and other grammar objects never reach a job, but be safe
        out[key] = value
    return out


def read_summary(path: Path) -> dict[str, Any]:
    """summary.json as a dict; a ReportError naming the file when it is not one."""
    try:
        text = path.read_text()
    except OSError as e:
        raise ReportError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}: not valid JSON: {e.msg} (line {e.lineno}, column {e.colno})"
                          ) from None
    if not isinstance(doc, dict):
        raise ReportError(f"{path}: expected a JSON object, got {type(doc).__name__}")
    missing = [k for k in REQUIRED_FIELDS if k not in doc]
    if missing:
        raise ReportError(f"{path}: missing required field(s) {', '.join(missing)} "
                          "(not a cosim summary.json?)")
    return doc


def read_overrides(path: Path) -> list[str]:
    """.hydra/overrides.yaml as a list of strings ([] when the file is absent)."""
    import yaml

    if not path.exists():
        return []
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ReportError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    if doc is None:
        return []
    if not isinstance(doc, list):
        raise ReportError(f"{path}: expected a list of overrides, got {type(doc).__name__}")
    return doc


def _config_values(path: Path, keys: Iterable[str]) -> dict[str, Any]:
    keys = list(keys)
    if not keys:
        return {}
    from omegaconf import OmegaConf

    if not path.exists():
        return {f"cfg.{k}": None for k in keys}
    try:
        cfg = OmegaConf.load(path)
    except Exception as e:  # yaml or omegaconf errors: name the file either way
        raise ReportError(f"{path}: cannot read the config: {' '.join(str(e).split())}") from None
    try:  # the deployment the job ran: its kind's kind_overrides applied (cosim.config.kinds)
        cfg = apply_kind_overrides(cfg)
    except ConfigError as e:
        raise ReportError(f"{path}: {e}") from None
    out = {}
    for k in keys:
        v = OmegaConf.select(cfg, k, default=None, throw_on_resolution_failure=False)
        if OmegaConf.is_config(v):
            v = json.dumps(OmegaConf.to_container(v))
        out[f"cfg.{k}"] = v
    return out


def _run_dirs(root: Path) -> tuple[list[Path], list[Path]]:
    """(folders with a summary.json, job folders with .hydra/ but without one)."""
    with_summary = {p.parent for p in root.rglob(SUMMARY) if p.is_file()}
    jobs = {p.parent.parent for p in root.rglob("overrides.yaml") if p.parent.name == ".hydra"}
    return sorted(with_summary, key=lambda p: _natural_key(p.relative_to(root))), \
        sorted(jobs - with_summary, key=lambda p: _natural_key(p.relative_to(root)))


def _numeric(v: Any) -> Any:
    # JSON has no NaN; cosim writes null for "not measured" — keep it as NaN in the frame
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def load_multirun(root: str | Path, *, config_keys: Sequence[str] = (),
                  skip_bad: bool = False) -> Multirun:
    """Read every run under `root` (see the module docstring).

    `config_keys`: dotted keys of the resolved .hydra/config.yaml to add as `cfg.<key>`
    columns (values an experiment file sets without an override). `skip_bad`: list a run
    with a malformed summary.json or overrides.yaml in `skipped` instead of raising.
    """
    root = Path(root)
    if not root.exists():
        raise ReportError(f"{root}: no such directory")
    if not root.is_dir():
        raise ReportError(f"{root}: not a directory (give the multirun folder)")
    dirs, unfinished = _run_dirs(root)
    skipped = [SkippedRun(str(d.relative_to(root)) or ".",
                          f"no {SUMMARY} (the run failed or is still running)")
               for d in unfinished]
    if not dirs:
        hint = (f"; {len(unfinished)} job folder(s) have .hydra/ but no {SUMMARY} "
                "(failed or unfinished runs)" if unfinished else "")
        raise ReportError(f"{root}: no runs found (no {SUMMARY} at any depth){hint}. "
                          "Give a folder written by `cosim -m ...` (multirun/<date>/<time>).")
    rows: list[dict[str, Any]] = []
    override_rows: list[dict[str, Any]] = []
    for d in dirs:
        rel = str(d.relative_to(root)) or "."
        try:
            summary = read_summary(d / SUMMARY)
            ov_lines = read_overrides(d / OVERRIDES)
            ov = parse_overrides(ov_lines, str(d / OVERRIDES))
            cfg_cols = _config_values(d / CONFIG, config_keys)
        except ReportError as e:
            if not skip_bad:
                raise
            skipped.append(SkippedRun(rel, str(e)))
            continue
        for k in ov:  # kind_overrides.<kind>.* did not apply to a job of another kind
            parts = k.lstrip("+").split(".")
            if (len(parts) > 2 and parts[0] == KIND_KEY
                    and summary.get("deployment_kind") not in (None, parts[1])):
                ov[k] = None
        flat = {k: _numeric(v) for k, v in _flatten(summary).items()}
        for k in list(flat):
            if k in ov or k in ("run_dir", "overrides", "label"):
                flat[f"summary.{k}"] = flat.pop(k)
        rows.append({"run_dir": rel, **ov, "overrides": " ".join(ov_lines), **cfg_cols, **flat})
        override_rows.append(ov)
    if not rows:
        raise ReportError(f"{root}: no readable runs; skipped: "
                          + "; ".join(f"{s.run_dir}: {s.reason}" for s in skipped))
    override_keys = list(dict.fromkeys(k for ov in override_rows for k in ov))
    runs = pd.DataFrame(rows)
    runs.insert(1, "label", _labels(runs, override_keys))
    lead = ["run_dir", "label"] + override_keys + ["overrides"]
    lead += [c for c in runs.columns if c.startswith("cfg.")]
    lead += [c for c in HEADLINE if c in runs.columns and c not in lead]
    runs = runs[lead + [c for c in runs.columns if c not in lead]]
    return Multirun(root=root, runs=runs, skipped=skipped, override_keys=override_keys)


def _labels(runs: pd.DataFrame, keys: Sequence[str]) -> list[str]:
    """Per run, `key=value` of the overrides that differ between runs (all if none differ)."""
    varying = [k for k in keys if runs[k].astype(str).nunique(dropna=False) > 1]
    shown = varying or list(keys)
    out = []
    for _, row in runs.iterrows():
        parts = [f"{k}={_fmt(row[k])}" for k in shown if not _is_missing(row[k])]
        out.append(" ".join(parts) or row["run_dir"])
    return out


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _fmt(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)
