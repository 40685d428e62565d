"""The ns-3 server survives adversarial messages (cosim.network.ns3.fuzz families).

The first test needs no ns-3: every protocol-breaking family goes through the server's
request handler in-process and must get an error reply (validation runs before ns-3 is
touched). The ns3-marked test sends a few thousand messages over loopback to a real server,
interleaved with valid batches whose answers must stay bit-identical.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ns3_graphs import tree  # noqa: E402

from cosim.network.ns3 import fuzz, wire  # noqa: E402
from cosim.network.ns3.server.main import Server  # noqa: E402

MAX_FLOWS = 1000


def _reply(frames) -> wire.Message:
    out = [bytes(f) for f in frames]
    assert len(out[0]) <= wire.MAX_HEADER_BYTES
    return wire.decode(out, reply=True)


class _Unbuilt:
    """Stands in for a built fabric: a message that got past validation would reach it."""

    def run(self, spec):
        raise AssertionError("a must-fail message passed validation")


def test_every_family_is_answered_with_an_error_in_process():
    ctx = fuzz.context_of(tree(leaves=2, per_leaf=2))
    server = Server(max_flows=MAX_FLOWS, max_packets=10**6)
    spec = wire.check_topology(wire.decode(fuzz.load_topology(ctx)))
    server.fabrics[ctx.digest], server.specs[ctx.digest] = _Unbuilt(), spec
    names = [n for n, (_, must_fail) in fuzz.FAMILIES.items() if must_fail]
    assert len(fuzz.FAMILIES) >= 40
    seen = set()
    for name, _, frames in fuzz.messages(ctx, seed=11, count=20 * len(names), families=names):
        reply = _reply(server.handle(frames))
        assert reply.header["ok"] is False, name
        assert reply.header["error"].startswith("bad request"), (name, reply.header["error"])
        seen.add(name)
    assert seen == set(names)


def test_error_reply_always_fits_and_echoes_only_a_short_id():
    out = _reply(wire.reply_error("é" * 20_000, "x" * 100_000))
    assert out.header["id"] is None and len(out.header["error"]) == wire.MAX_REPLY_ERROR_CHARS
    assert wire.request_id_of([('{"id":' + "9" * 5000 + "}").encode()]) is None
    assert wire.json_depth('{"a": "[[[[", "b": [[{}]]}') == 4


@pytest.mark.ns3
def test_server_survives_a_seeded_fuzz_run_over_loopback():
    from cosim.network.ns3.client import Ns3Backend

    graph = tree(leaves=2, per_leaf=2)
    ctx = fuzz.context_of(graph)
    with Ns3Backend(graph, {"max_batch_flows": MAX_FLOWS}) as backend:
        pid = backend.ping()[0]["pid"]
        peer = fuzz.Peer(backend._endpoints[0].address)

        def exchange(frames):
            reply = peer.exchange(frames)
            assert reply is not None, "server did not answer"
            return reply

        try:
            assert exchange(fuzz.load_topology(ctx)).header["ok"]
            probe = fuzz.valid_simulate(ctx, np.random.default_rng(5), rid="probe")
            ref = exchange(probe)
            assert ref.header["ok"], ref.header
            want = ref.arrays["finish_s"].tobytes()
            reloads = 0
            for i, (name, must_fail, frames) in enumerate(fuzz.messages(ctx, 3, 2000)):
                reply = exchange(frames) if frames else None
                if frames:
                    assert not (must_fail and reply.header["ok"]), name
                if i % 10 == 0:
                    again = exchange(probe)
                    if "unknown topology" in str(again.header.get("error")):
                        # mutated topologies pushed ours out of the server's LRU: reload
                        assert exchange(fuzz.load_topology(ctx)).header["ok"]
                        reloads += 1
                        again = exchange(probe)
                    assert again.header["ok"], (name, again.header.get("error"))
                    assert again.arrays["finish_s"].tobytes() == want, name
            assert backend.ping()[0]["pid"] == pid
        finally:
            peer.close()


def test_docs_show_the_recorded_long_fuzz_run():
    """docs/ns3.md's long-run table is what benchmarks/results/ns3_fuzz.json (written by
    benchmarks/bench_ns3_fuzz.py) says, and that run found nothing."""
    import importlib.util
    import json

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("bench_ns3_fuzz",
                                                  root / "benchmarks" / "bench_ns3_fuzz.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--check"]) == 0, "docs/ns3.md is stale: python benchmarks/bench_ns3_fuzz.py"
    r = json.loads(mod.RESULT.read_text())
    assert r["messages"] >= 10_000 and r["families"] >= 40
    assert r["crashes"] == r["hangs"] == r["accepted_invalid"] == r["wrong_answers"] == 0
