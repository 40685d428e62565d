"""Seed-study trade-off at small scale: AFD vs chunked on DeepSeek-V3.2, same GPUs (16 B200).

    python scripts/study_afd_vs_chunked.py [--quick] [--out DIR]

Sweeps closed-loop concurrency (users) for a few chunked layouts (2 x EP8 replicas with DP8,
TP4 x DP2 or TP8 attention; one EP16 replica with DP16 or TP8 x DP2 attention) and AFD
deployments (one unit of 8 attention + 8 FFN GPUs, attention DP8, TP4 x DP2 or TP8; two units
of 4 + 4, one per server; one unit of 12 + 4; 1-3 micro-batches) on the chat workload, with
the analytical network backend; every attention group admits 64 running requests per GPU
(RUNNING_PER_GPU). Prints, per deployment kind, the best tokens/s per user among runs meeting
a strict TPOT objective (p90 <= 15 ms), the best output tokens/s per GPU under a loose one
(p90 <= 50 ms) and the frontier of the best tokens/s per GPU under FRONTIER_TPOT_MS, and writes
every run to study.csv. docs/deployments/afd.md discusses the result.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from hydra import compose, initialize_config_dir

from cosim.config import register_configs, to_object
from cosim.paths import hydra_config_dir
from cosim.serving.simulation import run_simulation

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer concurrency points and layouts")
    ap.add_argument("--out", default=".", help="folder for study.csv")
    args = ap.parse_args()
    users = [2, 16, 64, 256] if args.quick else [1, 2, 4, 8, 16, 32, 64, 96, 128, 192, 256, 384, 512]
    candidates = {**CHUNKED, **AFD}
    if args.quick:
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
    df = pd.DataFrame(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    df.to_csv(out / "study.csv", index=False)
    print()
    for kind in ("chunked", "afd"):
        d = df[(df.kind == kind) & df.feasible.astype(bool)]
        strict = d[d.tpot_ms_p90 <= STRICT_TPOT_MS]
        loose = d[d.tpot_ms_p90 <= LOOSE_TPOT_MS]
        if len(strict):
            b = strict.loc[strict.tok_s_per_user_mean.idxmax()]
            print(f"{kind:8s} strict TPOT p90 <= {STRICT_TPOT_MS:.0f} ms: best {b.tok_s_per_user_mean:.1f} tok/s "
                  f"per user ({b.config}, {b.users} users, {b.output_tok_s_per_gpu:.1f} tok/s/GPU)")
        else:
            print(f"{kind:8s} strict TPOT p90 <= {STRICT_TPOT_MS:.0f} ms: no run meets it "
                  f"(lowest p90 {d.tpot_ms_p90.min():.2f} ms)")
        if len(loose):
            b = loose.loc[loose.output_tok_s_per_gpu.idxmax()]
            print(f"{kind:8s} loose TPOT p90 <= {LOOSE_TPOT_MS:.0f} ms: best {b.output_tok_s_per_gpu:.1f} "
                  f"tok/s per GPU ({b.config}, {b.users} users, {b.tok_s_per_user_mean:.1f} tok/s/user)")
    print("\nbest output tok/s per GPU [tok/s per user] under TPOT p90 <= X ms:")
    ok = df[df.feasible.astype(bool)]
    for slo in FRONTIER_TPOT_MS:
        cells = []
        for kind in ("chunked", "afd"):
            d = ok[(ok.kind == kind) & (ok.tpot_ms_p90 <= slo)]
            if len(d):
                b = d.loc[d.output_tok_s_per_gpu.idxmax()]
                cells.append(f"{kind} {b.output_tok_s_per_gpu:6.1f} [{b.tok_s_per_user_mean:5.1f}] "
                             f"({b.config}, {b.users} users)")
            else:
                cells.append(f"{kind} none")
        print(f"  X={slo:5.0f}: " + " | ".join(cells))


if __name__ == "__main__":
    main()
