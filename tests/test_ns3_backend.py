"""ns-3 backend end to end: a real cosim-ns3-server process over ZeroMQ.

One server serves the whole module (module fixture); the restart and orphan tests start
their own, because killing servers is what they test.
"""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ns3_graphs import tree  # noqa: E402

from cosim.network.flows import FlowBatch  # noqa: E402
from cosim.network.ns3 import wire  # noqa: E402

pytestmark = pytest.mark.ns3
pytest.importorskip("ns3", reason="the ns3 wheel (Linux x86-64) is not installed")
zmq = pytest.importorskip("zmq")

from cosim.network.ns3.client import Ns3Backend, Ns3Error  # noqa: E402

MAX_FLOWS = 1000


@pytest.fixture(scope="module")
def backend():
    b = Ns3Backend(tree(leaves=2, per_leaf=2), {"max_batch_flows": MAX_FLOWS})
    yield b
    b.close()


@pytest.fixture(scope="module")
def raw(backend):
    """A raw DEALER socket on the module's server, for hand-made (malformed) messages."""
    backend.ping()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(backend._endpoints[0].address)
    yield sock
    sock.close()
    ctx.term()


def _exchange(sock, frames, timeout_s=30.0) -> wire.Message:
    sock.send_multipart(frames)
    assert sock.poll(int(timeout_s * 1000)), "server did not answer"
    return wire.decode(sock.recv_multipart(), reply=True)


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie (exited, not yet reaped by a parent that is not us) counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] == "Z"
    except (OSError, IndexError):
        return True


def test_two_flows_on_one_link_each_get_half(backend):
    size = 8_000_000
    r = backend.simulate(FlowBatch.from_arrays([0, 1], [2, 2], [size, size]))
    line = 100e9
    for finish in r.finish:
        rate = size * 8 / finish
        assert rate == pytest.approx(line / 2, rel=0.05)
    assert r.stats["packet_hops"] > 0 and r.stats["events"] > 0


def test_completion_never_precedes_the_bandwidth_bound(backend):
    rng = np.random.default_rng(7)
    n = 40
    src = rng.integers(0, 4, n)
    dst = (src + rng.integers(1, 4, n)) % 4
    size = rng.integers(1, 3_000_000, n)
    start = rng.uniform(0, 200e-6, n)
    flows = FlowBatch.from_arrays(src, dst, size, start)
    r = backend.simulate(flows)
    g = backend.graph
    indptr, links = g.routes(flows.src, flows.dst)
    cap = g.link_capacity_bps
    for i in range(n):
        path = links[indptr[i]:indptr[i + 1]]
        alone = size[i] * 8 / cap[path].min() + g.link_latency_s[path].sum()
        assert r.finish[i] - start[i] >= alone * (1 - 1e-9)
    # No link carries more than its capacity allows within the makespan.
    load = np.zeros(g.num_links)
    np.add.at(load, links, np.repeat(size, np.diff(indptr)) * 8)
    assert np.all(load / cap <= r.makespan)


def test_results_are_deterministic_across_batches(backend):
    flows = FlowBatch.from_arrays([0, 3, 2, 1], [3, 0, 1, 2], [300_000, 1_000, 77_777, 5],
                                  [0.0, 1e-6, 0.0, 3e-6])
    a = backend.simulate(flows)
    backend.simulate(FlowBatch.from_arrays([1], [0], [123_456]))
    b = backend.simulate(flows)
    assert a.finish.tobytes() == b.finish.tobytes()


def test_local_and_empty_flows_finish_at_their_start(backend):
    r = backend.simulate(FlowBatch.from_arrays([1, 2, 0], [1, 3, 1], [100, 0, 9000],
                                               [1e-6, 2e-6, 0.0]))
    assert r.finish[0] == 1e-6 and r.finish[1] == 2e-6 and r.finish[2] > 0


def test_bad_flows_get_an_error_naming_the_field(backend):
    with pytest.raises(Ns3Error, match=r"size\[0\]"):
        backend.simulate(FlowBatch.from_arrays([0], [1], [-5]))
    with pytest.raises(Ns3Error, match=r"start_s\[0\]"):
        backend.simulate(FlowBatch.from_arrays([0], [1], [5], [float("nan")]))
    with pytest.raises(Ns3Error, match=r"dst\[0\]=9"):
        backend.simulate(FlowBatch.from_arrays([0], [9], [5]))
    with pytest.raises(Ns3Error, match="max_batch_flows"):
        backend.simulate(FlowBatch.from_arrays(np.zeros(MAX_FLOWS + 1), np.ones(MAX_FLOWS + 1),
                                               np.ones(MAX_FLOWS + 1)))


def _simulate_frames(backend, n=2, **over):
    src, dst = np.zeros(n, np.int32), np.ones(n, np.int32)
    indptr, links = backend.graph.routes(src, dst)
    arrays = {"src": src, "dst": dst, "size": np.full(n, 1000, np.int64),
              "start_s": np.zeros(n), "route_indptr": indptr.astype(np.int64),
              "route_links": links.astype(np.int32)}
    arrays.update(over)
    return [bytes(f) for f in wire.encode(
        "simulate", request_id=99, topology=backend.digest,
        params={"transport": "lossless", "frame_bytes": 9000}, arrays=arrays)]


def test_server_answers_and_survives_malformed_messages(backend, raw):
    pid = backend.ping()[0]["pid"]
    good = _simulate_frames(backend)
    cases = {
        "truncated": [good[0], *good[1:-1], good[-1][:-2]],
        "missing frames": good[:3],
        "wrong version": [good[0].replace(b'"v":1', b'"v":7'), *good[1:]],
        "not json": [b"\x00\x01garbage", *good[1:]],
        "nan sizes": _simulate_frames(backend, size=np.array([np.nan, 1.0])),
        "negative sizes": _simulate_frames(backend, size=np.array([-1, 1000], np.int64)),
        "nan start": _simulate_frames(backend, start_s=np.array([0.0, np.nan])),
        "outside topology": _simulate_frames(backend, dst=np.array([1, 17], np.int32)),
        "oversized batch": _simulate_frames(backend, n=MAX_FLOWS + 1),
        "huge frame": [good[0].replace(b'"frame_bytes":9000', b'"frame_bytes":65536'),
                       *good[1:]],
        "zero rate": [bytes(f) for f in wire.encode(
            "load_topology", request_id=3, params={"num_nodes": 3, "num_gpus": 2}, arrays={
                "link_src": np.array([0, 2], np.int32), "link_dst": np.array([2, 1], np.int32),
                "link_bps": np.array([0, 10**9], np.uint64),
                "link_latency_ps": np.zeros(2, np.int64)})],
        "unknown topology": [good[0].replace(backend.digest.encode(), b"feedbeef"), *good[1:]],
    }
    for name, frames in cases.items():
        reply = _exchange(raw, frames)
        assert reply.header["ok"] is False, name
        assert reply.header["error"], name
    assert _exchange(raw, good).header["ok"] is True
    assert backend.ping()[0]["pid"] == pid


def test_server_never_imports_the_apache_side(backend):
    """The GPL-2.0-only server must not load aiconfigurator (Apache-2.0) or cosim.compute."""
    backend.simulate(FlowBatch.from_arrays([0], [3], [10_000]))
    assert backend.ping()[0]["forbidden_imports"] == []
    # And statically: the server package imports only the ns-3 side of cosim.
    server_dir = Path(__file__).parents[1] / "cosim/network/ns3/server"
    for src in server_dir.glob("*.py"):
        for node in ast.walk(ast.parse(src.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert not name.startswith("aiconfigurator"), (src.name, name)
                assert not name.startswith("cosim") or name.startswith("cosim.network.ns3"), (
                    src.name, name)


def test_analytical_and_ns3_agree_on_a_16_gpu_all_to_all(backend):
    from cosim.config.topology_files import get_topology
    from cosim.network.topology import build_fabric

    analytical = pytest.importorskip("cosim.network.analytical")
    g = build_fabric(get_topology("dgx_h100_ib", num_gpus=16))
    s, d = np.meshgrid(np.arange(16), np.arange(16))
    m = s != d
    flows = FlowBatch.from_arrays(s[m], d[m], np.full(m.sum(), 1 << 20))
    a = analytical.AnalyticalBackend(g, frame_bytes=9000).simulate(flows)
    # Same server as the module's: one server holds several topologies.
    with Ns3Backend(g, {"endpoints": [backend._endpoints[0].address]}) as b:
        r = b.simulate(flows)
    assert r.makespan == pytest.approx(a.makespan, rel=0.10)
    assert np.all(np.abs(r.finish / a.finish - 1) < 0.10)


def test_killed_server_is_restarted_and_the_result_is_unchanged(backend):
    # Runs late in the module: it replaces the module's server.
    flows = FlowBatch.from_arrays([0, 1, 2, 3], [2, 3, 0, 1], [2_000_000] * 4)
    undisturbed = backend.simulate(flows)
    killed = []

    def kill_once(ep):  # right after the request is sent: the server dies mid-batch
        if not killed:
            killed.append(ep.local.proc.pid)
            ep.local.proc.send_signal(signal.SIGKILL)

    backend._after_send = kill_once
    try:
        r = backend.simulate(flows)
    finally:
        backend._after_send = None
    assert killed and r.stats["restarts"] == 1
    assert r.finish.tobytes() == undisturbed.finish.tobytes()
    assert backend.server_pids() != killed and _gone(killed[0])


def test_close_leaves_no_process_behind(backend):
    pids = backend.server_pids()
    assert pids and not any(_gone(p) for p in pids)
    backend.close()
    assert all(_gone(p) for p in pids)
    with pytest.raises(Ns3Error, match="closed"):
        backend.simulate(FlowBatch.from_arrays([0], [1], [1]))


def test_server_dies_with_a_killed_orchestrator(tmp_path):
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from ns3_graphs import star\n"
        "from cosim.network.ns3.client import Ns3Backend\n"
        "b = Ns3Backend(star(2)); b.ping(); print(b.server_pids()[0], flush=True)\n"
        "import time; time.sleep(600)\n")
    orch = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        server_pid = int(orch.stdout.readline())
        assert not _gone(server_pid)
    finally:
        orch.kill()
        orch.wait()
    for _ in range(100):  # PR_SET_PDEATHSIG delivers SIGKILL at once; allow scheduling
        if _gone(server_pid):
            break
        time.sleep(0.1)
    assert _gone(server_pid)
