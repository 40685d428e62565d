"""One evaluation of a search candidate: an ordinary cosim run at a closed-loop load.

The run's config is composed from the search's own overrides (model, hardware, workload, ...),
the candidate's kind and layout, and the load; its record is stored in
`<out>/evals/<sha256 of the resolved config>.json`, so a search re-run with the same output
folder reuses every finished evaluation and runs only the missing ones.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cosim.api import compose_config, simulate
from cosim.errors import ConfigError
from cosim.files import write_atomic
from cosim.search.space import Candidate

SUMMARY_KEYS = ("num_gpus", "output_tok_s_per_gpu", "tok_s_per_user_mean", "ttft_ms_p50",
                "ttft_ms_p90", "tpot_ms_p50", "tpot_ms_p90", "usd_per_mtok", "iteration_ms_mean",
                "decode_batch_mean", "events", "sim_wall_s", "simulated_s", "preemptions",
                "network", "slo", "prefix_hit_rate", "compute_sources")


def _kept(base: Sequence[str]) -> list[str]:
    return [o for o in base if not o.lstrip("+~").startswith(("deployment", "search"))]


def _values(cand: Candidate, users: int, requests: int) -> dict[str, Any]:
    """The candidate's layout and the load: plain values of existing keys."""
    return {**cand.settings, "workload.arrival.process": "closed_loop",
            "workload.arrival.users": users, "workload.arrival.think_time_s": 0,
            "workload.num_requests": max(requests, 3 * users),
            # no Perfetto timeline of the first iterations: the search keeps only the records
            "output.timeline_iterations": [0, 0]}


def run_overrides(base: Sequence[str], cand: Candidate, users: int, requests: int,
                  extra: Sequence[str] = ()) -> list[str]:
    """The cosim overrides of `cand` at `users` closed-loop users (no think time)."""
    values = _values(cand, users, requests)
    return [*_kept(base), f"deployment={cand.kind}", *(f"{k}={v}" for k, v in values.items()),
            "output.progress=false", *extra]


_TEMPLATES: dict[tuple, DictConfig] = {}


@contextmanager
def candidate_config(base: Sequence[str], cand: Candidate, users: int, requests: int,
                     extra: Sequence[str] = ()) -> Iterator[DictConfig]:
    """The config `compose_config(run_overrides(...))` gives, for the duration of the `with`.

    Composed once per (search overrides, kind, extra) and per process; the candidate's layout
    and load are plain values of existing keys, set on that template and put back on exit
    (Hydra's composition of the defaults tree costs ~0.2 s a run, a copy of the template
    ~7 ms, setting the values ~0.1 ms; a run never changes the DictConfig it is given: it
    builds its own objects from it). A test checks the config equals Hydra's."""
    key = (tuple(_kept(base)), cand.kind, tuple(extra))
    cfg = _TEMPLATES.get(key)
    if cfg is None:
        cfg = _TEMPLATES[key] = compose_config(
            [*key[0], f"deployment={cand.kind}", "output.progress=false", *extra])
    saved: list[tuple[str, Any]] = []
    try:
        for k, v in _values(cand, users, requests).items():
            old = OmegaConf.select(cfg, k, throw_on_missing=False)
            try:
                OmegaConf.update(cfg, k, v, merge=False)
            except OmegaConfBaseException as e:
                raise ConfigError(k, " ".join(str(e).split())) from e
            saved.append((k, old))
        yield cfg
    finally:
        for k, old in reversed(saved):
            OmegaConf.update(cfg, k, old, merge=False)


def config_key(cfg: DictConfig) -> str:
    """sha256 of the resolved config (the evaluation's name in evals/)."""
    text = json.dumps(OmegaConf.to_container(cfg, resolve=True), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def measured_attainment(requests: Any, warmup_fraction: float) -> dict[str, float]:
    """SLO attainment over the requests after the warm-up (the first by arrival)."""
    df = requests.sort_values("arrival_s")
    df = df.iloc[int(len(df) * warmup_fraction):]
    if len(df) == 0:
        return {"attainment": 0.0, "meets_ttft": 0.0, "meets_tpot": 0.0, "measured": 0}
    return {"attainment": float(np.mean(df["meets_slo"])),
            "meets_ttft": float(np.mean(df["meets_ttft"])),
            "meets_tpot": float(np.mean(df["meets_tpot"])), "measured": int(len(df))}


def _memory(summary: dict) -> dict[str, Any]:
    mem = (summary.get("deployment") or {}).get("memory") or {}
    return {role: {k: m.get(k) for k in ("kv_tokens", "weight_gb", "kv_gb", "usable_gb",
                                         "feasible", "reason")}
            for role, m in mem.items() if isinstance(m, dict)}


def _record(rec: dict[str, Any], res: Any, warmup_fraction: float) -> dict[str, Any]:
    s = res.summary
    out = {**rec, "feasible": bool(s.get("feasible")), "reason": s.get("infeasible_reason") or "",
           **{k: s.get(k) for k in SUMMARY_KEYS}, "memory": _memory(s),
           "mean_request_tokens": float((res.requests["prompt_tokens"]
                                         + res.requests["output_tokens"]).mean())
           if len(res.requests) else 0.0}
    if out["feasible"]:
        out.update(measured_attainment(res.requests, warmup_fraction))
    return out


def evaluate(base: Sequence[str], cand: Candidate, users: int, requests: int, store: Path,
             warmup_fraction: float, extra: Sequence[str] = ()) -> dict[str, Any]:
    """Run (or reload) `cand` at `users`; returns a flat record (never raises ConfigError)."""
    rec: dict[str, Any] = {"cid": cand.cid, "kind": cand.kind, "users": users,
                           "extra": " ".join(extra)}
    try:
        with candidate_config(base, cand, users, requests, extra) as cfg:
            path = store / f"{config_key(cfg)}.json"
            if path.exists():
                try:
                    return {**json.loads(path.read_text()), "cached": True}
                except json.JSONDecodeError:
                    pass  # a damaged record is recomputed
            try:
                res = simulate(cfg)
            except ConfigError as e:
                out = {**rec, "feasible": False, "reason": f"config: {e}"}
            else:
                out = _record(rec, res, warmup_fraction)
    except ConfigError as e:
        return {**rec, "feasible": False, "reason": f"config: {e}", "cached": False}
    store.mkdir(parents=True, exist_ok=True)
    text = json.dumps(out, default=float)
    write_atomic(path, lambda tmp: tmp.write_text(text))
    return {**out, "cached": False}
