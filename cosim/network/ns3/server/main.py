"""`cosim-ns3-server`: ns-3 in its own process, answering on a ZeroMQ ROUTER socket.

SPDX-License-Identifier: GPL-2.0-only. This program links ns-3 (GPL-2.0-only); it imports
only cosim.network.ns3 (wire protocol, loader, this server) and never aiconfigurator or
cosim.compute, which is what keeps the MIT/Apache orchestrator a separate program.

    cosim-ns3-server --endpoint tcp://127.0.0.1:5555
    cosim-ns3-server --endpoint tcp://127.0.0.1:*  --parent-pid 1234   # any free port
    cosim-ns3-server --endpoint ipc:///tmp/cosim-ns3.sock
    cosim-ns3-server --endpoint tcp://0.0.0.0:5555 --keys ~/.cosim/ns3-keys  # remote, CurveZMQ
    cosim-ns3-server keygen DIR [--name NAME]                # a client key pair

A non-loopback tcp endpoint needs --keys (or an explicit --insecure). Once bound it prints
one line to stdout, `cosim-ns3-server ready endpoint=<E> pid=<P> auth=<curve|none>`, then
serves requests one at a time (clients may be many). Bad input gets an error reply; a batch
over its event or wall budget is abandoned with one; the server keeps serving. With
--parent-pid it exits when that process is gone.
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
from zmq.auth.thread import ThreadAuthenticator

from cosim.network.ns3 import keys, wire

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


# Measured (issue 11's probe of the server): one legal 200k-link topology grew the server by
# ~911 MB, i.e. ~4.6 kB per link (ns-3 nodes, devices, queues); rounded up.
BYTES_PER_LINK = 5000
DEFAULT_MAX_TOPOLOGIES = 8
# Per-request budget defaults. Wall: below the client's default timeout_s (600 s), so that a
# client gets the error reply rather than timing out and resending the same batch. Events:
# 10^9 is 2,000-8,000 s at the 120k-500k events/s measured (NS3_NOTES), so the wall budget
# binds first unless lowered; an event budget abandons at the same point on any machine.
DEFAULT_MAX_EVENTS = 10**9
DEFAULT_MAX_WALL_S = 540.0


def memory_available_bytes() -> int | None:
    """MemAvailable of /proc/meminfo (None where there is none)."""
    try:
        with open("/proc/meminfo") as f:
            kb = next(int(line.split()[1]) for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):
        return None
    return kb * 1024


def default_max_links(max_topologies: int, available: int | None = None) -> int:
    """Largest topology (directed links) that fits the machine's available memory.

    The server holds up to `max_topologies` topologies, and evicted ones until their links
    outnumber the live ones (then ns-3 is reset, see Server._evict): at most
    (2 x max_topologies + 1) topologies' worth of ns-3 objects at once, ~BYTES_PER_LINK each.
    """
    available = memory_available_bytes() if available is None else available
    if available is None:
        return wire.MAX_LINKS
    per = BYTES_PER_LINK * (2 * max(1, max_topologies) + 1)
    return max(1024, min(wire.MAX_LINKS, available // per))


def max_frame_bytes(max_flows: int, max_links: int = wire.MAX_LINKS) -> int:
    """The largest frame the protocol allows a request (ZMQ_MAXMSGSIZE is checked per frame)."""
    return max(wire.MAX_HEADER_BYTES, max_flows * wire.MAX_ROUTE_HOPS * 4,
               (max_flows + 1) * 8, max_links * 8)


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def _fabric_module():
    """cosim.network.ns3.server.fabric if a request has loaded it, else None (no ns-3 load)."""
    return sys.modules.get("cosim.network.ns3.server.fabric")


class Server:
    """Request handling, independent of the socket (so it can be tested in-process too).

    Topologies live in an LRU of `max_topologies` digests. ns-3 cannot delete single nodes,
    so an evicted topology's objects are freed by resetting ns-3 (Simulator::Destroy), once
    the evicted links outnumber the live ones; the live topologies stay loaded (their
    validated arrays are kept) and are rebuilt on their next simulate. A batch that fails or
    goes over its budget leaves packets in flight: ns-3 is reset the same way.
    """

    def __init__(self, max_flows: int = wire.MAX_FLOWS, max_packets: int = 10**9,
                 max_topologies: int = DEFAULT_MAX_TOPOLOGIES, max_links: int | None = None,
                 max_events: int = DEFAULT_MAX_EVENTS, max_wall_s: float = DEFAULT_MAX_WALL_S,
                 allow_shutdown: bool = True, auth: str = "none"):
        self.max_flows = max_flows
        self.max_links = max_links if max_links is not None else default_max_links(
            max_topologies)
        self.max_packets = max_packets
        self.max_topologies = max(1, max_topologies)
        self.max_events = max_events
        self.max_wall_s = max_wall_s
        self.allow_shutdown = allow_shutdown
        self.auth = auth
        # digest -> built fabric, or None (loaded, rebuilt on next use); oldest use first
        self.fabrics: OrderedDict[str, object | None] = OrderedDict()
        self.specs: dict[str, wire.TopologySpec] = {}
        self.garbage_links = 0  # links of evicted fabrics not freed yet
        self.resets = 0
        self.abandoned = 0
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

    # ---------------------------------------------------------------- topologies (LRU)

    def live_links(self) -> int:
        return sum(f.built_links for f in self.fabrics.values() if f is not None)

    def ns3_nodes(self) -> int | None:
        """Nodes ns-3 holds now (all topologies, evicted ones not yet freed included)."""
        fab = _fabric_module()
        return None if fab is None else fab.ns3_node_count()

    def _reset(self) -> None:
        """Free every ns-3 object; loaded topologies are rebuilt on their next use."""
        for digest in self.fabrics:
            self.fabrics[digest] = None
        self.garbage_links = 0
        fab = _fabric_module()
        if fab is not None:
            fab.reset_ns3()
        self.resets += 1

    def _evict(self) -> None:
        digest, fabric = self.fabrics.popitem(last=False)
        self.specs.pop(digest, None)
        if fabric is not None:
            self.garbage_links += fabric.built_links
            del fabric
        # Amortised: each freed link is rebuilt at most once per evicted one.
        if self.garbage_links > self.live_links():
            self._reset()

    def _build(self, digest: str):
        from cosim.network.ns3.server.fabric import Ns3Fabric  # loads ns-3 (seconds)

        try:
            fabric = Ns3Fabric(self.specs[digest])
        except BaseException:
            # A half-built fabric is in ns-3's node list: forget the topology, free it all.
            self.fabrics.pop(digest, None)
            self.specs.pop(digest, None)
            self._reset()
            raise
        self.fabrics[digest] = fabric
        return fabric

    # ---------------------------------------------------------------- requests

    def _ping(self, msg: wire.Message) -> list:
        return wire.reply_ok(msg.id, {"server": SERVER_VERSION, "pid": os.getpid(),
                                      "protocol": wire.PROTOCOL_VERSION,
                                      "topologies": list(self.fabrics),
                                      "max_flows": self.max_flows,
                                      "max_links": self.max_links,
                                      "max_topologies": self.max_topologies,
                                      "max_events": self.max_events,
                                      "max_wall_s": self.max_wall_s,
                                      "auth": self.auth,
                                      "built_links": self.live_links(),
                                      "garbage_links": self.garbage_links,
                                      "ns3_nodes": self.ns3_nodes(),
                                      "resets": self.resets, "abandoned": self.abandoned,
                                      "rss_bytes": _rss_bytes(),
                                      "transports": list(wire.TRANSPORTS), "batches": self.batches,
                                      "forbidden_imports": forbidden_imports()})

    def _shutdown(self, msg: wire.Message) -> list:
        if not self.allow_shutdown:
            raise wire.WireError("shutdown is refused: this server listens on a remote "
                                 "endpoint without authentication (--insecure); stop it with "
                                 "a signal, or serve with --keys")
        self.stop = True
        return wire.reply_ok(msg.id, {"pid": os.getpid()})

    def _load_topology(self, msg: wire.Message) -> list:
        topo = wire.check_topology(msg)
        if topo.link_src.shape[0] > self.max_links:
            raise wire.WireError(f"topology of {topo.link_src.shape[0]} links exceeds this "
                                 f"server's limit of {self.max_links} (--max-links; set from "
                                 "the machine's memory)")
        build_s = 0.0
        if topo.digest in self.fabrics:
            self.fabrics.move_to_end(topo.digest)
        else:
            while len(self.fabrics) >= self.max_topologies:
                self._evict()
            # Copy: the arrays view the ZeroMQ frames, which are freed after the reply.
            self.specs[topo.digest] = wire.TopologySpec(
                topo.num_nodes, topo.num_gpus, topo.link_src.copy(), topo.link_dst.copy(),
                topo.link_bps.copy(), topo.link_latency_ps.copy(), topo.digest)
            self.fabrics[topo.digest] = None
        if self.fabrics[topo.digest] is None:
            t = time.perf_counter()
            self._build(topo.digest)
            build_s = time.perf_counter() - t
        return wire.reply_ok(msg.id, {"topology": topo.digest, "build_s": build_s})

    def _simulate(self, msg: wire.Message) -> list:
        from cosim.network.ns3.server.fabric import BatchFailed

        digest = msg.header.get("topology")
        if digest not in self.fabrics:
            raise wire.WireError(f"unknown topology {digest!r}: send load_topology first")
        spec = wire.check_simulate(msg, self.specs[digest], self.max_flows, self.max_packets)
        events, wall = wire.budget_params(msg.params)
        events = self.max_events if events is None else min(events, self.max_events)
        wall = self.max_wall_s if wall is None else min(wall, self.max_wall_s)
        self.fabrics.move_to_end(digest)
        fabric = self.fabrics[digest] or self._build(digest)
        try:
            res = fabric.run(spec, max_events=events, max_wall_s=wall)
        except BatchFailed as e:
            del fabric
            self._reset()  # packets are still in flight: start the next request clean
            if not e.budget:
                return wire.reply_error(msg.id, f"simulation failed: {e}")
            self.abandoned += 1
            return wire.reply_error(msg.id, f"simulation abandoned: {e} (server --max-events "
                                    f"{self.max_events}, --max-wall-s {self.max_wall_s:g}; "
                                    "request params.max_events, params.max_wall_s)")
        self.batches += 1
        return wire.reply_ok(msg.id, {"events": res.events, "packet_hops": res.packet_hops,
                                      "wall_s": res.wall_s, "sim_start_s": res.sim_start_s,
                                      "flows": int(spec.src.shape[0]),
                                      "transport": spec.transport,
                                      "frame_bytes": spec.frame_bytes},
                             {"finish_s": res.finish_s})


def serve(endpoint: str, parent_pid: int | None = None, max_flows: int = wire.MAX_FLOWS,
          max_packets: int = 10**9, preload: bool = True, keys_dir: str | None = None,
          insecure: bool = False, max_topologies: int = DEFAULT_MAX_TOPOLOGIES,
          max_links: int | None = None,
          max_events: int = DEFAULT_MAX_EVENTS,
          max_wall_s: float = DEFAULT_MAX_WALL_S) -> int:
    """Bind `endpoint`, print the readiness line, serve until shutdown or parent death."""
    local = keys.is_local_endpoint(endpoint)
    if not local and keys_dir is None and not insecure:
        print(f"cosim-ns3-server: refusing to serve {endpoint} without authentication: "
              "give --keys DIR (CurveZMQ) or --insecure (anyone who reaches the port can "
              "submit work)", file=sys.stderr)
        return 2
    server_keys = None
    if keys_dir is not None:
        try:
            server_keys = keys.server_keys(keys_dir)
        except keys.KeysError as e:
            print(f"cosim-ns3-server: --keys: {e}", file=sys.stderr)
            return 2
    server = Server(max_flows=max_flows, max_packets=max_packets,
                    max_topologies=max_topologies, max_links=max_links, max_events=max_events,
                    max_wall_s=max_wall_s, allow_shutdown=local or server_keys is not None,
                    auth="curve" if server_keys is not None else "none")
    ctx = zmq.Context()
    auth = None
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 1000)
    # ZeroMQ drops a peer whose frame exceeds this before buffering it whole.
    sock.setsockopt(zmq.MAXMSGSIZE, max_frame_bytes(max_flows, server.max_links))
    if endpoint.startswith("tcp://["):
        sock.setsockopt(zmq.IPV6, 1)
    if server_keys is not None:
        # ZAP (RFC 27) by pyzmq's authenticator: only clients whose public key is in
        # DIR/authorized complete the CurveZMQ handshake; others never reach this loop.
        auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_curve(domain="*", location=str(server_keys.authorized))
        sock.curve_secretkey = server_keys.secret
        sock.curve_publickey = server_keys.public
        sock.curve_server = True
        made = " (generated now)" if server_keys.created else ""
        print(f"cosim-ns3-server: CurveZMQ on; server public key {server_keys.public_file}"
              f"{made}; {server_keys.clients} authorised client key(s) in "
              f"{server_keys.authorized}", file=sys.stderr)
    try:
        sock.bind(endpoint)
    except zmq.ZMQError as e:
        print(f"cosim-ns3-server: cannot bind {endpoint}: {e}", file=sys.stderr)
        sock.close(linger=0)
        if auth is not None:
            auth.stop()
        ctx.term()
        return 2
    bound = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    if preload:
        # Pay ns-3's load and the driver's compile before saying ready, not in a request;
        # then free the warm-up fabric (the compiled code stays).
        from cosim.network.ns3.server.fabric import reset_ns3, warm_up

        warm_up()
        reset_ns3()
    print(f"{READY_PREFIX} endpoint={bound} pid={os.getpid()} auth={server.auth}", flush=True)
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
    if auth is not None:
        auth.stop()
    ctx.term()
    return 0


def keygen(argv: list[str]) -> int:
    """`cosim-ns3-server keygen DIR [--name NAME]`: write a client key pair."""
    ap = argparse.ArgumentParser(prog="cosim-ns3-server keygen",
                                 description="Write a CurveZMQ client key pair DIR/NAME.key "
                                             "(public: copy it into the server's "
                                             "KEYS/authorized/) and DIR/NAME.key_secret "
                                             "(network.ns3.curve.client_secret_key).")
    ap.add_argument("directory")
    ap.add_argument("--name", default="client", help="file name stem (default: %(default)s)")
    args = ap.parse_args(argv)
    try:
        public_file, secret_file = keys.make_client_key(args.directory, args.name)
    except keys.KeysError as e:
        print(f"cosim-ns3-server keygen: {e}", file=sys.stderr)
        return 2
    print(f"public key {public_file}: copy it into the server's KEYS/{keys.AUTHORIZED}/")
    print(f"secret key {secret_file}: network.ns3.curve.client_secret_key={secret_file}")
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
    ap.add_argument("--max-events", type=int, default=DEFAULT_MAX_EVENTS,
                    help="abandon a batch after this many ns-3 events (default: %(default)s)")
    ap.add_argument("--max-wall-s", type=float, default=DEFAULT_MAX_WALL_S,
                    help="abandon a batch after this many seconds of wall clock "
                         "(default: %(default)s)")
    ap.add_argument("--max-topologies", type=int, default=DEFAULT_MAX_TOPOLOGIES,
                    help="topologies held at once, least recently used evicted "
                         "(default: %(default)s)")
    ap.add_argument("--max-links", type=int, default=None,
                    help="largest topology in directed links (default: what the available "
                         "memory holds, see docs/ns3.md)")
    ap.add_argument("--keys", metavar="DIR", default=None,
                    help="CurveZMQ: load (or generate) DIR/server.key_secret and admit only "
                         "the clients whose public keys are in DIR/authorized/")
    ap.add_argument("--insecure", action="store_true",
                    help="serve a non-loopback tcp endpoint without --keys (anyone who "
                         "reaches the port can submit work)")
    ap.add_argument("--no-warm-up", dest="preload", action="store_false",
                    help="report ready before loading ns-3 (the first request pays for it)")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["keygen"]:
        return keygen(argv[1:])
    args = ap.parse_args(argv)
    for name in ("max_flows", "max_packets", "max_events", "max_topologies"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.max_links is not None and args.max_links < 1:
        ap.error("--max-links must be >= 1")
    if not args.max_wall_s > 0:
        ap.error("--max-wall-s must be > 0")
    if args.parent_pid is not None:
        _die_with_parent(args.parent_pid)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        from cosim.network.ns3.loader import Ns3NotAvailable
        return serve(args.endpoint, args.parent_pid, args.max_flows, args.max_packets,
                     preload=args.preload, keys_dir=args.keys, insecure=args.insecure,
                     max_topologies=args.max_topologies, max_links=args.max_links,
                     max_events=args.max_events, max_wall_s=args.max_wall_s)
    except Ns3NotAvailable as e:
        print(f"cosim-ns3-server: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
