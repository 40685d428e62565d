"""Speed of the serving DES at 128 GPUs: simulated seconds per wall second, events per second.

Cases (DeepSeek-V3.2 on B200, DGX B200 + InfiniBand fabric, 16 nodes, chat workload,
Poisson arrivals, analytical network behind a result cache):

- afd 8x(8+8):  8 AFD units of DP8 attention + EP8 FFN, 3 micro-batches;
- afd 1x(64+64): one AFD unit of DP64 attention + EP64 FFN;
- chunked 16x8: 16 chunked replicas of DP8 attention + EP8 experts.

Each case is prepared (config, workload, compute tables: a one-off cost of any run, not
the engine's), then the event loop runs once with a cold network cache (a fresh sqlite
file: every distinct transfer pattern is solved by the analytical flow model) and once
more, freshly prepared, with that cache warm (as every run of a sweep after the first).
"simulated/wall" is the simulated time over the event loop's wall time. Run on one core:

    taskset -c 0 python benchmarks/bench_des.py [--requests 3000] [--rate 200] [--profile CASE]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import tempfile
import time
from pathlib import Path

CASES: dict[str, list[str]] = {
    "afd 8x(8+8)": ["deployment=afd", "deployment.roles.attention.count=8",
                    "deployment.roles.ffn.count=8"],
    "afd 1x(64+64)": ["deployment=afd", "deployment.roles.attention.layout.dp=64",
                      "deployment.roles.ffn.layout.ep=64"],
    "chunked 16x8": ["deployment=chunked", "deployment.replicas=16"],
}


def overrides(case: str, requests: int, rate: float, cache: str) -> list[str]:
    return [*CASES[case], "model=deepseek_v32", "hardware=b200", "topology=dgx_b200_ib",
            "topology.num_nodes=16", "workload=chat", f"workload.num_requests={requests}",
            f"workload.arrival.rate_per_s={rate}", "network=analytical",
            f"network.cache.path={cache}", "output.progress=false"]


def run_case(case: str, requests: int, rate: float, cache: str,
             profile: bool = False) -> dict:
    from cosim.api import compose_config
    from cosim.serving.engine import Engine
    from cosim.serving.events import RequestArrival
    from cosim.serving.simulation import prepare

    cfg = compose_config(overrides(case, requests, rate, cache))
    t0 = time.perf_counter()
    dep, ctx, shared = prepare(cfg)
    t_prepare = time.perf_counter() - t0
    try:
        eng = Engine()
        times, rids = ctx.driver.initial()
        for t, rid in zip(times.tolist(), rids.tolist(), strict=True):
            eng.schedule(t, RequestArrival(dep, rid))
        prof = cProfile.Profile() if profile else None
        if prof:
            prof.enable()
        t1 = time.perf_counter()
        eng.run()
        wall = time.perf_counter() - t1
        if prof:
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(30)
        lookups = shared["lookups"].summary()
    finally:
        dep.close()
        if shared.get("backend") is not None:
            shared["backend"].close()
    iters = sum(len(i.rows) for i in dep.instances)
    return {"case": case, "simulated_s": eng.now, "wall_s": wall, "prepare_s": t_prepare,
            "events": eng.events_handled, "iterations": iters,
            "completed": ctx.state.completed,
            "misses": lookups.get("network_cache_misses", 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--rate", type=float, default=200.0, help="Poisson arrivals per second")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    ap.add_argument("--profile", default="", help="cProfile this case's warm run, print the top 30")
    args = ap.parse_args()

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"serving DES at 128 GPUs: chat, {args.requests} requests, "
                        f"Poisson {args.rate:g}/s, analytical network")
    for col in ("case", "cache", "simulated s", "wall s", "simulated/wall", "events/s",
                "iterations/s", "µs/iteration", "solves", "prepare s"):
        table.add_column(col, justify="left" if col in ("case", "cache") else "right")
    with tempfile.TemporaryDirectory() as tmp:
        for case in [c.strip() for c in args.cases.split(",") if c.strip()]:
            cache = str(Path(tmp) / f"{abs(hash(case))}.sqlite")
            for warm in (False, True):
                r = run_case(case, args.requests, args.rate, cache,
                             profile=warm and args.profile == case)
                table.add_row(case, "warm" if warm else "cold", f"{r['simulated_s']:.1f}",
                              f"{r['wall_s']:.3f}", f"{r['simulated_s'] / r['wall_s']:.0f}×",
                              f"{r['events'] / r['wall_s']:,.0f}",
                              f"{r['iterations'] / r['wall_s']:,.0f}",
                              f"{r['wall_s'] / max(r['iterations'], 1) * 1e6:.0f}",
                              str(r["misses"]), f"{r['prepare_s']:.2f}")
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
