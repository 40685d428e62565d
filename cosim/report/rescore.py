"""Re-score stored runs against another SLO, from their per-request tables (no re-run).

Every run folder keeps `requests.parquet` with each request's `ttft_s`, `tpot_s`, `e2e_s`,
`finish_s` and `output_tokens`. Under a new TTFT and/or TPOT objective the verdicts are the
same as cosim.metrics.requests_frame's: a request meets the SLO when it completed, its TTFT
<= ttft and its TPOT <= tpot (a one-token output, TPOT undefined, meets any TPOT objective),
and its E2E <= the run's own e2e objective when it had one. Then, as cosim.metrics.summarize:
slo_attainment = meeting requests / all requests; goodput_tok_s = their output tokens /
simulated_s (the run's own span). Throughput, latency percentiles and everything else in the
summary do not depend on the SLO and stay as stored.

The frame's `slo_attainment`, `goodput_tok_s`, `slo.ttft_ms` and `slo.tpot_ms` take the new
values (so eligibility, frontiers, the best run and the scenario use them); the stored ones
stay beside them as `stored.<name>`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from cosim.report.runs import ReportError

REQUESTS = "requests.parquet"
RESCORED = ("slo_attainment", "goodput_tok_s", "slo.ttft_ms", "slo.tpot_ms")


def score_requests(req: pd.DataFrame, *, ttft_ms: float, tpot_ms: float,
                   e2e_ms: float | None, simulated_s: float | None) -> tuple[float | None, float]:
    """(slo_attainment, goodput_tok_s) of one run's requests under the given objectives."""
    finish = req["finish_s"].to_numpy(dtype=float)
    ttft = req["ttft_s"].to_numpy(dtype=float)
    tpot = req["tpot_s"].to_numpy(dtype=float)
    done = np.isfinite(finish)
    with np.errstate(invalid="ignore"):
        good = done & (ttft <= ttft_ms / 1e3) & (np.isnan(tpot) | (tpot <= tpot_ms / 1e3))
        if e2e_ms is not None:
            good &= req["e2e_s"].to_numpy(dtype=float) <= e2e_ms / 1e3
    attain = float(good.sum() / len(req)) if len(req) else None
    span = simulated_s if simulated_s and simulated_s > 0 else math.nan
    goodput = float(req["output_tokens"].to_numpy()[good].sum()) / span
    return attain, goodput


def _num(v: object) -> float | None:
    try:
        f = float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def rescore(runs: pd.DataFrame, root: str | Path, *, ttft_ms: float | None,
            tpot_ms: float | None, skip_bad: bool = False) -> tuple[pd.DataFrame, list[dict]]:
    """A copy of `runs` (from load_multirun) scored against the new TTFT/TPOT objectives
    (None: each run's own); also the runs that could not be re-scored, with the reason
    (a feasible run without requests.parquet is an error unless `skip_bad`)."""
    root = Path(root)
    runs = runs.copy()
    for col in RESCORED:
        src = f"summary.{col}" if f"summary.{col}" in runs.columns else col
        runs[f"stored.{col}"] = runs[src] if src in runs.columns else np.nan
    att, good, t_col, p_col = [], [], [], []
    skipped: list[dict] = []
    for _, row in runs.iterrows():
        ttft = ttft_ms if ttft_ms is not None else _num(row["stored.slo.ttft_ms"])
        tpot = tpot_ms if tpot_ms is not None else _num(row["stored.slo.tpot_ms"])
        t_col.append(ttft)
        p_col.append(tpot)
        if row.get("feasible") is False or row.get("feasible") == 0:
            att.append(None)
            good.append(None)
            continue
        path = root / str(row["run_dir"]) / REQUESTS
        try:
            req = pd.read_parquet(path, columns=["finish_s", "ttft_s", "tpot_s", "e2e_s",
                                                 "output_tokens"])
        except Exception as e:  # missing file, not parquet, no such column: name the file
            reason = (f"{path}: cannot re-score: "
                      + ("no such file (run with output.write_parquet=true)"
                         if not path.exists() else " ".join(str(e).split())))
            if not skip_bad:
                raise ReportError(reason) from None
            skipped.append({"run_dir": str(row["run_dir"]), "reason": reason})
            att.append(None)
            good.append(None)
            continue
        if ttft is None or tpot is None:
            raise ReportError(f"{root / str(row['run_dir'])}: no stored SLO to keep; give both "
                              "--ttft-ms and --tpot-ms")
        e2e = _num(row.get("slo.e2e_ms", row.get("summary.slo.e2e_ms")))
        a, g = score_requests(req, ttft_ms=ttft, tpot_ms=tpot, e2e_ms=e2e,
                              simulated_s=_num(row.get("simulated_s")))
        att.append(a)
        good.append(g)
    runs["slo_attainment"] = pd.to_numeric(pd.Series(att, index=runs.index, dtype=object))
    runs["goodput_tok_s"] = pd.to_numeric(pd.Series(good, index=runs.index, dtype=object))
    runs["slo.ttft_ms"] = t_col
    runs["slo.tpot_ms"] = p_col
    return runs, skipped
