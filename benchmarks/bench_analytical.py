"""Analytical backend speed and cache-grid error (a benchmark, not a test).

    python benchmarks/bench_analytical.py            # all sections
    python benchmarks/bench_analytical.py --quick    # smaller sizes

Prints markdown tables: solve time vs flow count (uniform and random-size all-to-all, EP
dispatch with node dedup), rtol=0 (exact) vs the default rtol=0.01, and the error the
cache's size grid costs (bucketed vs exact sizes over random batches).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from cosim.config.topology_files import get_topology
from cosim.network.analytical import AnalyticalBackend
from cosim.network.cache import bucket_sizes
from cosim.network.flows import FlowBatch
from cosim.network.topology import build_fabric
from cosim.traffic.all_to_all import all_to_all_flows
from cosim.traffic.ep_alltoall import ep_flows


def best_of(fn, repeat: int) -> tuple[float, object]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def random_a2a(gpus: int, seed: int) -> FlowBatch:
    base = all_to_all_flows(np.arange(gpus), 1)
    sizes = np.random.default_rng(seed).integers(1 << 16, 1 << 21, len(base))
    return FlowBatch.from_arrays(base.src, base.dst, sizes)


def speed(quick: bool) -> None:
    print("## Solve time vs flow count (dgx_h800_ib, best of 3, wall ms)\n")
    print("| batch | GPUs | flows | rtol | events | solve ms | makespan us |")
    print("|---|---|---|---|---|---|---|")
    sizes = (16, 32, 64) if quick else (16, 32, 64, 128)
    for gpus in sizes:
        graph = build_fabric(get_topology("dgx_h800_ib", num_gpus=gpus))
        cases = [("uniform a2a 1 MiB", all_to_all_flows(np.arange(gpus), 1 << 20)),
                 ("random-size a2a", random_a2a(gpus, 0)),
                 ("EP dispatch, node dedup", ep_flows(4096, 7168, 8, 256, np.arange(gpus), 8,
                                                      num_groups=max(1, gpus // 8),
                                                      topk_groups=min(4, max(1, gpus // 8))))]
        for label, flows in cases:
            for rtol in (0.0, 0.01):
                if rtol == 0.0 and len(flows) > (1200 if quick else 4100) and label != cases[0][0]:
                    continue  # exact event-by-event on thousands of sizes takes tens of seconds
                be = AnalyticalBackend(graph, rtol=rtol)
                t, r = best_of(lambda be=be, flows=flows: be.simulate(flows),
                               1 if len(flows) > 2000 and rtol == 0 else 3)
                print(f"| {label} | {gpus} | {len(flows)} | {rtol:g} | {r.stats['events']} | "
                      f"{t * 1e3:.1f} | {r.makespan * 1e6:.1f} |")
    print()


def grid_error(quick: bool) -> None:
    print("## Cache grid error: makespan and per-flow finish, bucketed vs exact sizes\n")
    print("| grid % | batches | makespan err mean | makespan err max | flow err p99 | flow err max |")
    print("|---|---|---|---|---|---|")
    graph = build_fabric(get_topology("dgx_h800_ib", num_nodes=2))
    be = AnalyticalBackend(graph, rtol=0.0)  # exact solver: the error is the grid's alone
    n_batches = 10 if quick else 40
    rng = np.random.default_rng(0)
    batches = []
    for _ in range(n_batches):
        n = int(rng.integers(20, 200))
        src = rng.integers(0, 16, n)
        dst = (src + rng.integers(1, 16, n)) % 16
        batches.append(FlowBatch.from_arrays(src, dst, rng.integers(1_000, 8_000_000, n),
                                             start=rng.uniform(0, 50e-6, n)))
    exact = [be.simulate(b) for b in batches]
    for pct in (1.0, 2.0, 5.0):
        mk, fl = [], []
        for b, ex in zip(batches, exact, strict=True):
            rb = FlowBatch(b.src, b.dst, bucket_sizes(b.size, pct), b.start, b.tag)
            r = be.simulate(rb)
            mk.append(r.makespan / ex.makespan - 1)
            fl.append((r.finish - b.start) / (ex.finish - b.start) - 1)
        fl = np.concatenate(fl)
        print(f"| {pct:g} | {n_batches} | {np.mean(mk) * 100:+.2f} % | {np.max(mk) * 100:+.2f} % | "
              f"{np.percentile(fl, 99) * 100:+.2f} % | {np.max(fl) * 100:+.2f} % |")
    print()


def rtol_error(quick: bool) -> None:
    print("## Solver rtol error: rtol=0.01 vs exact (random-size all-to-all)\n")
    print("| GPUs | flows | makespan err | flow err min | flow err max | mean abs |")
    print("|---|---|---|---|---|---|")
    for gpus in (16, 32) if quick else (16, 32, 64):
        graph = build_fabric(get_topology("dgx_h800_ib", num_gpus=gpus))
        flows = random_a2a(gpus, 1)
        ex = AnalyticalBackend(graph, rtol=0.0).simulate(flows)
        ap = AnalyticalBackend(graph, rtol=0.01).simulate(flows)
        err = ap.finish / ex.finish - 1
        print(f"| {gpus} | {len(flows)} | {(ap.makespan / ex.makespan - 1) * 100:+.2f} % | "
              f"{err.min() * 100:+.2f} % | {err.max() * 100:+.2f} % | "
              f"{np.abs(err).mean() * 100:.2f} % |")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--section", choices=("speed", "grid", "rtol", "all"), default="all")
    args = ap.parse_args()
    if args.section in ("speed", "all"):
        speed(args.quick)
    if args.section in ("grid", "all"):
        grid_error(args.quick)
    if args.section in ("rtol", "all"):
        rtol_error(args.quick)


if __name__ == "__main__":
    main()
