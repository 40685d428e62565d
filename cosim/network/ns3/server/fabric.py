"""ns-3 fabrics built from validated topology arrays, and batches run on them.

SPDX-License-Identifier: GPL-2.0-only (this module drives ns-3 in the server process).
Everything per packet happens in C++ (flow_driver.cc, compiled once with cppyy); Python
only hands arrays over and reads results back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cosim.network.ns3 import wire
from cosim.network.ns3.loader import load_ns3

_DRIVER_SOURCE = Path(__file__).with_name("flow_driver.cc")
_TCP_SOURCE = Path(__file__).with_name("tcp_driver.cc")
# TCP: floor of the retransmission timeout (ns-3's default, 1 s, is for the Internet; a
# fabric's RTTs are microseconds) and a simulated-time limit per batch.
TCP_MIN_RTO_S = 1e-3
TCP_LIMIT_S = 10.0
# Deep device queues: switches never drop (credit/PFC flow control stand-in). The bound
# only guards memory; a batch that would overflow it is reported as an error.
QUEUE_PACKETS = 50_000_000
# ns-3's Queue counts bytes in a uint32_t: the flow driver bounds each queue to what fits at
# the batch's frame size; TCP fabrics (frame size set later) use the bound of the largest frame.
TCP_QUEUE_PACKETS = min(QUEUE_PACKETS, (2**32 - 1) // (wire.MAX_FRAME_BYTES + 2))

_compiled = None
# Unlimited budget (the C++ side's defaults), for callers that set none.
NO_EVENT_LIMIT = 2**64 - 1
NO_WALL_LIMIT = 1e300


class BatchFailed(RuntimeError):
    """A batch ns-3 could not finish (drops, incomplete flows, over budget).

    The simulator is left in mid-flight (packets queued, events pending): the caller must
    reset ns-3 (reset_ns3) before running anything else. `budget` is true when the batch was
    abandoned for exceeding its event or wall-clock budget.
    """

    def __init__(self, text: str):
        self.budget = text.startswith("budget: ")
        super().__init__(text[len("budget: "):] if self.budget else text)


def reset_ns3() -> None:
    """Free every ns-3 object built so far: all fabrics become unusable (drop them first).

    Simulator::Destroy runs ns-3's destroy events, among them NodeList's and ChannelList's,
    which dispose every node (with its devices and queues) and channel and drop the lists'
    references; the pending events are deleted. A fabric object still held then owns only
    disposed shells. Time restarts at 0, which nothing observes: batch times are relative.
    """
    if _compiled is None:
        return
    ns = load_ns3()
    if _tcp_compiled is not None:
        ns.Ipv4AddressGenerator.Reset()  # NS3_NOTES: needed before rebuilding after Destroy
    ns.Simulator.Destroy()


def ns3_node_count() -> int | None:
    """Nodes in ns-3's NodeList (every fabric built since the last reset), None before ns-3."""
    if _compiled is None:
        return None
    return int(load_ns3().NodeList.GetNNodes())


def driver_namespace():
    """The C++ namespace `cosim_ns3` (ns-3 loaded and the driver compiled on first use)."""
    global _compiled
    if _compiled is None:
        ns = load_ns3()
        ns.cppyy.cppdef(_DRIVER_SOURCE.read_text())
        _compiled = ns.cppyy.gbl.cosim_ns3
    return _compiled


_tcp_compiled = None


def tcp_namespace():
    """`cosim_ns3` with the TCP driver (loads ns-3's internet and traffic-control: seconds)."""
    global _tcp_compiled
    if _tcp_compiled is None:
        from cosim.network.ns3.loader import BASE_MODULES, TCP_MODULES

        ns = load_ns3(BASE_MODULES + TCP_MODULES)
        driver_namespace()
        ns.cppyy.cppdef(_TCP_SOURCE.read_text())
        _tcp_compiled = ns.cppyy.gbl.cosim_ns3
    return _tcp_compiled


@dataclass
class BatchResult:
    finish_s: np.ndarray
    events: int
    packet_hops: int
    wall_s: float
    sim_start_s: float  # simulated time at the batch start (time carries on across batches)


class Ns3Fabric:
    """One topology built in ns-3; many batches run on it, one after another."""

    def __init__(self, topo: wire.TopologySpec):
        ns3c = driver_namespace()
        self.topo = topo
        self._fabric = ns3c.Fabric()
        err = self._fabric.Build(
            int(topo.num_nodes), int(topo.link_src.shape[0]),
            np.array(topo.link_src, dtype=np.int32), np.array(topo.link_dst, dtype=np.int32),
            np.array(topo.link_bps, dtype=np.uint64),
            np.array(topo.link_latency_ps, dtype=np.int64),
            QUEUE_PACKETS)
        if err:
            raise RuntimeError(f"fabric build failed: {_text(err)}")
        self._frame_bytes = 0
        self._tcp: dict[str, tuple[object, list[int]]] = {}  # transport -> (fabric, [frame])

    @property
    def built_links(self) -> int:
        """Directed links this topology holds in ns-3 (its TCP fabrics included)."""
        return int(self.topo.link_src.shape[0]) * (1 + len(self._tcp))

    def _tcp_fabric(self, transport: str, frame_bytes: int):
        """The TCP fabric of this topology for `transport` (built on first use)."""
        if transport not in self._tcp:
            topo = self.topo
            fab = tcp_namespace().TcpFabric()
            err = fab.Build(int(topo.num_nodes), int(topo.num_gpus), int(topo.link_src.shape[0]),
                            np.array(topo.link_src, dtype=np.int32),
                            np.array(topo.link_dst, dtype=np.int32),
                            np.array(topo.link_bps, dtype=np.uint64),
                            np.array(topo.link_latency_ps, dtype=np.int64),
                            TCP_QUEUE_PACKETS, transport == "dctcp", int(frame_bytes))
            if err:
                raise RuntimeError(f"TCP fabric build failed: {_text(err)}")
            self._tcp[transport] = (fab, [0])
        fab, frame = self._tcp[transport]
        if frame[0] != frame_bytes:
            err = fab.SetFrameBytes(int(frame_bytes))
            if err:
                raise wire.WireError(_text(err))
            frame[0] = frame_bytes
        return fab

    def _run_tcp(self, spec: wire.SimulateSpec, max_events: int,
                 max_wall_s: float) -> BatchResult:
        fab = self._tcp_fabric(spec.transport, spec.frame_bytes)
        fab.SetBudget(int(max_events), float(max_wall_s))
        n = int(spec.src.shape[0])
        finish_ps = np.zeros(n, dtype=np.int64)
        start_ps = np.rint(spec.start_s * 1e12).astype(np.int64)
        sim_start = self._fabric.NowPs() * 1e-12
        t = time.perf_counter()
        err = fab.Run(n, np.array(spec.src, dtype=np.int32), np.array(spec.dst, dtype=np.int32),
                      np.array(spec.size, dtype=np.int64), start_ps, finish_ps,
                      TCP_MIN_RTO_S, TCP_LIMIT_S)
        wall = time.perf_counter() - t
        if err:
            raise BatchFailed(_text(err))
        return BatchResult(finish_ps.astype(np.float64) * 1e-12, int(fab.Events()),
                           int(fab.PacketHops()), wall, sim_start)

    def run(self, spec: wire.SimulateSpec, bare: bool = False,
            max_events: int = NO_EVENT_LIMIT, max_wall_s: float = NO_WALL_LIMIT) -> BatchResult:
        """Run one validated batch to completion; times are relative to the batch start.

        Raises BatchFailed (then reset ns-3) when the batch cannot finish or goes over
        `max_events` ns-3 events or `max_wall_s` seconds of wall clock.
        """
        if spec.transport in ("tcp", "dctcp") and spec.src.shape[0]:
            return self._run_tcp(spec, max_events, max_wall_s)
        if spec.frame_bytes != self._frame_bytes:
            err = self._fabric.SetFrameBytes(int(spec.frame_bytes))
            if err:
                raise wire.WireError(_text(err))
            self._frame_bytes = spec.frame_bytes
        n = int(spec.src.shape[0])
        finish_ps = np.zeros(n, dtype=np.int64)
        if n == 0:
            return BatchResult(np.zeros(0), 0, 0, 0.0, self._fabric.NowPs() * 1e-12)
        start_ps = np.rint(spec.start_s * 1e12).astype(np.int64)
        sim_start = self._fabric.NowPs() * 1e-12
        self._fabric.SetBudget(int(max_events), float(max_wall_s))
        t = time.perf_counter()
        # Writable copies: cppyy passes only writable buffers as pointers, and the request's
        # arrays are read-only views of the ZeroMQ frames.
        err = self._fabric.Run(
            n, np.array(spec.size, dtype=np.int64), start_ps,
            np.array(spec.route_indptr, dtype=np.int64),
            np.array(spec.route_links, dtype=np.int32), finish_ps, bool(bare))
        wall = time.perf_counter() - t
        if err:
            raise BatchFailed(_text(err))
        return BatchResult(finish_ps.astype(np.float64) * 1e-12, int(self._fabric.Events()),
                           int(self._fabric.PacketHops()), wall, sim_start)


def _text(s) -> str:
    return s.decode() if isinstance(s, bytes) else str(s)


def warm_up() -> None:
    """Load ns-3, compile the driver and JIT its entry points on a 2-node, 1-packet batch.

    Pays cppyy's first-call compilation (~1-2 s) before the server reports ready, so that
    the first real request is as fast as the rest. Simulated time advances by a few ns;
    batches are timed relative to their own start, so nothing observable changes.
    """
    topo = wire.TopologySpec(2, 2, np.array([0, 1], np.int32), np.array([1, 0], np.int32),
                             np.full(2, 10**9, np.uint64), np.zeros(2, np.int64), "warm-up")
    spec = wire.SimulateSpec("lossless", 9000, np.array([0], np.int32),
                             np.array([1], np.int32), np.array([100], np.int64), np.zeros(1),
                             np.array([0, 1], np.int64), np.array([0], np.int32))
    Ns3Fabric(topo).run(spec)
