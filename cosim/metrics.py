"""Per-request and system metrics of a serving run, and SLO checks (vectorised with numpy).

Definitions (times in seconds inside, milliseconds in summary names ending in _ms):
- TTFT = first_token - arrival (queueing + prefill + the first sampling step)
- TPOT = (finish - first_token) / (output_tokens - 1): mean time per output token after the
  first (undefined, NaN, for one-token outputs; such a request meets any TPOT objective)
- E2E  = finish - arrival
- simulated_s = last finish - first arrival; throughputs are tokens of completed requests
  divided by it; per-GPU figures divide by the deployment's GPUs.
- tok_s_per_user_mean = mean over requests of 1 / TPOT (a user's streaming speed)
- slo_attainment = fraction of requests meeting TTFT <= slo.ttft and TPOT <= slo.tpot
  (and E2E <= slo.e2e when set); goodput_tok_s = output tokens of those requests / simulated_s
- usd_per_hour = num_gpus x hardware.usd_per_gpu_hour; usd_per_mtok = usd_per_hour /
  (output_tok_s x 3600 s) x 1e6: dollars per million output tokens (both null without a price)
- prefix_hit_rate = prompt tokens served from the prefix cache / prompt tokens (first
  admission of each request; recomputation after preemption is not counted as a hit)
- network_server_restarts: local ns-3 servers started again during the run after one died or
  hung, before or after its readiness (cosim.network.ns3.client; each one also logged)
- network_lookups / network_cache_*: the flow batches the run's iterations and transfers
  asked the network for, by what answered them (the run's memo, the result cache's LRU or
  sqlite, or the backend: a miss); network_cache_hit_rate = hits / lookups
  (cosim.serving.network_lookups)
- warm-up window (metrics.warmup_s / metrics.warmup_requests): requests arriving before
  warmup_s after the first arrival, and the first warmup_requests requests by arrival, are
  left out of every request figure above (throughputs, simulated_s, latencies, SLO,
  goodput, prefix_hit_rate); simulated_s then runs from the first measured arrival to the last
  measured finish. requests_total, requests_completed, preemptions and the iteration figures
  cover the whole run. warmup_excluded_requests says how many were left out and
  `including_warmup` gives the throughput / latency / SLO figures over all requests.
- warm_prefix_blocks: KV blocks of shared prefixes made resident before the run
  (workload.warm_prefixes; cosim.serving.kv_cache.KVCache.warm)
- comm_exposed_fraction (every kind; from the deployment's summary_extras): share of the
  iteration time spent in communication that no compute hides
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from cosim.workload.requests import RequestTable, trace_hash_columns


def requests_frame(table: RequestTable, state: Any, slo: Any, workload_name: str) -> pd.DataFrame:
    """One row per request: lengths, timestamps, latencies and SLO verdicts."""
    a = state.to_arrays()
    arrival, first, finish = a["arrival_s"], a["first_token_s"], a["finish_s"]
    out_tok = table.output_tokens
    ttft = first - arrival
    e2e = finish - arrival
    with np.errstate(invalid="ignore", divide="ignore"):
        tpot = np.where(out_tok > 1, (finish - first) / (out_tok - 1), np.nan)
    ttft_slo = slo.ttft_ms_for(workload_name) / 1e3
    tpot_slo = slo.tpot_ms / 1e3
    done = np.isfinite(finish)
    meets_ttft = done & (ttft <= ttft_slo)
    meets_tpot = done & (np.isnan(tpot) | (tpot <= tpot_slo))
    meets = meets_ttft & meets_tpot
    if slo.e2e_ms is not None:
        meets &= e2e <= slo.e2e_ms / 1e3
    return pd.DataFrame({
        "request_id": np.arange(len(table), dtype=np.int64),
        "session": table.session,
        "turn": table.turn,
        "prefix_tokens": table.prefix_tokens,
        "input_tokens": table.input_tokens,
        "prompt_tokens": table.prompt_tokens,
        "output_tokens": out_tok,
        # what a replay of this file needs (workload.trace.format=cosim, cosim.workload.traces)
        "pool_id": table.pool_id,
        "pool_tokens": table.pool_tokens,
        "think_s": table.think_s,
        **trace_hash_columns(table),
        **a,
        "ttft_s": ttft,
        "tpot_s": tpot,
        "e2e_s": e2e,
        "queue_s": a["scheduled_s"] - arrival,
        "meets_ttft": meets_ttft,
        "meets_tpot": meets_tpot,
        "meets_slo": meets,
    })


def iterations_frame(instances: list) -> pd.DataFrame:
    """One row per iteration of every instance, in start-time order."""
    from cosim.serving.instance import ITERATION_COLUMNS

    if not instances:
        return pd.DataFrame({c: [] for c in ("instance", *ITERATION_COLUMNS)})
    parts = [inst.iteration_columns() for inst in instances]
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.lexsort((cols["instance"], cols["start_s"]))
    df = pd.DataFrame({k: v[order] for k, v in cols.items()})
    return df[["instance", *ITERATION_COLUMNS]].reset_index(drop=True)


def _pct(x: np.ndarray, q: float, scale: float = 1e3) -> float | None:
    x = x[np.isfinite(x)]
    return float(np.percentile(x, q) * scale) if x.size else None


def _clean(v: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return f if math.isfinite(f) else None
    return v


# network lookup counts that depend on what the on-disk result cache held before the run
# (cosim.serving.network_lookups); network_lookups and network_cache_hits_memo do not
CACHE_HISTORY_KEYS = ("network_cache_hits", "network_cache_hits_lru", "network_cache_hits_sqlite",
                      "network_cache_misses", "network_cache_hit_rate", "network_cache_corrupt")


def _network_fields(network: dict | None) -> dict:
    """network_lookups and network_cache_* (zero lookups, rate None, when nothing was looked up)."""
    out = {"network_lookups": 0, "network_cache_hits": 0, "network_cache_hits_memo": 0,
           "network_cache_hits_lru": 0, "network_cache_hits_sqlite": 0,
           "network_cache_misses": 0, "network_cache_hit_rate": None,
           "network_cache_corrupt": 0, "network_server_restarts": 0}
    out.update(network or {})
    return out


def _price(dep: Any, cfg: Any) -> float | None:
    """USD per GPU-hour of the deployment's GPUs (its roles' kinds: Deployment.usd_per_gpu_hour),
    else the run's hardware price."""
    fn = getattr(dep, "usd_per_gpu_hour", None)
    return fn() if callable(fn) else getattr(cfg.hardware, "usd_per_gpu_hour", None)


def cost_fields(usd_per_gpu_hour: float | None, num_gpus: int, output_tok_s: float) -> dict:
    """usd_per_hour (the deployment's GPUs at the hardware's price per GPU-hour) and
    usd_per_mtok (US dollars per million output tokens at the run's output tokens/s); None
    when the hardware has no price (or, for usd_per_mtok, when no token came out)."""
    if usd_per_gpu_hour is None:
        return {"usd_per_hour": None, "usd_per_mtok": None}
    per_hour = float(usd_per_gpu_hour) * num_gpus
    ok = math.isfinite(output_tok_s) and output_tok_s > 0
    return {"usd_per_hour": per_hour,
            "usd_per_mtok": per_hour / (output_tok_s * 3600.0) * 1e6 if ok else None}


def warmup_mask(arrival: np.ndarray, warmup_s: float, warmup_requests: int) -> np.ndarray:
    """True for requests inside the warm-up window (arrival before first arrival + warmup_s,
    or among the first warmup_requests by arrival; ties by request id)."""
    out = np.zeros(arrival.shape, dtype=bool)
    if not arrival.size:
        return out
    if warmup_s > 0:
        out |= arrival < np.nanmin(arrival) + warmup_s
    if warmup_requests > 0:
        order = np.argsort(arrival, kind="stable")
        out[order[:warmup_requests]] = True
    return out


WINDOW_KEYS = ("simulated_s", "input_tok_s", "output_tok_s", "output_tok_s_per_gpu",
               "total_tok_s_per_gpu", "ttft_ms_p50", "ttft_ms_p90", "ttft_ms_p99",
               "tpot_ms_p50", "tpot_ms_p90", "tpot_ms_p99", "e2e_ms_p50", "e2e_ms_p99",
               "slo_attainment", "goodput_tok_s", "prefix_hit_rate")


def _request_figures(req: pd.DataFrame, gpus: int) -> dict:
    """Throughput, latency, SLO and prefix-hit figures of the requests in `req`."""
    done = np.isfinite(req["finish_s"].to_numpy())
    r = req[done]
    arrival = req["arrival_s"].to_numpy()
    finish = r["finish_s"].to_numpy()
    span = float(finish.max() - np.nanmin(arrival)) if done.any() else 0.0
    inv = span if span > 0 else math.nan
    in_tok = float(r["prompt_tokens"].sum())
    out_tok = float(r["output_tokens"].sum())
    ttft, tpot, e2e = (r[c].to_numpy() for c in ("ttft_s", "tpot_s", "e2e_s"))
    with np.errstate(divide="ignore"):
        speed = 1.0 / tpot[np.isfinite(tpot) & (tpot > 0)]
    good = r["meets_slo"].to_numpy()
    prompt_all = float(req["prompt_tokens"].sum())
    return {
        "simulated_s": span,
        "input_tok_s": in_tok / inv,
        "output_tok_s": out_tok / inv,
        "output_tok_s_per_gpu": out_tok / inv / gpus,
        "total_tok_s_per_gpu": (in_tok + out_tok) / inv / gpus,
        "tok_s_per_user_mean": float(speed.mean()) if speed.size else None,
        "ttft_ms_mean": float(np.nanmean(ttft) * 1e3) if ttft.size else None,
        "ttft_ms_p50": _pct(ttft, 50), "ttft_ms_p90": _pct(ttft, 90), "ttft_ms_p99": _pct(ttft, 99),
        "tpot_ms_mean": float(np.nanmean(tpot) * 1e3) if np.isfinite(tpot).any() else None,
        "tpot_ms_p50": _pct(tpot, 50), "tpot_ms_p90": _pct(tpot, 90), "tpot_ms_p99": _pct(tpot, 99),
        "e2e_ms_p50": _pct(e2e, 50), "e2e_ms_p99": _pct(e2e, 99),
        "slo_attainment": float(good.sum() / len(req)) if len(req) else None,
        "goodput_tok_s": float(r["output_tokens"].to_numpy()[good].sum()) / inv,
        "prefix_hit_rate": float(req["cached_tokens"].sum()) / prompt_all if prompt_all else 0.0,
    }


def summarize(ctx: Any, dep: Any, req: pd.DataFrame, it: pd.DataFrame, wall_s: float,
              events: int, comm_stats: dict, network: dict | None = None) -> dict:
    """summary.json of a run (see the module docstring for the definitions).

    `network`: NetworkLookups.summary() of the run (network_lookups, network_cache_*).
    """
    cfg = ctx.cfg
    slo = cfg.slo
    wname = cfg.workload.name
    base = {
        "feasible": bool(dep.feasible),
        "infeasible_reason": dep.infeasible_reason or None,
        "model": cfg.model.name,
        "hardware": cfg.hardware.name,
        "topology": getattr(getattr(cfg, "topology", None), "name", None),
        "network": getattr(getattr(cfg, "network", None), "backend", None),
        "deployment_kind": cfg.deployment.kind,
        "workload": wname,
        "seed": int(cfg.seed),
        "num_gpus": int(dep.num_gpus),
        "requests_total": int(len(req)),
        "sim_wall_s": float(wall_s),
        "slo": {"ttft_ms": slo.ttft_ms_for(wname), "tpot_ms": float(slo.tpot_ms),
                "e2e_ms": slo.e2e_ms},
        "deployment": dep.describe(),
        "workload_notes": dict(ctx.table.notes),
    }
    experts = getattr(ctx, "shared", {}).get("experts")
    if experts is not None:  # expert placement per EP size and its imbalance (docs/experts.md)
        base["experts"] = experts.summary()
    if not dep.feasible:
        base.update(cost_fields(_price(dep, cfg),
                                int(dep.num_gpus), math.nan))
        base.update(_network_fields(network))
        base.update(dep.summary_extras(req, it))
        return _clean(base)
    done = np.isfinite(req["finish_s"].to_numpy())
    gpus = max(int(dep.num_gpus), 1)
    mcfg = getattr(cfg, "metrics", None)
    warm = warmup_mask(req["arrival_s"].to_numpy(), float(getattr(mcfg, "warmup_s", 0.0)),
                       int(getattr(mcfg, "warmup_requests", 0)))
    fig = _request_figures(req[~warm] if warm.any() else req, gpus)
    comp_src: dict[str, float] = {}
    for cm in dep.cost_models():
        for k, v in cm.source_seconds().items():
            comp_src[k] = comp_src.get(k, 0.0) + v
    tot_src = sum(comp_src.values())
    dur = it["duration_s"].to_numpy()
    comm = it["comm_s"].to_numpy()
    base.update({
        "requests_completed": int(done.sum()),
        **fig,
        **cost_fields(_price(dep, cfg), int(dep.num_gpus),
                      fig["output_tok_s"]),
        "preemptions": int(req["preemptions"].sum()),
        "kv_admission_stalls": int(sum(getattr(r, "kv_stalls", 0) for inst in dep.instances
                                       for r in getattr(inst, "ranks", ()))),
        # rank-iterations whose context work TensorRT-LLM-style batch waiting held back
        "batch_wait_held_iterations": int(sum(getattr(r, "batch_waits", 0)
                                              for inst in dep.instances
                                              for r in getattr(inst, "ranks", ()))),
        # iterations whose context requests the attention-DP balance held back
        "adp_balance_held_iterations": int(sum(getattr(inst, "adp_held", 0)
                                               for inst in dep.instances)),
        "compute_sources": {k: v / tot_src for k, v in sorted(comp_src.items())} if tot_src else {},
        "iterations": int(len(it)),
        "iteration_ms_mean": float(dur.mean() * 1e3) if dur.size else None,
        "decode_batch_mean": float(it["decode_requests"].mean()) if len(it) else None,
        "comm_fraction": float(comm.sum() / dur.sum()) if dur.size and dur.sum() > 0 else 0.0,
        "kv_peak_blocks": int(it["kv_used_blocks"].max()) if len(it) else 0,
        "events": int(events),
        "warmup_excluded_requests": int(warm.sum()),
        "warm_prefix_blocks": int(getattr(dep, "warm_prefix_blocks", 0)),
        # run-history facts (cache hits depend on what the on-disk cache held) stay out of
        # `comm`, so that only sim_wall_s and CACHE_HISTORY_KEYS differ between equal runs
        "comm": {**{k: v for k, v in ctx.notes.items() if k != "profile"}, **comm_stats},
    })
    if ctx.notes.get("profile"):  # compute.profile=framework: the values it set
        base["profile"] = dict(ctx.notes["profile"])
    if warm.any():
        full = _request_figures(req, gpus)
        base["including_warmup"] = {k: full[k] for k in WINDOW_KEYS}
    base.update(_network_fields(network))
    base.update(dep.summary_extras(req, it))
    return _clean(base)
