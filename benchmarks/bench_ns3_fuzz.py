"""A long seeded fuzz run against `cosim-ns3-server` over loopback (issue 11's longer run).

    python benchmarks/bench_ns3_fuzz.py [--messages 10000] [--seed 7] [--every 10]
    python benchmarks/bench_ns3_fuzz.py --check      # docs/ns3.md shows the recorded run

Starts a local server (as `network=ns3` does), loads a 16-GPU DGX H100 + IB fabric, and sends
`--messages` adversarial messages cycling through every family of cosim.network.ns3.fuzz.
After every `--every` messages a fixed valid batch is sent again and its finish times are
compared bit for bit with the first answer. Counts: replies that should have been errors
and were not, crashes (the server's pid changed or it stopped answering), hangs (no answer
within 30 s), wrong answers to the valid batch, and the server's resident memory (ping's
rss_bytes) at the start and the end. The result is written to
benchmarks/results/ns3_fuzz.json and rendered into docs/ns3.md between GENERATED markers
(`--check`: the page matches that file; the test suite runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from cosim.files import update_generated

ROOT = Path(__file__).resolve().parents[1]
RESULT = ROOT / "benchmarks" / "results" / "ns3_fuzz.json"
DOC = ROOT / "docs" / "ns3.md"
BEGIN = "<!-- GENERATED: benchmarks/bench_ns3_fuzz.py -->"
END = "<!-- END GENERATED: bench_ns3_fuzz -->"
TOPOLOGY, GPUS = "dgx_h100_ib", 16
ANSWER_S = 30.0  # a reply later than this counts as a hang


def run(messages: int, seed: int, every: int) -> dict:
    from cosim.config.topology_files import get_topology
    from cosim.network.ns3 import fuzz
    from cosim.network.ns3.client import Ns3Backend
    from cosim.network.topology import build_fabric

    graph = build_fabric(get_topology(TOPOLOGY, num_gpus=GPUS))
    ctx = fuzz.context_of(graph)
    out = {"messages": messages, "seed": seed, "every": every, "topology": TOPOLOGY,
           "gpus": GPUS, "families": len(fuzz.FAMILIES), "crashes": 0, "hangs": 0,
           "accepted_invalid": 0, "wrong_answers": 0, "valid_checks": 0, "reloads": 0,
           "rss_mb_every_1000": []}
    t0 = time.perf_counter()
    with Ns3Backend(graph, {"max_batch_flows": 1000}) as backend:
        first = backend.ping()[0]
        pid, out["rss_start_mb"] = first["pid"], first["rss_bytes"] / 2**20
        peer = fuzz.Peer(backend._endpoints[0].address)

        def exchange(frames):
            return peer.exchange(frames, ANSWER_S)

        try:
            exchange(fuzz.load_topology(ctx))
            probe = fuzz.valid_simulate(ctx, np.random.default_rng(5), rid="probe")
            want = exchange(probe).arrays["finish_s"].tobytes()
            for i, (_, must_fail, frames) in enumerate(fuzz.messages(ctx, seed, messages)):
                if frames:
                    reply = exchange(frames)
                    if reply is None:
                        out["hangs"] += 1
                        break
                    out["accepted_invalid"] += int(must_fail and bool(reply.header["ok"]))
                if i % 1000 == 999:  # the server's memory along the run
                    out["rss_mb_every_1000"].append(round(backend.ping()[0]["rss_bytes"] / 2**20, 1))
                if i % every == 0:
                    again = exchange(probe)
                    if again is not None and "unknown topology" in str(again.header.get("error")):
                        exchange(fuzz.load_topology(ctx))  # mutated topologies evicted ours
                        out["reloads"] += 1
                        again = exchange(probe)
                    if again is None:
                        out["hangs"] += 1
                        break
                    out["valid_checks"] += 1
                    ok = again.header["ok"] and again.arrays["finish_s"].tobytes() == want
                    out["wrong_answers"] += int(not ok)
            last = backend.ping()[0]
            out["crashes"] = int(last["pid"] != pid)
            out["rss_end_mb"] = last["rss_bytes"] / 2**20
            out["batches"] = last["batches"]
        finally:
            peer.close()
    out["wall_s"] = time.perf_counter() - t0
    return out


def render(r: dict) -> str:
    return "\n".join([
        f"`python benchmarks/bench_ns3_fuzz.py` sent {r['messages']:,} adversarial messages "
        f"(seed {r['seed']}, cycling through all {r['families']} families of "
        f"`cosim.network.ns3.fuzz`) to one local server holding a {r['gpus']}-GPU "
        f"`{r['topology']}` fabric, with the same valid batch after every {r['every']} "
        f"messages ({r['valid_checks']:,} checks) in {r['wall_s']:.0f} s:", "",
        "| crashes | hangs | invalid messages accepted | valid answers not bit-identical | "
        "topology reloads (LRU evictions by mutated loads) | server RSS start → end (MB) |",
        "|---|---|---|---|---|---|",
        f"| {r['crashes']} | {r['hangs']} | {r['accepted_invalid']} | {r['wrong_answers']} | "
        f"{r['reloads']} | {r['rss_start_mb']:.1f} → {r['rss_end_mb']:.1f} |", "",
        "Server RSS after each 1,000 messages (MB): "
        + ", ".join(f"{v:.1f}" for v in r["rss_mb_every_1000"]) + "."])


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--check", action="store_true", help="docs/ns3.md shows the recorded run")
    a = ap.parse_args(argv)
    if not a.check:
        r = run(a.messages, a.seed, a.every)
        RESULT.parent.mkdir(parents=True, exist_ok=True)
        RESULT.write_text(json.dumps(r, indent=1) + "\n")
        print(json.dumps(r, indent=1))
    return update_generated(DOC, BEGIN, END, render(json.loads(RESULT.read_text())), a.check)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
