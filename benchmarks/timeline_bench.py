"""Timeline speed and network fixed-point convergence (figures for docs/timeline.md).

    python benchmarks/timeline_bench.py

Not a test: prints the schedule time of a DeepSeek-sized AFD iteration (61 layers x m
micro-batches) and, on the analytical backend, how many rounds `network.mode=iteration`
takes to reach its fixed point on a few AFD and EP examples.
"""

from __future__ import annotations

import time

import numpy as np

from cosim.config.topology_files import get_topology
from cosim.network.analytical import AnalyticalBackend
from cosim.network.flows import FlowBatch
from cosim.network.topology import build_fabric
from cosim.timeline import afd_pipeline, ep_pipeline, schedule, schedule_pipeline
from cosim.timeline.network_coupling import time_transfers

US = 1e-6
HIDDEN = 7168


def per_call_us(fn, n: int = 300) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n / US


def speed() -> None:
    print("schedule speed (61 layers, AFD stages, per call):")
    for m in (1, 2, 4, 8):
        p = afd_pipeline(61, m, 100 * US, 30 * US, 120 * US, 40 * US)
        g = p.graph()
        fast = per_call_us(lambda p=p: schedule_pipeline(p))
        generic = per_call_us(lambda g=g: schedule(g))
        built = per_call_us(lambda m=m: schedule_pipeline(afd_pipeline(61, m, 1e-4, 3e-5, 1.2e-4, 4e-5)))
        print(f"  m={m}: tasks={len(g):5d}  schedule_pipeline {fast:7.1f} us"
              f"  generic list schedule {generic:7.1f} us  build+schedule {built:7.1f} us")


def m_to_n(src, dst, nbytes) -> FlowBatch:
    s, d = np.repeat(src, len(dst)), np.tile(dst, len(src))
    return FlowBatch.from_arrays(s, d, np.full(len(s), int(nbytes)))


def all_to_all(gpus, nbytes) -> FlowBatch:
    s, d = np.repeat(gpus, len(gpus)), np.tile(gpus, len(gpus))
    keep = s != d
    return FlowBatch.from_arrays(s[keep], d[keep], np.full(int(keep.sum()), int(nbytes)))


def convergence() -> None:
    be = AnalyticalBackend(build_fabric(get_topology("dgx_b200_ib", num_nodes=2)))
    att, ffn = np.arange(8), np.arange(8, 16)
    print("network.mode=iteration fixed point (analytical backend, dgx_b200_ib, 2 nodes):")
    for tokens, t_comp, m in ((64, 150 * US, 3), (64, 60 * US, 3), (256, 150 * US, 4)):
        a2f = m_to_n(att, ffn, tokens * HIDDEN)
        f2a = m_to_n(ffn, att, tokens * HIDDEN * 2)
        p = afd_pipeline(61, m, t_comp, 0.0, t_comp, 0.0, traffic_a2f=0, traffic_f2a=1)
        ph = time_transfers(p, [a2f, f2a], be, mode="phase")
        for bg_mb in (0, 200):
            bg = FlowBatch.from_arrays(att, ffn, np.full(8, bg_mb * 1_000_000)) if bg_mb else None
            t0 = time.perf_counter()
            it = time_transfers(p, [a2f, f2a], be, mode="iteration", background=bg)
            wall = time.perf_counter() - t0
            print(f"  AFD tokens/GPU={tokens:4d} t_comp={t_comp / US:5.0f}us m={m} KV background={bg_mb:3d} MB:"
                  f" phase {ph.schedule.makespan * 1e3:7.3f} ms, iteration {it.schedule.makespan * 1e3:7.3f} ms,"
                  f" rounds={it.rounds} converged={it.converged} flows/round={len(it.flows)} wall={wall:.2f}s")
    gpus = np.arange(16)
    for tokens in (128, 512):
        disp = all_to_all(gpus, tokens * HIDDEN // 16)
        comb = all_to_all(gpus, tokens * HIDDEN * 2 // 16)
        p = ep_pipeline(61, 2, 80 * US, 0.0, 90 * US, 0.0, traffic_dispatch=0, traffic_combine=1)
        ph = time_transfers(p, [disp, comb], be, mode="phase")
        bg = FlowBatch.from_arrays(np.arange(8), np.arange(8, 16), np.full(8, 100_000_000))
        t0 = time.perf_counter()
        it = time_transfers(p, [disp, comb], be, mode="iteration", background=bg)
        wall = time.perf_counter() - t0
        print(f"  EP16 TBO tokens/GPU={tokens:4d} + 100 MB KV background: phase {ph.schedule.makespan * 1e3:7.3f} ms,"
              f" iteration {it.schedule.makespan * 1e3:7.3f} ms, rounds={it.rounds} converged={it.converged}"
              f" wall={wall:.2f}s")


if __name__ == "__main__":
    speed()
    convergence()
