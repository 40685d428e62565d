"""`cosim-ns3-server`: ns-3 in its own process, answering on a ZeroMQ ROUTER socket.

SPDX-License-Identifier: GPL-2.0-only. This program links ns-3 (GPL-2.0-only); it imports
only cosim.network.ns3 (wire protocol, loader, this server) and never aiconfigurator or
cosim.compute, which is what keeps the MIT/Apache orchestrator a separate program.

    cosim-ns3-server --endpoint tcp://127.0.0.1:5555
    cosim-ns3-server --endpoint tcp://127.0.0.1:*  --parent-pid 1234   # any free port
    cosim-ns3-server --endpoint ipc:///tmp/cosim-ns3.sock

Once bound it prints one line to stdout, `cosim-ns3-server ready endpoint=<E> pid=<P>`,
then serves requests one at a time (clients may be many). Bad input gets an error reply;
the server keeps serving. With --parent-pid it exits when that process is gone.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import sys
import time
from collections import OrderedDict

import zmq

from cosim.network.ns3 import wire

SERVER_VERSION = "cosim-ns3-server/1"
READY_PREFIX = "cosim-ns3-server ready"
_POLL_MS = 500  # how often an idle server checks its parent


def _die_with_parent(parent_pid: int | None) -> None:
    """Ask Linux to SIGKILL us when our parent dies (works even inside a long ns-3 run)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    except OSError:
        return
    if parent_pid is not None and os.getppid() != parent_pid:
        # The parent died before prctl took effect (or we were started by someone else).
        if not _alive(parent_pid):
            os._exit(0)


def forbidden_imports() -> list[str]:
    """Modules this GPL-2.0-only process must never hold (Apache/MIT-only parts of cosim)."""
    return sorted(m for m in sys.modules
                  if m.split(".")[0] == "aiconfigurator" or m == "cosim.compute"
                  or m.startswith("cosim.compute."))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# Measured: one legal 200k-link topology grew the server by ~911 MB, i.e. ~4.6 kB per link
# (ns-3 nodes, devices, queues); rounded up. Old topologies stay built (see _load_topology).
BYTES_PER_LINK = 5000


def default_max_links(max_topologies: int) -> int:
    """Largest topology the machine's available memory holds `max_topologies` times over."""
    try:
        with open("/proc/meminfo") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return wire.MAX_LINKS
    return max(1024, min(wire.MAX_LINKS, kb * 1024 // (BYTES_PER_LINK * max(1, max_topologies))))


def max_frame_bytes(max_flows: int) -> int:
    """The largest frame the protocol allows a request (ZMQ_MAXMSGSIZE is checked per frame)."""
    return max(wire.MAX_HEADER_BYTES, max_flows * wire.MAX_ROUTE_HOPS * 4,
               (max_flows + 1) * 8, wire.MAX_LINKS * 8)


class Server:
    """Request handling, independent of the socket (so it can be tested in-process too)."""

    def __init__(self, max_flows: int = wire.MAX_FLOWS, max_packets: int = 10**9,
                 max_topologies: int = 8, max_links: int | None = None):
        self.max_flows = max_flows
        self.max_links = max_links if max_links is not None else default_max_links(
            max_topologies)
        self.max_packets = max_packets
        self.max_topologies = max_topologies
        self.fabrics: OrderedDict[str, object] = OrderedDict()
        self.specs: dict[str, wire.TopologySpec] = {}
        self.stop = False
        self.batches = 0

    def handle(self, frames: list) -> list:
        """One request in, one reply out; never raises for bad input.

        Everything a client sends goes through this error path, the id extraction included;
        a failure while building the error reply falls back to a fixed one.
        """
        rid = None
        try:
            rid = wire.request_id_of(frames)
            msg = wire.decode(frames)
            rid = msg.id
            return getattr(self, "_" + msg.kind)(msg)
        except wire.WireError as e:
            return wire.reply_error(rid, f"bad request: {e}")
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # noqa: BLE001 - ns-3/cppyy errors, MemoryError, ...
            try:
                return wire.reply_error(rid, f"server error: {type(e).__name__}: {e}")
            except BaseException:  # noqa: BLE001
                return [wire.FALLBACK_ERROR]

    def _ping(self, msg: wire.Message) -> list:
        return wire.reply_ok(msg.id, {"server": SERVER_VERSION, "pid": os.getpid(),
                                      "protocol": wire.PROTOCOL_VERSION,
                                      "topologies": list(self.fabrics),
                                      "max_flows": self.max_flows,
                                      "transports": list(wire.TRANSPORTS), "batches": self.batches,
                                      "forbidden_imports": forbidden_imports()})

    def _shutdown(self, msg: wire.Message) -> list:
        self.stop = True
        return wire.reply_ok(msg.id, {"pid": os.getpid()})

    def _load_topology(self, msg: wire.Message) -> list:
        topo = wire.check_topology(msg)
        if topo.link_src.shape[0] > self.max_links:
            raise wire.WireError(f"topology of {topo.link_src.shape[0]} links exceeds this "
                                 f"server's limit of {self.max_links} (--max-links; set from "
                                 "the machine's memory)")
        if topo.digest not in self.fabrics:
            from cosim.network.ns3.server.fabric import Ns3Fabric  # loads ns-3 (seconds)

            t = time.perf_counter()
            # Copy: the arrays view the ZeroMQ frames, which are freed after the reply.
            topo = wire.TopologySpec(topo.num_nodes, topo.num_gpus, topo.link_src.copy(),
                                     topo.link_dst.copy(), topo.link_bps.copy(),
                                     topo.link_latency_ps.copy(), topo.digest)
            self.fabrics[topo.digest] = Ns3Fabric(topo)
            self.specs[topo.digest] = topo
            build_s = time.perf_counter() - t
            # Old fabrics stay built in ns-3 (nodes cannot be removed); only forget them.
            while len(self.fabrics) > self.max_topologies:
                old, _ = self.fabrics.popitem(last=False)
                self.specs.pop(old, None)
        else:
            self.fabrics.move_to_end(topo.digest)
            build_s = 0.0
        return wire.reply_ok(msg.id, {"topology": topo.digest, "build_s": build_s})

    def _simulate(self, msg: wire.Message) -> list:
        digest = msg.header.get("topology")
        if digest not in self.fabrics:
            raise wire.WireError(f"unknown topology {digest!r}: send load_topology first")
        spec = wire.check_simulate(msg, self.specs[digest], self.max_flows, self.max_packets)
        res = self.fabrics[digest].run(spec)
        self.batches += 1
        return wire.reply_ok(msg.id, {"events": res.events, "packet_hops": res.packet_hops,
                                      "wall_s": res.wall_s, "sim_start_s": res.sim_start_s,
                                      "flows": int(spec.src.shape[0]),
                                      "transport": spec.transport,
                                      "frame_bytes": spec.frame_bytes},
                             {"finish_s": res.finish_s})


def serve(endpoint: str, parent_pid: int | None = None, max_flows: int = wire.MAX_FLOWS,
          max_packets: int = 10**9, preload: bool = True) -> int:
    """Bind `endpoint`, print the readiness line, serve until shutdown or parent death."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 1000)
    # ZeroMQ drops a peer whose frame exceeds this before buffering it whole.
    sock.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes(max_flows))
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as e:
        print(f"cosim-ns3-server: cannot bind {endpoint}: {e}", file=sys.stderr)
        return 2
    bound = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    server = Server(max_flows=max_flows, max_packets=max_packets)
    if preload:
        # Pay ns-3's load and the driver's compile before saying ready, not in a request.
        from cosim.network.ns3.server.fabric import warm_up

        warm_up()
    print(f"{READY_PREFIX} endpoint={bound} pid={os.getpid()}", flush=True)
    # Nothing else goes to stdout: a parent may stop reading it after the readiness line.
    sys.stdout = sys.stderr
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    while not server.stop:
        if not poller.poll(_POLL_MS):
            if parent_pid is not None and not _alive(parent_pid):
                break
            continue
        frames = sock.recv_multipart(copy=False)
        # ROUTER envelope: identity, then an empty delimiter when the peer is a REQ socket.
        split = 2 if len(frames) > 2 and len(frames[1].bytes) == 0 else 1
        envelope = [f.bytes for f in frames[:split]]
        if split == 1 and len(frames) < 2:
            continue  # nothing but an identity: nobody to answer
        # While busy (ns-3 runs in C++ and Python handlers cannot run) SIGTERM must still
        # stop the process: the default action does, at once.
        previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            reply = server.handle(frames[split:])
        finally:
            signal.signal(signal.SIGTERM, previous)
        del frames
        try:
            sock.send_multipart(envelope + reply, copy=False)
        except zmq.ZMQError as e:
            print(f"cosim-ns3-server: reply not sent: {e}", file=sys.stderr)
    sock.close()
    ctx.term()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Console script `cosim-ns3-server`."""
    ap = argparse.ArgumentParser(prog="cosim-ns3-server", description=__doc__.split("\n\n")[0])
    ap.add_argument("--endpoint", default="tcp://127.0.0.1:*",
                    help="ZeroMQ endpoint to bind: tcp://HOST:PORT (PORT * = any free port) "
                         "or ipc://PATH (default: %(default)s)")
    ap.add_argument("--parent-pid", type=int, default=None,
                    help="exit when this process is gone (set by the client it started)")
    ap.add_argument("--max-flows", type=int, default=wire.MAX_FLOWS,
                    help="largest batch accepted (default: %(default)s)")
    ap.add_argument("--max-packets", type=int, default=10**9,
                    help="largest batch in packets accepted (default: %(default)s)")
    args = ap.parse_args(argv)
    if args.parent_pid is not None:
        _die_with_parent(args.parent_pid)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        from cosim.network.ns3.loader import Ns3NotAvailable
        return serve(args.endpoint, args.parent_pid, args.max_flows, args.max_packets)
    except Ns3NotAvailable as e:
        print(f"cosim-ns3-server: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
