"""Speed of the serving engine: simulated output tokens per wall second.

Decode-heavy workload (fixed ISL 1024 / OSL 4096, closed loop) on 16 chunked replicas of
DeepSeek-V3.2 on B200 (EP8 + DP8 attention each, 128 GPUs), alpha-beta communication
(`--network analytical`: the EP all-to-all timed by the analytical flow model behind the
result cache, `--cache PATH` for its sqlite file). Reports simulated output tokens per wall
second of the event loop (the compute model's tables are loaded by the first cost lookups
inside it) and the network lookups by what answered them. Run on one core:

    taskset -c 0 python benchmarks/bench_serving.py [--users-per-rank 8] [--requests N] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time


def overrides(requests: int, replicas: int, users_per_rank: int, network: str = "alpha_beta",
              cache: str = "") -> list[str]:
    users = replicas * 8 * users_per_rank
    if network == "alpha_beta":
        net = ["network=analytical", "deployment.comm.model=alpha_beta"]
    else:
        net = ["network=analytical", "deployment.comm.model=fabric"]
        if cache:
            net.append(f"network.cache.path={cache}")
    return [
        "deployment=chunked", f"deployment.replicas={replicas}",
        "deployment.scheduler.max_running_requests=64",
        "workload=fixed", "workload.input_tokens.mean=1024", "workload.output_tokens.mean=4096",
        f"workload.num_requests={requests}", "workload.arrival.process=closed_loop",
        f"workload.arrival.users={users}", *net,
        f"topology.num_nodes={replicas}", "output.progress=false",
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=8192)
    ap.add_argument("--replicas", type=int, default=16)
    ap.add_argument("--users-per-rank", type=int, default=8)  # decode batch 64 per replica
    ap.add_argument("--profile", action="store_true", help="cProfile the run, print the top 25")
    ap.add_argument("--network", choices=("alpha_beta", "analytical"), default="alpha_beta")
    ap.add_argument("--cache", default="", help="network result cache (sqlite) path")
    args = ap.parse_args()

    from cosim.api import compose_config
    from cosim.serving.engine import Engine
    from cosim.serving.events import RequestArrival
    from cosim.serving.simulation import prepare

    cfg = compose_config(overrides(args.requests, args.replicas, args.users_per_rank,
                                   args.network, args.cache))
    # Warm the compute model's tables (a one-off cost of any run, not the engine's).
    t0 = time.perf_counter()
    dep, ctx, shared = prepare(cfg)
    t_prepare = time.perf_counter() - t0

    def run() -> float:
        eng = Engine()
        times, rids = ctx.driver.initial()
        for t, rid in zip(times.tolist(), rids.tolist(), strict=True):
            eng.schedule(t, RequestArrival(dep, rid))
        t1 = time.perf_counter()
        eng.run()
        return time.perf_counter() - t1

    prof = cProfile.Profile() if args.profile else None
    if prof:
        prof.enable()
    wall = run()
    if prof:
        prof.disable()
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    out_tokens = int(sum(ctx.state.generated))
    iters = sum(len(i.rows) for i in dep.instances)
    print(json.dumps({
        "replicas": args.replicas, "requests": args.requests,
        "completed": ctx.state.completed, "output_tokens": out_tokens, "iterations": iters,
        "prepare_s": round(t_prepare, 3), "engine_wall_s": round(wall, 3),
        "output_tok_per_wall_s": round(out_tokens / wall),
        "us_per_iteration": round(wall / max(iters, 1) * 1e6, 2),
        "cost_entries": sum(c.stats()["cost_entries"] for c in dep.cost_models()),
        "network": args.network, **shared["lookups"].summary(),
    }, indent=1))
    if shared.get("backend") is not None:
        shared["backend"].close()


if __name__ == "__main__":
    main()
