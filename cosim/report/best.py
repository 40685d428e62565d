"""Which configuration pays off: eligibility, frontiers and the best run per scenario.

A *scenario* is the question being asked (by default: model, workload and the SLO, i.e.
`slo.ttft_ms` / `slo.tpot_ms` from summary.json); a *group* is the choice being compared
(by default `deployment_kind`). A run is *eligible* when it is feasible, its two frontier
metrics are numbers, and (with a threshold) `slo_attainment >= slo_attainment_min`. The
best run of a scenario or a group maximises `metric` (default: the frontier's y, output
tokens/s per GPU) among eligible runs; ties go to fewer GPUs, then to the earlier run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from cosim.report.frontier import frontier_flags
from cosim.report.runs import ReportError

DEFAULT_SCENARIO = ("model", "workload", "slo.ttft_ms", "slo.tpot_ms")
DEFAULT_GROUP = ("deployment_kind",)
# summary.json metrics an infeasible run lacks: missing everywhere means NaN, not a typo
KNOWN_METRICS = frozenset({
    "input_tok_s", "output_tok_s", "output_tok_s_per_gpu", "total_tok_s_per_gpu",
    "tok_s_per_user_mean", "ttft_ms_p50", "ttft_ms_p90", "ttft_ms_p99", "tpot_ms_p50",
    "tpot_ms_p90", "tpot_ms_p99", "e2e_ms_p50", "e2e_ms_p99", "slo_attainment",
    "goodput_tok_s", "prefix_hit_rate", "requests_completed", "num_gpus", "simulated_s",
    "kv_transfer_ms_p50", "kv_transfer_ms_p99", "attention_busy", "ffn_busy",
    "comm_exposed_fraction"})
ENTRY_METRICS = ("num_gpus", "output_tok_s_per_gpu", "total_tok_s_per_gpu",
                 "tok_s_per_user_mean", "slo_attainment", "goodput_tok_s", "ttft_ms_p50",
                 "ttft_ms_p99", "tpot_ms_p50", "tpot_ms_p99", "requests_completed")


def require_metric(runs: pd.DataFrame, name: str, option: str) -> None:
    """Add a known metric missing from every run as NaN; reject an unknown column name."""
    if name in runs.columns:
        if not pd.api.types.is_numeric_dtype(runs[name]):
            coerced = pd.to_numeric(runs[name], errors="coerce")
            bad = runs.loc[coerced.isna() & runs[name].notna(), "run_dir"].tolist()
            if bad:
                raise ReportError(f"{option} {name}: not a number in run(s) {', '.join(bad[:5])}")
            runs[name] = coerced
        return
    if name in KNOWN_METRICS:
        runs[name] = np.nan
        return
    numeric = sorted(c for c in runs.columns if pd.api.types.is_numeric_dtype(runs[c]))
    raise ReportError(f"{option} {name}: no such column in the runs; numeric columns: "
                      + ", ".join(numeric))


def _key_label(cols: Sequence[str], values: Sequence[Any]) -> str:
    parts = []
    for c, v in zip(cols, values, strict=True):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        parts.append(f"{c}={v}")
    return " ".join(parts) or "all runs"


def annotate(runs: pd.DataFrame, x: str, y: str, *, slo_attainment_min: float | None = None,
             group_by: Sequence[str] = DEFAULT_GROUP,
             scenario_by: Sequence[str] = DEFAULT_SCENARIO) -> pd.DataFrame:
    """A copy of `runs` with `scenario`, `group`, `eligible`, `on_frontier` (within scenario
    and group) and `on_scenario_frontier` (within scenario, all groups) columns."""
    runs = runs.copy()
    require_metric(runs, x, "--x")
    require_metric(runs, y, "--y")
    for col in group_by:
        if col not in runs.columns:
            raise ReportError(f"--by {col}: no such column; columns: {', '.join(runs.columns)}")
    scen_cols = [c for c in scenario_by if c in runs.columns]
    runs["scenario"] = [_key_label(scen_cols, vals) for vals in
                        runs[scen_cols].itertuples(index=False, name=None)] if scen_cols \
        else "all runs"
    runs["group"] = [" / ".join("-" if v is None or (isinstance(v, float) and math.isnan(v))
                                else str(v) for v in vals)
                     for vals in runs[list(group_by)].itertuples(index=False, name=None)]
    feasible = runs["feasible"].fillna(False).astype(bool) if "feasible" in runs else True
    ok = feasible & np.isfinite(runs[x].astype(float)) & np.isfinite(runs[y].astype(float))
    if slo_attainment_min is not None and slo_attainment_min > 0:
        require_metric(runs, "slo_attainment", "--slo-attainment")
        ok &= runs["slo_attainment"].astype(float).fillna(-1.0) >= slo_attainment_min
    runs["eligible"] = ok.astype(bool)
    runs["on_frontier"] = frontier_flags(runs, x, y, ["scenario", "group"], runs["eligible"])
    runs["on_scenario_frontier"] = frontier_flags(runs, x, y, ["scenario"], runs["eligible"])
    return runs


def _py(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def detail(row: pd.Series, override_keys: Sequence[str], known: Sequence[str]) -> str:
    """The run's varying overrides minus what its group and scenario already say: a key
    among `known` columns, or a group choice (`deployment=pd`) equal to one of them."""
    known_vals = {str(_py(row[c])) for c in known if c in row.index}
    parts = []
    for part in str(row["label"]).split():
        key, _, val = part.partition("=")
        if key in known or ("." not in key and val in known_vals):
            continue
        parts.append(part)
    return " ".join(parts) or "(as configured)"


def run_entry(row: pd.Series, metric: str, x: str, y: str,
              override_keys: Sequence[str] = (), known: Sequence[str] = ()) -> dict[str, Any]:
    """One run as it appears in best.json."""
    out: dict[str, Any] = {"group": row["group"], "label": row["label"],
                           "detail": detail(row, override_keys, known), "run_dir": row["run_dir"]}
    out["overrides"] = {k: _py(row[k]) for k in override_keys
                        if k in row.index and _py(row[k]) is not None}
    for k in dict.fromkeys((metric, x, y) + ENTRY_METRICS):
        if k in row.index:
            out[k] = _py(row[k])
    return out


def _pick(rows: pd.DataFrame, metric: str) -> pd.Series:
    gpus = rows["num_gpus"] if "num_gpus" in rows else pd.Series(0, index=rows.index)
    order = pd.DataFrame({"m": -rows[metric].astype(float), "g": gpus,
                          "i": np.arange(len(rows))}, index=rows.index)
    return rows.loc[order.sort_values(["m", "g", "i"]).index[0]]


def _why_none(rows: pd.DataFrame, x: str, y: str, slo_attainment_min: float | None,
              metric: str, override_keys: Sequence[str], known: Sequence[str] = ()
              ) -> tuple[str, dict | None]:
    feasible = rows["feasible"].fillna(False).astype(bool) if "feasible" in rows else \
        pd.Series(True, index=rows.index)
    if not feasible.any():
        reasons = sorted({str(r) for r in rows.get("infeasible_reason", pd.Series()).dropna()})
        return "no feasible run" + (f" ({'; '.join(reasons[:3])})" if reasons else ""), None
    measured = rows[feasible & rows[x].notna() & rows[y].notna()]
    if measured.empty:
        return f"no feasible run reports both {x} and {y}", None
    if not slo_attainment_min or "slo_attainment" not in rows:
        return f"no feasible run reports {metric}", None
    att = measured["slo_attainment"].astype(float).fillna(-1.0)
    closest = measured.loc[att.idxmax()]
    return (f"no run reaches slo_attainment >= {slo_attainment_min:g} (highest "
            f"{_py(closest['slo_attainment'])})",
            run_entry(closest, metric, x, y, override_keys, known))


def best_configurations(runs: pd.DataFrame, *, metric: str, x: str, y: str,
                        slo_attainment_min: float | None,
                        override_keys: Sequence[str] = (),
                        group_by: Sequence[str] = DEFAULT_GROUP,
                        scenario_by: Sequence[str] = DEFAULT_SCENARIO) -> list[dict[str, Any]]:
    """Per scenario: the best eligible run overall and per group, and the groups ranked.

    `runs` comes from :func:`annotate` (with the same `group_by` / `scenario_by`). A group
    without an eligible run gets `best: null` and a `reason` (with the `closest` run: the
    highest SLO attainment) instead. Each run's `detail` is its label without what the group
    and scenario already say.
    """
    require_metric(runs, metric, "--metric")
    known = [*group_by, *scenario_by]
    out = []
    for scen, rows in runs.groupby("scenario", sort=False):
        elig = rows[rows["eligible"] & rows[metric].notna()]
        entry: dict[str, Any] = {"scenario": scen, "runs": int(len(rows)),
                                 "eligible": int(len(elig))}
        entry["best"] = run_entry(_pick(elig, metric), metric, x, y, override_keys,
                                  scenario_by) if len(elig) else None
        if not len(elig):
            entry["reason"], entry["closest"] = _why_none(rows, x, y, slo_attainment_min,
                                                          metric, override_keys, scenario_by)
        by_group: dict[str, Any] = {}
        for g, grows in rows.groupby("group", sort=True):
            ge = grows[grows["eligible"] & grows[metric].notna()]
            if len(ge):
                by_group[g] = {"best": run_entry(_pick(ge, metric), metric, x, y,
                                                 override_keys, known)}
            else:
                reason, closest = _why_none(grows, x, y, slo_attainment_min, metric,
                                            override_keys, known)
                by_group[g] = {"best": None, "reason": reason, "closest": closest}
        entry["by_group"] = by_group
        ranked = sorted(((g, v["best"][metric]) for g, v in by_group.items() if v["best"]),
                        key=lambda t: -t[1])
        entry["ranking"] = [{"group": g, metric: v} for g, v in ranked]
        out.append(entry)
    return out
