"""Regenerate the micro-batch pricing section of docs/deployments/afd.md (between the
GENERATED markers): the study's headline scenario searched under both
`deployment.micro_batch_cost` values, and the step-time arithmetic of one layout.

    python scripts/gen_afd_pricing_doc.py            # re-render (arithmetic live, search recorded)
    python scripts/gen_afd_pricing_doc.py --search   # re-run both searches (~2 x 50 s), record, render
    python scripts/gen_afd_pricing_doc.py --check    # 0 when the page is current

The searches take about a minute each, so their results are recorded in
docs/deployments/afd_pricing_search.json with the command that produced them; `--check`
re-renders them from that record and recomputes the arithmetic, which runs the simulator's
own AFD iteration (AFDInstance.start on a given batch) and checks the hand-written closed
form against it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from cosim.api import compose_config
from cosim.files import update_generated
from cosim.serving.simulation import prepare
from cosim.timeline import afd_iteration_time

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "deployments" / "afd.md"
RECORD = ROOT / "docs" / "deployments" / "afd_pricing_search.json"
BEGIN = "<!-- GENERATED: scripts/gen_afd_pricing_doc.py -->"
END = "<!-- END GENERATED: gen_afd_pricing_doc -->"
PRICINGS = ("per_microbatch", "linear_split")
SEARCH = ["model=deepseek_v32", "hardware=b200", "topology=dgx_b200_ib", "workload=chat",
          "slo=default", "search.gpus=128", "search.kinds=[afd]"]
PRICING_KEY = "+kind_overrides.afd.micro_batch_cost"
# The layout of the arithmetic: the AFD unit both searches simulated and picked (one unit;
# the units of a deployment are independent). Batches: a chat prefill chunk (about 512 new
# tokens after the 4k shared prefix the prefix cache holds; 513 so that 3 micro-batches are
# equal and the closed form is exact) on one attention-DP rank, and a decode batch of 12
# requests on every rank at the prefill's context.
LAYOUT = ["deployment=afd", "model=deepseek_v32", "hardware=b200", "topology=dgx_b200_ib",
          "topology.num_nodes=5", "deployment.roles.attention.layout.tp=8",
          "deployment.roles.attention.layout.dp=4", "deployment.roles.ffn.layout.ep=8",
          "deployment.micro_batches=3",
          "deployment.roles.attention.scheduler.max_running_requests=512",
          "workload=chat", "workload.num_requests=4", "output.progress=false"]
PREFIX, NEW = 4096, 513
DECODE_PER_RANK = 12


def run_searches() -> dict:
    """Both searches, each in a fresh output folder; the AFD entry of each best.json."""
    out: dict = {"command": "cosim-search " + " ".join(f"'{a}'" if "[" in a else a for a in SEARCH)
                 + f" {PRICING_KEY}=<pricing>", "results": {}}
    for p in PRICINGS:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-c", "from cosim.cli import search_main; search_main()",
                            *SEARCH, f"{PRICING_KEY}={p}", f"hydra.run.dir={tmp}"],
                           check=True, capture_output=True)
            best = json.loads((Path(tmp) / "best.json").read_text())
        afd = best["by_kind"]["afd"]
        keep = ("answer", "layout", "gpus", "users", "tok_s_per_gpu", "tok_s_per_user",
                "attainment", "stops_because", "binding")
        out["results"][p] = {k: afd[k] for k in keep if k in afd}
    return out


class _Probe:
    """An AFD instance whose ranks' batches are given (plan_ranks answered from a list)."""

    __slots__ = ()
    plans: list = []

    def plan_ranks(self, now, plans=None):
        plans.extend(self.plans)
        n = sum(p[0] for p in self.plans)
        pt = sum(p[2] for p in self.plans)
        pr = sum(p[4] for p in self.plans)
        tmax = max(p[0] + p[2] for p in self.plans)
        return 0.0, n, pt, pr, 0, 0, 0, tmax


def iteration(pricing: str, plans: list[tuple[int, int, int, int, int]]) -> dict:
    """Stage times of one AFD iteration of `plans` (one Scheduler.plan tuple per attention-DP
    rank) under `pricing`, by hand, checked against AFDInstance.start."""
    cfg = compose_config([*LAYOUT, f"deployment.micro_batch_cost={pricing}"])
    dep, _, shared = prepare(cfg)
    try:
        inst = dep.instances[0]
        probe = type("Probe", (_Probe, type(inst)), {"__slots__": ()})
        inst.__class__ = probe
        probe.plans = plans
        sim_t = inst.start(0.0)
        cost, afd = inst.cost, inst.afd
        L, dp, tp, m = afd.L, inst.dp, inst.info.layout.tp, inst.m
        m = max(1, min(m, max(p[0] + p[2] for p in plans)))
        if pricing == "linear_split":
            a = max(cost.attention(*p) for p in plans) / m
            tokens = sum(p[0] + p[2] for p in plans)
            f = cost.ffn(-(-tokens // dp)) / m
            tok_k = -(-tokens // m)
        else:  # the first micro-batch, the largest of an even split
            parts = []
            for n, kv, pt, pkv, preq in plans:
                nk = -(-n // m) if n else 0
                ptk = -(-pt // m) if pt else 0
                kvk = round(kv * nk / n) if n else 0
                prk = max(1, -(-preq * ptk // pt)) if ptk else 0
                parts.append((nk, kvk, ptk, pkv if ptk else 0, prk))
            a = max(cost.attention(*p) for p in parts)
            tok_k = sum(p[0] + p[2] for p in parts)
            f = cost.ffn(-(-tok_k // dp))
        per_rank = -(-tok_k // dp)  # tokens of a micro-batch per attention-DP rank
        tok_gpu = afd.traffic.bucket(-(-per_rank // tp))  # per attention GPU (TP ranks share)
        a2f, f2a = afd.traffic.times(tok_gpu)
        # attention TP: each layer ends with its all-reduce (deployment.options.attention_tp_allreduce)
        ar = afd.tp_ar.seconds_per_layer(per_rank) if afd.tp_ar is not None else 0.0
        ta, tf = a / L + ar, f / L
        t = afd_iteration_time(L, m, ta, tf, a2f, f2a)
        if not np.isclose(t, sim_t, rtol=1e-9, atol=0.0):
            raise AssertionError(f"closed form {t} != simulated iteration {sim_t} ({pricing})")
        return {"L": L, "m": m, "ta": ta, "ar": ar, "tf": tf, "a2f": a2f, "f2a": f2a, "t": t, "sim": sim_t,
                "tok_gpu": tok_gpu}
    finally:
        dep.close()
        if shared.get("backend") is not None:
            shared["backend"].close()


def arithmetic() -> list[str]:
    us, ms = 1e6, 1e3
    cases = (
        (f"prefill: one {NEW}-token chunk after a {PREFIX}-token cached prefix, on one of the 4 "
         "attention-DP ranks", [(0, 0, NEW, PREFIX, 1)]),
        (f"decode: {DECODE_PER_RANK} requests on every attention-DP rank at context "
         f"{PREFIX + NEW}", [(DECODE_PER_RANK, DECODE_PER_RANK * (PREFIX + NEW), 0, 0, 0)] * 4),
    )
    lines = ["| batch | pricing | m | t_A (µs) | of which TP all-reduce (µs) | t_A2F (µs) | "
             "t_F (µs) | t_F2A (µs) | iteration T (ms) |", "|---|---|---|---|---|---|---|---|---|"]
    notes = []
    for label, plans in cases:
        got = {}
        for p in PRICINGS:
            r = got[p] = iteration(p, plans)
            lines.append(f"| {label} | `{p}` | {r['m']} | {r['ta'] * us:.1f} | {r['ar'] * us:.1f} | "
                         f"{r['a2f'] * us:.1f} | "
                         f"{r['tf'] * us:.1f} | {r['f2a'] * us:.1f} | {r['t'] * ms:.2f} |")
            s = r["ta"] + r["a2f"] + r["tf"] + r["f2a"]
            tmax = max(r["ta"], r["a2f"], r["tf"], r["f2a"])
            notes.append(f"- {label.split(':')[0]}, `{p}`: S = {s * us:.1f} µs, t_max = "
                         f"{tmax * us:.1f} µs; T = max(S + (L·m − 1)·t_max, L·S + (m − 1)·t_max) = "
                         f"max({s * us:.1f} + {r['L'] * r['m'] - 1}·{tmax * us:.1f}, "
                         f"{r['L']}·{s * us:.1f} + {r['m'] - 1}·{tmax * us:.1f}) µs = "
                         f"{r['t'] * ms:.2f} ms (the simulator's iteration: {r['sim'] * ms:.2f} ms)")
        per, lin = got["per_microbatch"], got["linear_split"]
        m = per["m"]
        notes.append(f"- {label.split(':')[0]}: one micro-batch (1/{m} of the tokens) costs "
                     f"{(per['ta'] - per['ar']) / ((lin['ta'] - lin['ar']) * m):.0%} of the full "
                     f"batch's attention compute ({(lin['ta'] - lin['ar']) * m * us:.1f} µs per "
                     f"layer, TP all-reduce aside) and {per['tf'] / (lin['tf'] * m):.0%} "
                     f"of its FFN stage ({lin['tf'] * m * us:.1f} µs); `linear_split` assumes "
                     f"{1 / m:.0%}; `per_microbatch` / `linear_split` iteration: "
                     f"{per['t'] / lin['t']:.2f}×")
    return [*lines, "", *notes]


def render(record: dict) -> str:
    res = record["results"]
    lines = [f"`{record['command']}` (recorded in `docs/deployments/afd_pricing_search.json`; "
             "rerun with `python scripts/gen_afd_pricing_doc.py --search`):", "",
             "| pricing | answer | layout | tok/s per GPU | tok/s per user | why it stops |",
             "|---|---|---|---|---|---|"]
    for p in PRICINGS:
        r = res[p]
        if r["answer"] == "feasible":
            lines.append(f"| `{p}` | feasible | {r['layout']} | {r['tok_s_per_gpu']:.2f} | "
                         f"{r['tok_s_per_user']:.1f} | {r['stops_because']} |")
        else:
            lines.append(f"| `{p}` | {r['answer']} | | | | {r.get('binding', '')} |")
    lines += ["", "Step-time arithmetic of that layout (one unit: 32 attention GPUs TP8×DP4, "
              "8 FFN GPUs EP8, m = 3; DeepSeek-V3.2, L = 61 layers, B200 tables, analytical "
              "network); per layer and micro-batch, t_A and t_F are the stage totals / L:", "",
              *arithmetic()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if "--search" in argv:
        RECORD.write_text(json.dumps(run_searches(), indent=1) + "\n")
    record = json.loads(RECORD.read_text())
    return update_generated(DOC, BEGIN, END, render(record), "--check" in argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
