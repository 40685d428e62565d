"""What a complete run folder holds, checked rather than assumed.

`cosim` writes summary.json (last, after requests.parquet and iterations.parquet, each under
a temporary name then renamed: cosim.files.StagedFiles). A folder is complete for a config
when summary.json parses, carries the fields every cosim summary has and the fingerprint
of that very config (`config_sha256`), and each parquet file it should have opens (its
footer and schema read, so a truncated file fails). A re-run of a sweep into its folder
skips the jobs whose folders are complete (cosim.apps.run) and cosim-report marks the
others failed (cosim.report.jobs).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

SUMMARY = "summary.json"
PARQUET_FILES = ("requests.parquet", "iterations.parquet")
# present in the summary of every run, feasible or not (cosim.metrics.summarize)
SUMMARY_FIELDS = ("feasible", "model", "hardware", "deployment_kind", "workload", "num_gpus",
                  "requests_total")
FINGERPRINT = "config_sha256"
# keys that change how a run shows itself, not what it computes
_NOT_FINGERPRINTED = {"output": ("progress", "resume")}


def config_fingerprint(cfg: Any) -> str:
    """sha256 of the resolved task config (without output.progress and output.resume) and
    the cosim version: the same value means the same run."""
    from omegaconf import OmegaConf

    import cosim

    doc = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else dict(cfg)
    for group, keys in _NOT_FINGERPRINTED.items():
        if isinstance(doc.get(group), dict):
            doc[group] = {k: v for k, v in doc[group].items() if k not in keys}
    text = json.dumps({"cosim": cosim.__version__, "config": doc}, sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def parquet_problem(path: Path) -> str:
    """"" when `path` is a readable parquet file, else why not."""
    import pyarrow.parquet as pq

    if not path.is_file():
        return f"no {path.name}"
    try:
        pq.read_schema(path)
        pq.ParquetFile(path).metadata  # noqa: B018  (footer read: a truncated file fails)
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ...: unreadable either way
        return f"{path.name} is not readable: {' '.join(str(e).split())[:200]}"
    return ""


def incomplete_reason(folder: Path | str, fingerprint: str | None = None,
                      parquet: bool = True) -> str:
    """"" when `folder` holds the complete outputs of a run (of the config with this
    fingerprint when given), else why not, in a few words."""
    folder = Path(folder)
    path = folder / SUMMARY
    if not path.is_file():
        return f"no {SUMMARY}"
    try:
        doc = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"{SUMMARY} is not readable JSON ({' '.join(str(e).split())[:120]})"
    if not isinstance(doc, dict):
        return f"{SUMMARY} is not a JSON object"
    if doc.get("error"):
        return f"{SUMMARY} records an error: {doc['error']}"
    missing = [k for k in SUMMARY_FIELDS if k not in doc]
    if missing:
        return f"{SUMMARY} lacks {', '.join(missing)}"
    if fingerprint is not None and doc.get(FINGERPRINT) != fingerprint:
        return f"{SUMMARY} is of another config (or another cosim version)"
    if parquet:
        for name in PARQUET_FILES:
            problem = parquet_problem(folder / name)
            if problem:
                return problem
    return ""


__all__ = ["FINGERPRINT", "PARQUET_FILES", "SUMMARY_FIELDS", "config_fingerprint",
           "incomplete_reason", "parquet_problem"]
