"""The two stages of a design-space search over every candidate (cosim.search.executors runs them).

Static stage: each candidate runs at ONE closed-loop user (no queueing by construction). That
run gives its memory plan (an infeasible candidate stops here, with the planner's reason), its
TTFT and TPOT without queueing (a candidate that misses the SLO at one user can only miss it
more under load: dropped, with the numbers), and an upper bound on output tokens/s per GPU:
the concurrency its KV cache and scheduler caps allow, each request at its one-user TPOT.

Simulation stage: per kind, the survivors with the highest bound are run in the serving DES;
a doubling-then-bisection over closed-loop users finds the most users whose measured requests
(after the warm-up) meet TTFT and TPOT in at least `slo_attainment` of cases. The rest are
kept in the output with the reason they were not simulated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cosim.config.search import SearchConfig
from cosim.network.flows import InvalidResult
from cosim.network.ns3.client import Ns3Error
from cosim.search.bisection import highest_passing
from cosim.search.evaluate import evaluate
from cosim.search.executors import Progress, run_tasks
from cosim.search.space import DECODE, Candidate


@dataclass
class Outcome:
    """What the search learned about one candidate."""

    cand: Candidate
    static: dict[str, Any]
    bound_tok_s_per_gpu: float = 0.0
    cap: int = 1  # requests the layout can hold at once (concurrency_cap of the static run)
    stage: str = "static"  # static | simulated | skipped
    reason: str = ""  # why it was pruned / where its best stops
    points: list[dict[str, Any]] = field(default_factory=list)  # simulated loads
    best: dict[str, Any] | None = None  # the most users meeting the SLO
    confirm: dict[str, Any] | None = None  # the best load re-run on ns-3


def concurrency_cap(c: Candidate, rec: dict[str, Any]) -> int:
    """Requests the layout can hold at once: scheduler caps and KV tokens, whichever binds."""
    side = DECODE[c.kind]
    count = int(c.settings.get(side.count_key, 1))
    ranks = count * int(c.settings.get(f"{side.prefix}.layout.dp", 1))
    cap = ranks * int(c.settings.get(f"{side.prefix}.scheduler.max_running_requests", 64))
    kv = ((rec.get("memory") or {}).get(side.memory_role) or {}).get("kv_tokens")
    if kv:
        per_req = max(1.0, float(rec.get("mean_request_tokens") or 1.0))
        cap = min(cap, int(kv * count // per_req))
    return max(1, cap)


def one_user_verdict(rec: dict[str, Any], target: float) -> str:
    """'' when the one-user run leaves the candidate possible, else the reason in numbers.

    Only TPOT prunes: a decode step with more requests in the batch is never shorter, so a
    TPOT missed at one user is missed under any load. TTFT does not: the one-user run's few
    requests find the shared prefixes cold, while under load most hit the prefix cache.
    """
    if not rec.get("feasible"):
        return f"memory/layout: {rec.get('reason') or 'infeasible'}"
    if rec.get("meets_tpot", 0.0) >= target:
        return ""
    slo = rec.get("slo") or {}
    return (f"SLO-infeasible: TPOT at one user p50 {rec.get('tpot_ms_p50', 0):.1f} ms > "
            f"{slo.get('tpot_ms')} ms (iteration {rec.get('iteration_ms_mean', 0):.1f} ms)")


def stop_reason(best: dict[str, Any] | None, fail: dict[str, Any] | None, cap: int,
                max_users: int) -> str:
    """Why the best load of a candidate stops where it does, from the runs next to it."""
    if best is None and fail is None:
        return "no load meets the SLO"
    if fail is None:
        if best["users"] >= max_users:
            return f"load ceiling: search.max_users={max_users} still meets the SLO"
        return "every probe met the SLO"
    slo = fail.get("slo") or {}
    if not fail.get("feasible"):
        return f"at {fail['users']} users: {fail.get('reason')}"
    bits = []
    if fail.get("meets_tpot", 1.0) <= fail.get("meets_ttft", 1.0):
        bits.append(f"TPOT-bound: at {fail['users']} users {fail.get('meets_tpot', 0):.0%} of "
                    f"measured requests meet TPOT <= {slo.get('tpot_ms')} ms (run p90 "
                    f"{fail.get('tpot_ms_p90', 0):.1f} ms, iteration "
                    f"{fail.get('iteration_ms_mean', 0):.1f} ms, decode batch "
                    f"{fail.get('decode_batch_mean', 0):.1f})")
    else:
        why = ("queueing for prefill" if fail["users"] > 1 else
               f"no queue at one user; prefix cache hits {fail.get('prefix_hit_rate') or 0:.0%}")
        bits.append(f"TTFT-bound: at {fail['users']} users {fail.get('meets_ttft', 0):.0%} of "
                    f"measured requests meet TTFT <= {slo.get('ttft_ms')} ms (run p90 "
                    f"{fail.get('ttft_ms_p90', 0):.0f} ms; {why})")
    if best is None:
        bits[0] = "no load meets the SLO; " + bits[0]
    elif best["users"] >= cap:
        bits.append(f"concurrency cap {cap} (scheduler caps / KV cache) reached")
    return "; ".join(bits)


def one_instance(c: Candidate) -> Candidate:
    """`c` with one instance of each role: what a single user sees (the static stage's run).

    At one closed-loop user only one replica / instance / unit serves, and its batch of one
    request is one micro-batch, so candidates that differ only in instance counts or AFD
    micro-batches share one static run (and its memory plan, per instance).
    """
    st = {k: (1 if k == "deployment.replicas" or k.endswith(".count")
              or k == "deployment.micro_batches" else v)
          for k, v in c.settings.items()}
    return Candidate(c.kind, 0, st, "")


def static_task(base: Sequence[str], cand: Candidate, s: SearchConfig,
                store: str) -> dict[str, Any]:
    return evaluate(base, cand, 1, s.static_requests, Path(store), 0.0)


def simulate_task(base: Sequence[str], cand: Candidate, s: SearchConfig, store: str,
                  cap: int) -> tuple[list[dict], dict | None, dict | None]:
    """Bisect closed-loop users; returns (all points, best passing point, first failing point)."""
    points: dict[int, dict] = {}

    def passes(users: int) -> bool:
        rec = evaluate(base, cand, users, s.requests, Path(store), s.warmup_fraction)
        points[users] = rec
        return bool(rec.get("feasible")) and rec.get("attainment", 0.0) >= s.slo_attainment

    hi = min(s.max_users, max(1, cap))
    good, bad = highest_passing(passes, 1, hi, s.bisection_steps)
    ordered = [points[u] for u in sorted(points)]
    return ordered, points.get(good) if good else None, points.get(bad) if bad else None


def confirm_task(base: Sequence[str], cand: Candidate, s: SearchConfig, store: str,
                 users: int) -> dict[str, Any]:
    """The best load on ns-3; a backend failure is recorded (the search's answer stands)."""
    try:
        return evaluate(base, cand, users, s.requests, Path(store), s.warmup_fraction,
                        extra=("network=ns3",))
    except (Ns3Error, InvalidResult) as e:
        return {"cid": cand.cid, "kind": cand.kind, "users": users, "feasible": False,
                "error": f"ns-3: {' '.join(str(e).split())[:400]}"}


def objective_value(rec: dict[str, Any] | None, objective: str) -> float:
    """Higher is better; usd_per_mtok is negated (None: no price -> -inf)."""
    if rec is None:
        return -math.inf
    if objective == "usd_per_mtok":
        v = rec.get("usd_per_mtok")
        return -float(v) if v is not None else -math.inf
    key = {"tok_s_per_gpu": "output_tok_s_per_gpu", "tok_s_per_user": "tok_s_per_user_mean"}
    return float(rec.get(key[objective]) or 0.0)


def run_search(base: Sequence[str], s: SearchConfig, cands: list[Candidate], out_dir: Path,
               progress: Progress | None = None) -> list[Outcome]:
    """Both stages (and the ns-3 confirmation when s.confirm == 'ns3') over `cands`."""
    store = str(out_dir / "evals")
    base = list(base)
    singles = {}
    for c in cands:
        one = one_instance(c)
        singles.setdefault(one.cid, one)
    done = run_tasks(s, [(static_task, (base, c, s, store)) for c in singles.values()],
                     f"static stage ({len(singles)} one-user runs)", progress, out_dir)
    by_cid = dict(zip(singles, done, strict=True))
    statics = [by_cid[one_instance(c).cid] for c in cands]
    outcomes = []
    for c, rec in zip(cands, statics, strict=True):
        o = Outcome(c, rec)
        o.reason = one_user_verdict(rec, s.slo_attainment)
        if not o.reason:
            tpot = max(1e-6, float(rec.get("tpot_ms_p50") or 0.0) / 1e3)
            o.cap = concurrency_cap(c, rec)
            o.bound_tok_s_per_gpu = o.cap / tpot / max(1, c.gpus)
        outcomes.append(o)
    chosen: list[Outcome] = []
    for kind in s.kinds:
        alive = sorted((o for o in outcomes if o.cand.kind == kind and not o.reason),
                       key=lambda o: -o.bound_tok_s_per_gpu)
        keep = alive if s.keep_per_kind == 0 else alive[:s.keep_per_kind]
        chosen.extend(keep)
        for o in alive[len(keep):]:
            o.stage = "skipped"
            o.reason = (f"not simulated: static bound {o.bound_tok_s_per_gpu:,.0f} tok/s/GPU "
                        f"ranks below the kind's {len(keep)} simulated candidates")
    sims = run_tasks(s, [(simulate_task, (base, o.cand, s, store, o.cap)) for o in chosen],
                     "simulation stage (bisection)", progress, out_dir)
    for o, (points, best, fail) in zip(chosen, sims, strict=True):
        o.stage, o.points, o.best = "simulated", points, best
        o.reason = stop_reason(best, fail, o.cap, s.max_users)
        if s.objective == "tok_s_per_user" and best is not None:
            # per-user speed peaks at low load: the candidate's best is its fastest passing point
            passing = [p for p in points if p.get("feasible")
                       and p.get("attainment", 0.0) >= s.slo_attainment]
            o.best = max(passing, key=lambda p: objective_value(p, s.objective))
    if s.confirm == "ns3":
        finalists = [best_of(outcomes, k, s.objective) for k in s.kinds]
        finalists = [o for o in finalists if o is not None]
        recs = run_tasks(s, [(confirm_task, (base, o.cand, s, store, o.best["users"]))
                             for o in finalists], "ns-3 confirmation", progress, out_dir)
        for o, rec in zip(finalists, recs, strict=True):
            o.confirm = rec
    return outcomes


def best_of(outcomes: list[Outcome], kind: str | None, objective: str) -> Outcome | None:
    """The candidate (of `kind`, or any) whose best SLO-meeting load scores highest."""
    pool = [o for o in outcomes if o.best is not None and (kind is None or o.cand.kind == kind)]
    return max(pool, key=lambda o: objective_value(o.best, objective), default=None)
