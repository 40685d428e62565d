"""Seed-study trade-off at small scale: AFD vs chunked on DeepSeek-V3.2, same GPUs (16 B200).

    python scripts/study_afd_vs_chunked.py [--quick] [--out DIR]

Sweeps closed-loop concurrency (users) for a few chunked layouts (2 x EP8 replicas with DP8
or TP8 attention, one EP16 replica) and AFD units (8 attention + 8 FFN GPUs, attention DP8 or
TP8, 1-3 micro-batches) on the chat workload, with the analytical network backend. Prints,
per deployment kind, the best tokens/s per user among runs meeting a strict TPOT objective
(p90 <= 15 ms) and the best output tokens/s per GPU under a loose one (p90 <= 50 ms), and
writes every run to study.csv. docs/deployments/afd.md discusses the result.
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

CHUNKED = {
    "chunked 2x(DP8 EP8)": ["deployment=chunked", "deployment.replicas=2"],
    "chunked 2x(TP8 EP8)": ["deployment=chunked", "deployment.replicas=2", "deployment.layout.tp=8",
                            "deployment.layout.dp=1"],
    "chunked 1x(DP16 EP16)": ["deployment=chunked", "deployment.layout.dp=16", "deployment.layout.ep=16"],
}
AFD = {
    f"afd 8+8 attn {att} m={m}": ["deployment=afd", f"deployment.micro_batches={m}",
                                  *(["deployment.roles.attention.layout.tp=8",
                                     "deployment.roles.attention.layout.dp=1"] if att == "TP8" else [])]
    for att in ("DP8", "TP8") for m in (1, 2, 3)
}


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
    users = [4, 16, 64, 256] if args.quick else [2, 4, 8, 16, 32, 64, 128, 256]
    candidates = {**CHUNKED, **AFD}
    if args.quick:
        candidates = {k: v for k, v in candidates.items() if "m=1" not in k and "DP16" not in k}
    common = ["model=deepseek_v32", "hardware=b200", "topology=dgx_b200_ib", "network=analytical",
              "workload=chat", "workload.arrival.process=closed_loop", "workload.arrival.think_time_s=0"]
    rows = []
    for name, dep in candidates.items():
        for u in users:
            t0 = time.perf_counter()
            r = run([*dep, *common, f"workload.arrival.users={u}", f"workload.num_requests={max(4 * u, 32)}"])
            r.update(config=name, kind=name.split()[0], users=u, wall_s=time.perf_counter() - t0)
            rows.append(r)
            print(f"{name:28s} users={u:4d} tok/s/user={r['tok_s_per_user_mean'] or 0:6.1f} "
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


if __name__ == "__main__":
    main()
