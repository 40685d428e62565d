"""Seed-study trade-off at small scale: AFD vs chunked on DeepSeek-V3.2, same GPUs (16 B200).

    python scripts/study_afd_vs_chunked.py                  # re-render the page from the recorded CSV
    python scripts/study_afd_vs_chunked.py --record         # rerun the sweep (~5 min), record, render
    python scripts/study_afd_vs_chunked.py --check          # 0 when the page is what the CSV renders
    python scripts/study_afd_vs_chunked.py --out DIR [--quick]   # sweep only: DIR/study.csv

Sweeps closed-loop concurrency (users) for a few chunked layouts (2 x EP8 replicas with DP8,
TP4 x DP2 or TP8 attention; one EP16 replica with DP16 or TP8 x DP2 attention) and AFD
deployments (one unit of 8 attention + 8 FFN GPUs, attention DP8, TP4 x DP2 or TP8; two units
of 4 + 4, one per server; one unit of 12 + 4; 1-3 micro-batches) on the chat workload, with
the analytical network backend; every attention group admits 64 running requests per GPU
(RUNNING_PER_GPU). Prints, per deployment kind, the best tokens/s per user among runs meeting
a strict TPOT objective (p90 <= 15 ms), the best output tokens/s per GPU under a loose one
(p90 <= 50 ms) and the frontier of the best tokens/s per GPU under FRONTIER_TPOT_MS, and writes
every run to study.csv.

The sweep's record is docs/deployments/study_afd_vs_chunked.csv; from it this script writes
two GENERATED sections of docs/deployments/afd.md: the per-users table, the frontier table and
the conclusion bullets (each verdict computed from the runs, so a change that makes AFD win
turns the bullet), and the "Why" paragraph's per-layer cost table (priced live by
cosim-estimate's compute model, no simulation) with the run figures its items quote.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir

from cosim.api import compose_config
from cosim.apps.estimate import run_estimate
from cosim.config import register_configs, to_object
from cosim.files import update_generated
from cosim.paths import hydra_config_dir
from cosim.serving.simulation import run_simulation

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "deployments" / "afd.md"
RECORD = ROOT / "docs" / "deployments" / "study_afd_vs_chunked.csv"
BEGIN = "<!-- GENERATED: scripts/study_afd_vs_chunked.py -->"
END = "<!-- END GENERATED: study_afd_vs_chunked -->"
WHY_BEGIN = "<!-- GENERATED: scripts/study_afd_vs_chunked.py (why) -->"
WHY_END = "<!-- END GENERATED: study_afd_vs_chunked (why) -->"
STRICT_TPOT_MS = 15.0
LOOSE_TPOT_MS = 50.0

# Every attention group may run the same number of requests per GPU whatever its TP: the
# scheduler's default cap (64) is per attention-DP rank, so a TP8 rank (8 GPUs) would otherwise
# admit 8x fewer requests than eight DP ranks and queue the rest (TTFT of tens of seconds in
# the first version of this study). MLA keeps its latent on every TP rank, so a TP8 rank has
# one GPU's KV capacity, but that suffices here: 1.06 M tokens on a chunked TP8 replica, 2.1 M
# on AFD's TP8 attention GPUs (memory plan), vs <= 512 requests of ~0.8 k own tokens each plus
# the chat pool's 32 shared ~4 k prefixes (~0.5 M tokens) in this sweep.
RUNNING_PER_GPU = 64


def chunked(replicas: int, tp: int, dp: int, ep: int) -> list[str]:
    """Overrides of `replicas` chunked replicas with attention tp x dp and experts over EP `ep`."""
    return ["deployment=chunked", f"deployment.replicas={replicas}", f"deployment.layout.tp={tp}",
            f"deployment.layout.dp={dp}", f"deployment.layout.ep={ep}",
            f"deployment.scheduler.max_running_requests={RUNNING_PER_GPU * tp}"]


def afd(tp: int, dp: int, m: int, ep: int = 8, units: int = 1) -> list[str]:
    """Overrides of `units` AFD units: attention tp x dp, FFN over EP `ep`, m micro-batches."""
    a, f = "deployment.roles.attention", "deployment.roles.ffn"
    return ["deployment=afd", f"deployment.micro_batches={m}", f"{a}.count={units}",
            f"{f}.count={units}", f"{a}.layout.tp={tp}", f"{a}.layout.dp={dp}", f"{f}.layout.ep={ep}",
            f"{a}.scheduler.max_running_requests={RUNNING_PER_GPU * tp}"]


CHUNKED = {
    "chunked 2x(DP8 EP8)": chunked(2, 1, 8, 8),
    "chunked 2x(TP4 DP2 EP8)": chunked(2, 4, 2, 8),
    "chunked 2x(TP8 EP8)": chunked(2, 8, 1, 8),
    "chunked 1x(DP16 EP16)": chunked(1, 1, 16, 16),
    "chunked 1x(TP8 DP2 EP16)": chunked(1, 8, 2, 16),
}
AFD = {
    **{f"afd 8+8 attn DP8 m={m}": afd(1, 8, m) for m in (1, 2, 3)},
    **{f"afd 8+8 attn TP4 DP2 m={m}": afd(4, 2, m) for m in (1, 2)},
    **{f"afd 8+8 attn TP8 m={m}": afd(8, 1, m) for m in (1, 2, 3)},
    # one unit per server (A2F/F2A over NVLink), and more GPUs for attention (EP4 experts fit)
    **{f"afd 2x(4+4) attn TP4 m={m}": afd(4, 1, m, ep=4, units=2) for m in (1, 2)},
    "afd 12+4 attn TP4 DP3 m=2": afd(4, 3, 2, ep=4),
}
# TPOT p90 objectives (ms) of the frontier printed at the end (inf: no objective)
FRONTIER_TPOT_MS = (15.0, 20.0, 30.0, 50.0, 75.0, 100.0, float("inf"))


def run(overrides: list[str]) -> dict:
    register_configs()
    with initialize_config_dir(config_dir=hydra_config_dir(), version_base="1.3"):
        cfg = to_object(compose("config", overrides=overrides))
    s = run_simulation(cfg).summary
    return {k: s.get(k) for k in ("feasible", "num_gpus", "requests_completed", "output_tok_s_per_gpu",
                                  "tok_s_per_user_mean", "tpot_ms_p50", "tpot_ms_p90", "ttft_ms_p50",
                                  "attention_busy", "ffn_busy", "comm_exposed_fraction")}


# Per-users table of the page: these deployments, these concurrency points.
TABLE_CONFIGS = ("chunked 2x(TP8 EP8)", "chunked 1x(TP8 DP2 EP16)", "chunked 2x(DP8 EP8)",
                 "afd 8+8 attn TP8 m=1", "afd 8+8 attn TP8 m=2", "afd 8+8 attn TP4 DP2 m=2",
                 "afd 2x(4+4) attn TP4 m=2", "afd 8+8 attn DP8 m=2")
TABLE_USERS = (1, 2, 4, 8, 16, 64, 96, 256, 512)
KINDS = ("chunked", "afd")
KIND_LABEL = {"chunked": "chunked", "afd": "AFD"}


def sweep(quick: bool) -> pd.DataFrame:
    """Every (deployment, users) run of the study, one row each."""
    users = [2, 16, 64, 256] if quick else [1, 2, 4, 8, 16, 32, 64, 96, 128, 192, 256, 384, 512]
    candidates = {**CHUNKED, **AFD}
    if quick:
        candidates = {k: v for k, v in candidates.items()
                      if "m=1" not in k and "m=3" not in k and "DP16" not in k and "TP4" not in k}
    common = ["model=deepseek_v32", "hardware=b200", "topology=dgx_b200_ib", "network=analytical",
              "workload=chat", "workload.arrival.process=closed_loop", "workload.arrival.think_time_s=0"]
    rows = []
    for name, dep in candidates.items():
        for u in users:
            t0 = time.perf_counter()
            r = run([*dep, *common, f"workload.arrival.users={u}", f"workload.num_requests={max(4 * u, 32)}"])
            r.update(config=name, kind=name.split()[0], users=u, wall_s=time.perf_counter() - t0)
            rows.append(r)
            print(f"{name:30s} users={u:4d} tok/s/user={r['tok_s_per_user_mean'] or 0:6.1f} "
                  f"tok/s/GPU={r['output_tok_s_per_gpu'] or 0:7.1f} TPOT p90={r['tpot_ms_p90'] or 0:6.2f} ms",
                  flush=True)
    return pd.DataFrame(rows)


def feasible(df: pd.DataFrame) -> pd.DataFrame:
    return df[df.feasible.astype(bool)]


def best(df: pd.DataFrame, kind: str, slo: float, by: str) -> pd.Series | None:
    """The feasible run of `kind` with TPOT p90 <= `slo` ms that maximises column `by`."""
    d = feasible(df)
    d = d[(d.kind == kind) & (d.tpot_ms_p90 <= slo)]
    return d.loc[d[by].idxmax()] if len(d) else None


def short(config: str) -> str:
    """A run's deployment without its kind: '2×(TP8 EP8)', '8+8 attn TP8 m=2'."""
    return config.split(" ", 1)[1].replace("x(", "×(")


def header(config: str) -> str:
    kind, rest = config.split(" ", 1)
    return f"{KIND_LABEL[kind]} {rest.replace('x(', '×(').replace(' m=', ', m=')}"


def slo_label(slo: float) -> str:
    return "none" if slo == float("inf") else f"{slo:g}"


def print_summary(df: pd.DataFrame) -> None:
    """The study's answer on the terminal: strict, loose and the frontier."""
    for kind in KINDS:
        b = best(df, kind, STRICT_TPOT_MS, "tok_s_per_user_mean")
        if b is not None:
            print(f"{kind:8s} strict TPOT p90 <= {STRICT_TPOT_MS:.0f} ms: best {b.tok_s_per_user_mean:.1f} tok/s "
                  f"per user ({b.config}, {b.users} users, {b.output_tok_s_per_gpu:.1f} tok/s/GPU)")
        else:
            print(f"{kind:8s} strict TPOT p90 <= {STRICT_TPOT_MS:.0f} ms: no run meets it")
        b = best(df, kind, LOOSE_TPOT_MS, "output_tok_s_per_gpu")
        if b is not None:
            print(f"{kind:8s} loose TPOT p90 <= {LOOSE_TPOT_MS:.0f} ms: best {b.output_tok_s_per_gpu:.1f} "
                  f"tok/s per GPU ({b.config}, {b.users} users, {b.tok_s_per_user_mean:.1f} tok/s/user)")
    print("\nbest output tok/s per GPU [tok/s per user] under TPOT p90 <= X ms:")
    for slo in FRONTIER_TPOT_MS:
        cells = []
        for kind in KINDS:
            b = best(df, kind, slo, "output_tok_s_per_gpu")
            cells.append("none" if b is None else f"{kind} {b.output_tok_s_per_gpu:6.1f} "
                         f"[{b.tok_s_per_user_mean:5.1f}] ({b.config}, {b.users} users)")
        print(f"  X={slo:5.0f}: " + " | ".join(cells))


def users_table(df: pd.DataFrame) -> list[str]:
    """Tokens/s per user / output tokens/s per GPU / TPOT p90 of TABLE_CONFIGS at TABLE_USERS."""
    idx = df.set_index(["config", "users"])
    lines = ["| users | " + " | ".join(header(c) for c in TABLE_CONFIGS) + " |",
             "|---" * (len(TABLE_CONFIGS) + 1) + "|"]
    for u in TABLE_USERS:
        cells = []
        for c in TABLE_CONFIGS:
            r = idx.loc[(c, u)]
            cells.append(f"{r.tok_s_per_user_mean:.1f} / {r.output_tok_s_per_gpu:.1f} / {r.tpot_ms_p90:.1f}"
                         if bool(r.feasible) else "infeasible")
        lines.append(f"| {u} | " + " | ".join(cells) + " |")
    return lines


def frontier(df: pd.DataFrame) -> list[dict]:
    """Per objective of FRONTIER_TPOT_MS, the best tokens/s per GPU run of each kind."""
    return [{"slo": slo, **{k: best(df, k, slo, "output_tok_s_per_gpu") for k in KINDS}}
            for slo in FRONTIER_TPOT_MS]


def frontier_table(df: pd.DataFrame) -> list[str]:
    lines = ["Best output tokens/s per GPU [tokens/s per user] among the runs meeting TPOT p90 ≤ X "
             "(the script prints this frontier; bold: the higher of the two):", "",
             "| X (ms) | chunked | AFD |", "|---|---|---|"]
    for f in frontier(df):
        top = max((f[k].output_tok_s_per_gpu for k in KINDS if f[k] is not None), default=None)
        cells = []
        for k in KINDS:
            b = f[k]
            if b is None:
                cells.append("no run meets it")
                continue
            v = f"{b.output_tok_s_per_gpu:.1f}"
            cells.append(f"{'**' + v + '**' if b.output_tok_s_per_gpu == top else v} "
                         f"[{b.tok_s_per_user_mean:.1f}] {short(b.config)}, {users(b.users)}")
        lines.append(f"| {slo_label(f['slo'])} | " + " | ".join(cells) + " |")
    return lines


def users(n: int) -> str:
    return f"{n} user{'' if n == 1 else 's'}"


def strict_bullet(df: pd.DataFrame) -> str:
    ok = feasible(df)
    meet = ok[ok.tpot_ms_p90 <= STRICT_TPOT_MS]
    s = f"TPOT p90 ≤ {STRICT_TPOT_MS:g} ms"
    if not len(meet):
        return f"- **Strict SLO ({s}): no run of either kind meets it.**"
    bs = {k: best(df, k, STRICT_TPOT_MS, "tok_s_per_user_mean") for k in KINDS}
    all_tp = all("TP" in c for c in meet.config.unique())
    who = "Only layouts with TP attention meet it" if all_tp else "Runs of both TP and DP attention meet it"

    def at(k: str) -> str:
        u = sorted(meet[meet.kind == k].users.unique())
        return "no run" if not u else f"{KIND_LABEL[k]} at {users(u[0]) if len(u) == 1 else f'{u[0]}–{users(u[-1])}'}"

    text = f"{who}: {', '.join(at(k) for k in KINDS)} ({len(meet)} of {len(df)} runs). "
    if bs["afd"] is None or bs["chunked"] is None:
        k = "chunked" if bs["afd"] is None else "afd"
        b = bs[k]
        head = f"only {KIND_LABEL[k]} meets it"
        return (f"- **Strict SLO ({s}): {head}.** {text}Its best run gives {b.tok_s_per_user_mean:.1f} "
                f"tok/s per user ({short(b.config)}, {users(b.users)}).")
    c, a = bs["chunked"], bs["afd"]
    win = "afd" if a.tok_s_per_user_mean > c.tok_s_per_user_mean else "chunked"
    head = ("AFD reaches a higher tokens/s per user" if win == "afd"
            else "AFD does *not* reach a higher tokens/s per user")
    text += (f"The best AFD run gives {a.tok_s_per_user_mean:.1f} tok/s per user ({short(a.config)}, "
             f"{users(a.users)}) where chunked gives {c.tok_s_per_user_mean:.1f} ({short(c.config)}, "
             f"{users(c.users)})")
    # the highest concurrency at which both kinds still meet the objective
    both = [u for u in sorted(meet.users.unique()) if {"chunked", "afd"} <= set(meet[meet.users == u].kind)]
    if both and both[-1] != min(a.users, c.users):
        u = both[-1]
        bu = {k: meet[(meet.users == u) & (meet.kind == k)].tok_s_per_user_mean.max() for k in KINDS}
        text += f"; at {u} users {bu['afd']:.1f} (AFD) vs {bu['chunked']:.1f} (chunked)"
    return f"- **Strict SLO ({s}): {head}.** {text}."


def frontier_bullet(df: pd.DataFrame) -> str:
    rows = [f for f in frontier(df) if f["chunked"] is not None and f["afd"] is not None]
    if not rows:
        return "- **Frontier: no objective is met by both kinds.**"
    ahead = {k: [f for f in rows if f[k].output_tok_s_per_gpu > f[KINDS[1 - i]].output_tok_s_per_gpu]
             for i, k in enumerate(KINDS)}
    loose = next(f for f in rows if f["slo"] == LOOSE_TPOT_MS)
    last = rows[-1]

    def pair(f: dict) -> str:
        return f"{f['chunked'].output_tok_s_per_gpu:.1f} (chunked) vs {f['afd'].output_tok_s_per_gpu:.1f} (AFD)"

    def at(f: dict) -> str:
        return "unconstrained" if f["slo"] == float("inf") else f"at {f['slo']:g} ms"

    def lead(f: dict, name: bool) -> str:
        c, a = f["chunked"].output_tok_s_per_gpu, f["afd"].output_tok_s_per_gpu
        k, g = ("chunked", c / a - 1) if c >= a else ("AFD", a / c - 1)
        return f"{k + ' ' if name else ''}by {100 * g:.0f} % {at(f)}"

    w = "chunked" if loose["chunked"].output_tok_s_per_gpu >= loose["afd"].output_tok_s_per_gpu else "afd"
    head = f"Loose SLO (TPOT p90 ≤ {LOOSE_TPOT_MS:g} ms): {KIND_LABEL[w]} has the higher tokens/s per GPU"
    text = f"{pair(loose)} at {LOOSE_TPOT_MS:g} ms, {pair(last)} {at(last)}. "
    # objectives whose two best runs are those of a looser objective add nothing: keep the loosest
    distinct = [f for i, f in enumerate(rows) if i + 1 == len(rows) or any(
        f[k].config != rows[i + 1][k].config or f[k].users != rows[i + 1][k].users for k in KINDS)]
    every = [k for k in KINDS if len(ahead[k]) == len(rows)]
    if every:
        text += f"At every objective {KIND_LABEL[every[0]]}'s best run is ahead: "
    else:
        text += "Neither kind is ahead at every objective: "
    text += ", ".join(lead(f, not every) for f in distinct) + "."
    fewer = [f for f in distinct if f["chunked"].users != f["afd"].users]
    if fewer:
        text += (" Where the two best runs differ in concurrency, part of the gap is that: "
                 + "; ".join(f"{at(f)} chunked's serves {users(f['chunked'].users)}, AFD's "
                             f"{users(f['afd'].users)}" for f in fewer) + ".")
    return f"- **{head}.** {text}"


def render(df: pd.DataFrame) -> str:
    lines = ["Tokens/s per user (mean 1/TPOT) / output tokens/s per GPU / TPOT p90 (ms):", "",
             *users_table(df), "", *frontier_table(df), "", strict_bullet(df), frontier_bullet(df)]
    return "\n".join(lines)


# The per-layer decode costs of the "Why" paragraph: (layout overrides of cosim-estimate, the
# per-rank batches shown). Priced live by the compute model (no simulation), so `--check`
# follows a change of the kernel tables or of compute.* defaults.
COST_LAYOUTS = ((("tp=8", "ep=8"), (1, 2, 8, 16, 64, 128)), (("tp=4", "dp=2", "ep=8"), (1,)),
                (("tp=4", "ep=4"), (1, 64)), (("dp=8", "ep=8"), (1, 16)))
COST_BASE = ["model=deepseek_v32", "hardware=b200", "phase=decode", "context=4096", "flags=false"]


def layer_costs(layout: tuple[str, ...], batch: int) -> dict[str, float]:
    """Per-layer decode costs (µs; step in ms) of one GPU of `layout` with `batch` requests per rank."""
    cfg = compose_config([*COST_BASE, *layout, f"batch={batch}"], config_name="estimate")
    d = run_estimate(to_object(cfg))
    ops = {o["name"]: o for o in d["ops"]}
    layers = ops["attn.dsa"]["count"]

    def stage(s: str) -> float:
        return 1e6 * sum(o["total_s"] for o in d["ops"] if o["stage"] == s) / layers

    return {"dsa": 1e6 * ops["attn.dsa"]["latency_s"], "attention": stage("attention"),
            "moe": 1e6 * ops["moe.experts"]["latency_s"], "ffn": stage("ffn"),
            "step_ms": 1e3 * d["total_s"], "layers": layers}


def cost_table() -> tuple[list[str], dict]:
    lines = ["| layout | b | DSA module | attention stage | MoE experts | FFN stage | step (61 layers) |",
             "|---|---|---|---|---|---|---|"]
    costs = {}
    for layout, batches in COST_LAYOUTS:
        for i, b in enumerate(batches):
            c = costs[(layout, b)] = layer_costs(layout, b)
            unit = " µs" if i == 0 and layout == COST_LAYOUTS[0][0] else ""
            step = " ms" if unit else ""
            lines.append(f"| {'`' + ' '.join(layout) + '`' if i == 0 else ''} | {b} | {c['dsa']:.0f}{unit} | "
                         f"{c['attention']:.0f}{unit} | {c['moe']:.0f}{unit} | {c['ffn']:.0f}{unit} | "
                         f"{c['step_ms']:.1f}{step} |")
    return lines, costs


def span(values: pd.Series, pct: bool = True) -> str:
    lo, hi = (100 * values.min(), 100 * values.max()) if pct else (values.min(), values.max())
    fmt = "{:.0f}" if pct else "{:.2f}"
    a, b = fmt.format(lo), fmt.format(hi)
    return (a if a == b else f"{a}–{b}") + (" %" if pct else "")


def figures(df: pd.DataFrame, costs: dict) -> list[str]:
    """The run figures the "Why" items quote, each with the runs it comes from."""
    ok = feasible(df).set_index(["config", "users"])
    tp8 = costs[(("tp=8", "ep=8"), 1)]
    dp8 = costs[(("dp=8", "ep=8"), 1)]
    floor = 2 * tp8["attention"] * tp8["layers"] / 1e3
    exp = ok.comm_exposed_fraction

    def runs(c: str, users_from: int = 0) -> pd.Series:
        s = exp.xs(c, level="config")
        return s[s.index >= users_from]

    a, c = ok.loc[("afd 8+8 attn TP8 m=2", 256)], ok.loc[("chunked 2x(TP8 EP8)", 256)]
    ratio = (a.attention_busy + a.ffn_busy) / (2 * max(a.attention_busy, a.ffn_busy))
    ffn_side = pd.concat([ok.xs(k, level="config").ffn_busy.loc[64:]
                          for k in ("afd 12+4 attn TP4 DP3 m=2", "afd 2x(4+4) attn TP4 m=2")])
    one = {k: ok.loc[(k, 1)].tok_s_per_user_mean for k in ("afd 8+8 attn TP8 m=1", "chunked 2x(TP8 EP8)")}
    m2 = ok.loc[("afd 8+8 attn TP8 m=2", 2)]
    afd_runs = feasible(df)[feasible(df).kind == "afd"]
    top = afd_runs.loc[afd_runs.groupby("users").tok_s_per_user_mean.idxmax()]
    split = ", ".join(str(u) for u in top[top.config.str.startswith("afd 2x(4+4)")].users) or "none"
    return [
        "Figures of the study the items below quote (all computed from the table above and the "
        "recorded runs):", "",
        f"- m = 2 floor with TP8 attention: 2 × {tp8['attention']:.0f} µs × {tp8['layers']} layers = "
        f"{floor:.1f} ms per token before the LM head and communication; AFD 8+8 attn TP8 m=2 "
        f"measures a TPOT p90 of {m2.tpot_ms_p90:.1f} ms at 2 users. DP8 attention at b = 1: "
        f"{dp8['step_ms']:.1f} ms per step.",
        f"- Exposed communication (fraction of iteration time, over 1–512 users): chunked 2×(TP8 EP8) "
        f"{span(runs('chunked 2x(TP8 EP8)'))}; AFD 8+8 attn TP8 m=1 {span(runs('afd 8+8 attn TP8 m=1'))}, "
        f"m=2 {span(runs('afd 8+8 attn TP8 m=2', 2))} from 2 users on (one request is one micro-batch; "
        f"{span(runs('afd 8+8 attn TP8 m=2').loc[:1])} at 1 user); AFD 2×(4+4) attn TP4 m=1 "
        f"{span(runs('afd 2x(4+4) attn TP4 m=1'))}.",
        f"- AFD 8+8 attn TP8 m=2 at 256 users: attention busy {a.attention_busy:.2f}, FFN busy "
        f"{a.ffn_busy:.2f}; (busy_A + busy_F) / (2·max) = {ratio:.2f}; its output tokens/s per GPU over "
        f"chunked 2×(TP8 EP8)'s: {a.output_tok_s_per_gpu:.1f} / {c.output_tok_s_per_gpu:.1f} = "
        f"{a.output_tok_s_per_gpu / c.output_tok_s_per_gpu:.2f}.",
        f"- Users at which a 2×(4+4) run is AFD's best in tokens/s per user: {split}.",
        f"- FFN busy of AFD 12+4 and 2×(4+4) from 64 users on: {span(ffn_side, pct=False)}.",
        f"- 1 user: AFD 8+8 attn TP8 m=1 {one['afd 8+8 attn TP8 m=1']:.1f} tok/s, chunked 2×(TP8 EP8) "
        f"{one['chunked 2x(TP8 EP8)']:.1f}.",
    ]


def render_why(df: pd.DataFrame) -> str:
    table, costs = cost_table()
    return "\n".join([*table, "", *figures(df, costs)])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer concurrency points and layouts (with --out)")
    ap.add_argument("--out", help="run the sweep and write study.csv to this folder (the page is left alone)")
    ap.add_argument("--record", action="store_true",
                    help=f"run the full sweep, record it in {RECORD.relative_to(ROOT)} and render the page")
    ap.add_argument("--check", action="store_true", help="exit 1 when the page is not what the record renders")
    args = ap.parse_args(argv)
    if args.record and args.quick:
        print("study_afd_vs_chunked: --record runs the full sweep; --quick goes with --out", file=sys.stderr)
        return 2
    if args.out or args.record:
        df = sweep(args.quick)
        out = Path(args.out) / "study.csv" if args.out else RECORD
        out.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(out, index=False)
        print()
        print_summary(df)
        if not args.record:
            return 0
    df = pd.read_csv(RECORD)
    rc = update_generated(DOC, BEGIN, END, render(df), args.check)
    rc |= update_generated(DOC, WHY_BEGIN, WHY_END, render_why(df), args.check)
    if args.check and rc:
        print(f"{DOC.relative_to(ROOT)} is stale: python scripts/study_afd_vs_chunked.py", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
