"""`Ns3Backend`: the orchestrator's side of the ns-3 packet-level backend (network=ns3).

It never imports ns-3: flows are sent to a `cosim-ns3-server` process over ZeroMQ
(cosim.network.ns3.wire). With no endpoints configured it starts a local server on demand
(127.0.0.1, a free port chosen by the server), waits for its readiness line, and stops it at
close/exit; the server also dies with this process (PR_SET_PDEATHSIG and --parent-pid), so
no server outlives an orchestrator that is killed. With `endpoints=[...]` it uses running
servers; several endpoints run the batches of `simulate_many` in parallel.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import selectors
import signal
import subprocess
import sys
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from cosim.network.flows import FlowBatch, FlowResult, InvalidResult, check_finish
from cosim.network.ns3 import keys, wire

_POLL_S = 0.1  # how often a waiting client checks that its local server is alive
log = logging.getLogger(__name__)
# A local server abandons a batch (error reply) before this client would time out and
# resend the same deterministic batch: its --max-wall-s is this fraction of timeout_s.
LOCAL_WALL_FRACTION = 0.9


class Ns3Error(RuntimeError):
    """The ns-3 backend could not produce a result (server error, timeout, no ns-3)."""


_NO_WHEEL = (
    "network=ns3 needs the ns-3 wheel to start a local server, and it is not installed in "
    "this environment. On Linux x86-64: `pip install 'cosim[ns3]'`. The wheel exists for "
    "Linux x86-64 only: elsewhere (macOS, aarch64) run `cosim-ns3-server --endpoint "
    "tcp://0.0.0.0:5555 --keys DIR` on a Linux x86-64 host and set "
    "network.ns3.endpoints=[tcp://HOST:5555] and network.ns3.curve (docs/ns3.md, "
    "Authentication), or use network=analytical."
)


@dataclass
class _Settings:
    endpoints: list[str] = field(default_factory=list)
    transport: str = "lossless"
    frame_bytes: int = 9000
    timeout_s: float = 600.0
    retries: int = 2
    max_batch_flows: int = 1_000_000
    start_timeout_s: float = 60.0
    connect_timeout_s: float = 20.0
    curve: object = None  # network.ns3.curve: {server_public_key, client_secret_key} (files)

    @classmethod
    def of(cls, cfg) -> _Settings:
        s = cls()
        if cfg is None:
            return s
        for name in s.__dataclass_fields__:
            v = cfg.get(name, None) if isinstance(cfg, dict) else getattr(cfg, name, None)
            if v is not None:
                setattr(s, name, list(v) if name == "endpoints" else v)
        return s


@dataclass(frozen=True)
class CurveKeys:
    """A client's CurveZMQ keys (Z85): the server's public key and the client's pair."""

    server_public: bytes
    public: bytes
    secret: bytes
    public_file: str  # what the server must hold in its authorized/ folder


def _field(cfg, name: str):
    return cfg.get(name) if isinstance(cfg, dict) else getattr(cfg, name, None)


def curve_keys(curve, prefix: str = "network.ns3.curve") -> CurveKeys | None:
    """Keys from network.ns3.curve (None when unset); Ns3Error naming the field otherwise."""
    if curve is None:
        return None
    spk, csk = _field(curve, "server_public_key"), _field(curve, "client_secret_key")
    if spk is None and csk is None:
        return None
    for name, v, other in (("server_public_key", spk, "client_secret_key"),
                           ("client_secret_key", csk, "server_public_key")):
        if v is None:
            raise Ns3Error(f"{prefix}.{name}: must be set together with {prefix}.{other}")
    try:
        server_public = keys.load_public_key(Path(str(spk)).expanduser())
    except keys.KeysError as e:
        raise Ns3Error(f"{prefix}.server_public_key: {e}") from None
    try:
        public, secret = keys.load_key_pair(Path(str(csk)).expanduser())
    except keys.KeysError as e:
        raise Ns3Error(f"{prefix}.client_secret_key: {e}") from None
    public_file = str(Path(str(csk)).expanduser()).removesuffix("_secret")
    return CurveKeys(server_public, public, secret, public_file)


class _LocalServer:
    """A cosim-ns3-server child process on 127.0.0.1 (or an ipc path)."""

    def __init__(self, start_timeout_s: float, max_flows: int, bind: str = "tcp://127.0.0.1:*",
                 max_wall_s: float | None = None):
        if importlib.util.find_spec("ns3") is None:
            raise Ns3Error(_NO_WHEEL)
        cmd = [sys.executable, "-m", "cosim.network.ns3.server.main", "--endpoint", bind,
               "--parent-pid", str(os.getpid()), "--max-flows", str(int(max_flows))]
        if max_wall_s is not None:
            cmd += ["--max-wall-s", repr(float(max_wall_s))]
        # The child must import this very cosim, wherever it comes from (checkout or install).
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[3])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=None, close_fds=True, env=env)
        try:
            self.endpoint = self._wait_ready(start_timeout_s)
        except BaseException:
            # Nobody holds this object after a failed start: stop the child and close its
            # pipe now (also on Ctrl-C), or it runs on until this process exits.
            self.kill()
            raise

    def _wait_ready(self, timeout_s: float) -> str:
        from cosim.network.ns3.server.main import READY_PREFIX  # no ns-3 import here

        deadline = time.monotonic() + timeout_s
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        buf = b""
        try:
            while b"\n" not in buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    self.kill()
                    raise Ns3Error(f"local ns-3 server gave no readiness line within "
                                   f"{timeout_s} s (network.ns3.start_timeout_s)")
                if sel.select(min(left, 0.5)):
                    chunk = os.read(self.proc.stdout.fileno(), 4096)
                    if not chunk:
                        code = self.proc.wait()
                        hint = f" {_NO_WHEEL}" if code == 3 else ""
                        raise Ns3Error(f"local ns-3 server exited with code {code} before "
                                       f"it was ready (its stderr is above).{hint}")
                    buf += chunk
        finally:
            sel.close()
        line = buf.split(b"\n", 1)[0].decode(errors="replace")
        if not line.startswith(READY_PREFIX) or "endpoint=" not in line:
            self.kill()
            raise Ns3Error(f"unexpected first line from the ns-3 server: {line!r}")
        return line.split("endpoint=", 1)[1].split()[0]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

    def stop(self, grace_s: float = 5.0) -> None:
        """Wait for a clean exit after a shutdown request; then terminate, then kill."""
        try:
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                pass
        self.kill()


class _Endpoint:
    """One server: its socket, the topologies it holds, and the local process if ours."""

    def __init__(self, ctx: zmq.Context, address: str | None, start_timeout_s: float,
                 max_flows: int, max_starts: int = 3, timeout_s: float = 600.0,
                 curve: CurveKeys | None = None):
        self.ctx = ctx
        self.curve = curve if address is not None else None  # keys are for remote servers
        self.monitor: zmq.Socket | None = None  # handshake events, with CurveZMQ
        self.max_flows = max_flows
        self.max_wall_s = LOCAL_WALL_FRACTION * timeout_s
        self.local: _LocalServer | None = None
        self.start_timeout_s = start_timeout_s
        self.max_starts = max(1, int(max_starts))  # tries to bring up one local server
        self.fixed_address = address
        self.sock: zmq.Socket | None = None
        self.loaded: set[str] = set()
        self.restarts = 0  # local servers started again after one died or hung
        self.answered = False  # a configured endpoint has replied at least once

    @property
    def address(self) -> str:
        return self.fixed_address or (self.local.endpoint if self.local else "")

    def connect(self) -> None:
        if self.fixed_address is None and (self.local is None or not self.local.alive()):
            if self.local is not None:  # it died between requests: its socket goes too
                self.reset(restart=True, reason=f"exited with code "
                                                f"{self.local.proc.poll()} while idle")
            self._start_local()
        if self.sock is None:
            self.sock = self.ctx.socket(zmq.DEALER)
            self.sock.setsockopt(zmq.LINGER, 0)
            if self.address.startswith("tcp://["):
                self.sock.setsockopt(zmq.IPV6, 1)
            if self.curve is not None:
                self.sock.curve_serverkey = self.curve.server_public
                self.sock.curve_publickey = self.curve.public
                self.sock.curve_secretkey = self.curve.secret
                # Our side's view of the handshake: a refused key is told apart from silence.
                self.monitor = self.sock.get_monitor_socket(
                    zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                    | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL)
            self.sock.connect(self.address)

    def _start_local(self) -> None:
        """Start the local server; one that dies or hangs before its readiness line is
        started again, up to max_starts times in all (each one logged and counted)."""
        for attempt in range(1, self.max_starts + 1):
            try:
                self.local = _LocalServer(self.start_timeout_s, self.max_flows,
                                          max_wall_s=self.max_wall_s)
            except Ns3Error as e:
                if _NO_WHEEL in str(e) or attempt == self.max_starts:
                    raise Ns3Error(f"{e} (started {attempt} time(s); network.ns3.retries "
                                   "bounds the starts)") from None
                self.restarts += 1
                log.warning("ns-3: local server failed to start (%s); starting it again "
                            "(%d of %d)", e, attempt + 1, self.max_starts)
                continue
            self.loaded.clear()
            return

    def handshake_failure(self) -> str | None:
        """'auth' (ZAP refused our key), 'handshake' (other CurveZMQ failure) or None."""
        if self.monitor is None:
            return None
        if not self.monitor.poll(0):
            return None
        event = recv_monitor_message(self.monitor)["event"]
        return "auth" if event == zmq.EVENT_HANDSHAKE_FAILED_AUTH else "handshake"

    def _close_socket(self) -> None:
        if self.monitor is not None:
            self.sock.disable_monitor()
            self.monitor.close(linger=0)
            self.monitor = None
        self.sock.close(linger=0)
        self.sock = None

    def reset(self, restart: bool, reason: str = "") -> None:
        """Drop the socket (stale replies die with it); restart a local server if asked."""
        if self.sock is not None:
            self._close_socket()
        if restart and self.local is not None:
            self.local.kill()
            self.local = None
            self.restarts += 1
            log.warning("ns-3: local server %s; restarting it (restart %d of this run)",
                        reason or "failed", self.restarts)
        self.loaded.clear()

    def dead(self) -> bool:
        return self.local is not None and not self.local.alive()

    def close(self) -> None:
        if self.sock is not None and self.local is not None and self.local.alive():
            try:
                self.sock.send_multipart(wire.encode("shutdown", request_id="close"))
                if self.sock.poll(2000):
                    self.sock.recv_multipart()
            except zmq.ZMQError:
                pass
        if self.sock is not None:
            self._close_socket()
        if self.local is not None:
            self.local.stop()
            self.local = None


class Ns3Backend:
    """Packet-level network backend: flows in, per-flow last-byte times out (via ns-3).

    Use it from one thread (the one that created it): a local server is tied to the thread
    that started it (PR_SET_PDEATHSIG fires when that thread ends).
    """

    name = "ns3"

    def __init__(self, graph, ns3_cfg=None):
        """`graph`: a cosim.network.fabric.FabricGraph; `ns3_cfg`: the network.ns3 config."""
        self.graph = graph
        self.cfg = _Settings.of(ns3_cfg)
        if not 64 <= int(self.cfg.frame_bytes) <= wire.MAX_FRAME_BYTES:
            raise ValueError(f"network.ns3.frame_bytes={self.cfg.frame_bytes} is outside "
                             f"[64, {wire.MAX_FRAME_BYTES}]")
        if self.cfg.transport not in wire.TRANSPORTS:
            raise ValueError(f"network.ns3.transport={self.cfg.transport!r} is not one of "
                             f"{list(wire.TRANSPORTS)}")
        self._topology = topology_arrays(graph)
        self.digest = wire.topology_digest(graph.num_nodes, graph.num_gpus, *self._topology)
        self._curve = curve_keys(self.cfg.curve)
        if self._curve is not None and not self.cfg.endpoints:
            raise Ns3Error("network.ns3.curve: keys are for servers in network.ns3.endpoints, "
                           "and none is set (the local server needs none)")
        self._ctx = zmq.Context()
        addresses = list(self.cfg.endpoints) or [None]
        self._endpoints = [_Endpoint(self._ctx, a, self.cfg.start_timeout_s,
                                     self.cfg.max_batch_flows, int(self.cfg.retries) + 1,
                                     self.cfg.timeout_s, self._curve)
                           for a in addresses]
        self._next_id = 0
        self._closed = False
        self._after_send = None  # test hook: called with the _Endpoint after each send
        ref = weakref.ref(self)
        self._atexit = lambda: (b := ref()) is not None and b.close()
        atexit.register(self._atexit)

    # ------------------------------------------------------------------ public API

    def simulate(self, flows: FlowBatch) -> FlowResult:
        """Completion time of each flow's last byte (same origin as flows.start)."""
        return self.simulate_many([flows])[0]

    def simulate_many(self, batches: list[FlowBatch]) -> list[FlowResult]:
        """Time independent batches, spread over the endpoints (one in flight per server)."""
        if self._closed:
            raise Ns3Error("the ns-3 backend is closed")
        prepared = [self._prepare(b) for b in batches]
        results: list[FlowResult | None] = [None] * len(batches)
        todo = [i for i, p in enumerate(prepared) if p[1] is not None]
        for i, p in enumerate(prepared):
            if p[1] is None:
                results[i] = self._local_result(p)
        attempts = dict.fromkeys(todo, 0)
        inflight: dict[int, tuple[int, object, float, float]] = {}  # ep -> (batch, id, ...)
        while todo or inflight:
            for e, ep in enumerate(self._endpoints):
                if e in inflight or not todo:
                    continue
                i = todo.pop(0)
                rid = self._send_simulate(ep, prepared[i])
                inflight[e] = (i, rid, time.monotonic() + self.cfg.timeout_s, time.perf_counter())
            for e in list(inflight):
                ep = self._endpoints[e]
                i, rid, deadline, t_sent = inflight[e]
                frames = self._poll_reply(ep, rid)
                failed = None
                if frames is not None:
                    msg = wire.decode(frames, reply=True)
                    del inflight[e]
                    if msg.header["ok"]:
                        results[i] = self._result(prepared[i], msg, ep, t_sent)
                        continue
                    err = msg.header.get("error", "")
                    if "unknown topology" in err:  # the server lost it (restarted by hand)
                        ep.loaded.discard(self.digest)
                        failed = "topology"
                    else:
                        raise Ns3Error(f"ns-3 server {ep.address}: {err}")
                elif ep.dead():
                    del inflight[e]
                    failed = "dead"
                    ep.reset(restart=True, reason=f"exited with code "
                                                  f"{ep.local.proc.poll()} during a batch")
                elif time.monotonic() > deadline:
                    del inflight[e]
                    failed = "timeout"
                    ep.reset(restart=ep.local is not None,
                             reason=f"gave no reply within {self.cfg.timeout_s:g} s "
                                    "(network.ns3.timeout_s)")
                if failed:
                    attempts[i] += 1
                    if attempts[i] > self.cfg.retries:
                        raise Ns3Error(f"batch {i}: ns-3 server {ep.address or '(local)'} "
                                       f"failed ({failed}) {attempts[i]} times "
                                       f"(network.ns3.retries={self.cfg.retries})")
                    todo.insert(0, i)
        return results  # type: ignore[return-value]

    def ping(self) -> list[dict]:
        """Each server's facts (version, pid, topologies held, batches served)."""
        out = []
        for ep in self._endpoints:
            ep.connect()
            out.append(self._request(ep, "ping").header["result"])
        return out

    @property
    def restarts(self) -> int:
        """Local servers started again during this backend's life (each one also logged)."""
        return sum(ep.restarts for ep in self._endpoints)

    def server_pids(self) -> list[int]:
        """Process ids of the local servers this backend started (alive or not)."""
        return [ep.local.proc.pid for ep in self._endpoints if ep.local is not None]

    def close(self) -> None:
        """Stop local servers and close sockets. Idempotent; also run at interpreter exit."""
        if self._closed:
            return
        self._closed = True
        for ep in self._endpoints:
            ep.close()
        self._ctx.term()
        atexit.unregister(self._atexit)

    def __del__(self) -> None:
        # A backend dropped without close() must not leave its server running until exit.
        try:
            self.close()
        except Exception:
            pass

    def __enter__(self) -> Ns3Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _prepare(self, flows: FlowBatch):
        n = len(flows)
        if n > self.cfg.max_batch_flows:
            raise Ns3Error(f"batch of {n} flows exceeds network.ns3.max_batch_flows="
                           f"{self.cfg.max_batch_flows}")
        size = np.asarray(flows.size, dtype=np.int64)
        start = np.asarray(flows.start, dtype=np.float64)
        # Flows that need no network (nothing to send, or to itself) finish at their start.
        net = np.nonzero((size != 0) & (flows.src != flows.dst))[0]
        if net.size == 0:
            return (flows, None)
        src = np.ascontiguousarray(flows.src[net], dtype=np.int32)
        dst = np.ascontiguousarray(flows.dst[net], dtype=np.int32)
        if np.any((src < 0) | (src >= self.graph.num_gpus) | (dst < 0)
                  | (dst >= self.graph.num_gpus)):
            # Routing would fail on them; let the server's validation name the flow.
            indptr, links = np.zeros(len(net) + 1, np.int64), np.zeros(0, np.int32)
        else:
            indptr, links = self.graph.routes(src, dst)
        arrays = {"src": src, "dst": dst, "size": size[net],
                  "start_s": np.ascontiguousarray(start[net]),
                  "route_indptr": np.asarray(indptr, dtype=np.int64),
                  "route_links": np.asarray(links, dtype=np.int32)}
        return (flows, net, arrays)

    def _local_result(self, prepared) -> FlowResult:
        flows = prepared[0]
        return FlowResult(finish=np.asarray(flows.start, dtype=np.float64).copy(),
                          stats={"backend": "ns3", "events": 0, "packet_hops": 0,
                                 "wall_s": 0.0, "flows_simulated": 0})

    def _result(self, prepared, msg: wire.Message, ep: _Endpoint, t_sent: float) -> FlowResult:
        flows, net, _ = prepared
        finish = np.asarray(flows.start, dtype=np.float64).copy()
        got = msg.arrays["finish_s"]
        if got.shape[0] != net.shape[0]:
            raise Ns3Error(f"server returned {got.shape[0]} finish times for "
                           f"{net.shape[0]} flows")
        finish[net] = got
        try:
            check_finish(flows, finish, f"ns3 ({ep.address})")
        except InvalidResult as e:
            raise Ns3Error(str(e)) from None
        r = msg.header["result"]
        stats = {"backend": "ns3", "transport": self.cfg.transport,
                 "frame_bytes": self.cfg.frame_bytes, "events": r.get("events", 0),
                 "packet_hops": r.get("packet_hops", 0), "wall_s": r.get("wall_s", 0.0),
                 "rtt_s": time.perf_counter() - t_sent, "flows_simulated": int(net.shape[0]),
                 "server": ep.address, "restarts": ep.restarts}
        return FlowResult(finish=finish, stats=stats)

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _ensure_topology(self, ep: _Endpoint) -> None:
        ep.connect()
        if self.digest in ep.loaded:
            return
        src, dst, bps, lat = self._topology
        msg = self._request(ep, "load_topology", topology=self.digest,
                            params={"num_nodes": int(self.graph.num_nodes),
                                    "num_gpus": int(self.graph.num_gpus)},
                            arrays={"link_src": src, "link_dst": dst, "link_bps": bps,
                                    "link_latency_ps": lat})
        if msg.header["result"].get("topology") != self.digest:
            raise Ns3Error("server built a different topology digest")
        ep.loaded.add(self.digest)

    def _request(self, ep: _Endpoint, kind: str, **kw) -> wire.Message:
        """A synchronous request with the usual timeout, restart and retry handling."""
        first_contact = ep.fixed_address is not None and not ep.answered
        per_try = max(self.cfg.timeout_s, self.cfg.start_timeout_s)
        if first_contact:
            per_try = min(per_try, self.cfg.connect_timeout_s / (self.cfg.retries + 1))
        for _ in range(self.cfg.retries + 1):
            ep.connect()
            rid = self._new_id()
            ep.sock.send_multipart(wire.encode(kind, request_id=rid, **kw), copy=False)
            deadline = time.monotonic() + per_try
            while time.monotonic() < deadline:
                frames = self._poll_reply(ep, rid)
                if frames is not None:
                    ep.answered = True
                    msg = wire.decode(frames, reply=True)
                    if not msg.header["ok"]:
                        raise Ns3Error(f"ns-3 server {ep.address}: {msg.header.get('error')}")
                    return msg
                if ep.dead():
                    break
                if first_contact:
                    self._check_handshake(ep)
            ep.reset(restart=ep.local is not None,
                     reason=f"did not answer {kind}" + (f" (exit code {ep.local.proc.poll()})"
                                                        if ep.dead() else ""))
        if first_contact:
            keys_hint = "" if ep.curve is None else (
                f"; with CurveZMQ also that it runs with --keys, holds {ep.curve.public_file} "
                "in its authorized/ folder and that network.ns3.curve.server_public_key is "
                "its server.key")
            raise Ns3Error(f"ns-3 server {ep.address} did not answer within "
                           f"{self.cfg.connect_timeout_s:g} s: check that cosim-ns3-server "
                           "runs there and the address and port are reachable "
                           f"(network.ns3.endpoints, network.ns3.connect_timeout_s){keys_hint}")
        raise Ns3Error(f"ns-3 server {ep.address or '(local)'}: no reply to {kind} after "
                       f"{self.cfg.retries + 1} tries")

    def _check_handshake(self, ep: _Endpoint) -> None:
        """Fail at once, saying which key to fix, when the CurveZMQ handshake is refused."""
        failure = ep.handshake_failure()
        if failure == "auth":
            raise Ns3Error(f"ns-3 server {ep.address} refused this client's CurveZMQ key: copy "
                           f"{ep.curve.public_file} into the server's --keys DIR/authorized/ "
                           "and restart it (network.ns3.curve.client_secret_key)")
        if failure == "handshake":
            raise Ns3Error(f"ns-3 server {ep.address}: CurveZMQ handshake failed: "
                           "network.ns3.curve.server_public_key must be that server's "
                           "DIR/server.key, and the server must run with --keys")

    def _send_simulate(self, ep: _Endpoint, prepared) -> int:
        self._ensure_topology(ep)
        rid = self._new_id()
        ep.sock.send_multipart(
            wire.encode("simulate", request_id=rid, topology=self.digest,
                        params={"transport": self.cfg.transport,
                                "frame_bytes": int(self.cfg.frame_bytes)},
                        arrays=prepared[2]), copy=False)
        if self._after_send is not None:
            self._after_send(ep)
        return rid

    def _poll_reply(self, ep: _Endpoint, rid) -> list | None:
        """The reply to `rid` if it arrives within one poll slice (stale replies dropped)."""
        if ep.sock is None:
            return None
        if not ep.sock.poll(int(_POLL_S * 1000 / max(1, len(self._endpoints)))):
            return None
        while True:
            frames = ep.sock.recv_multipart(copy=False)
            if wire.request_id_of(frames) == rid:
                return frames
            if not ep.sock.poll(0):
                return None


def topology_arrays(graph) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Link arrays as the server takes them: integer bit/s and integer picoseconds.

    Rates are the graph's achievable rates (line rate x link efficiency), the same
    capacities the analytical backend shares out, so the two backends differ only in how
    they model the sharing (packets and queues against a fluid max-min allocation).
    """
    cap = getattr(graph, "link_capacity_bps", None)
    bps = np.asarray(cap if cap is not None else graph.link_bps * graph.link_efficiency,
                     dtype=np.float64)
    if not np.all(np.isfinite(bps)) or np.any(bps <= 0):
        bad = int(np.nonzero(~np.isfinite(bps) | (bps <= 0))[0][0])
        raise ValueError(f"link {bad} of topology {graph.name!r} has rate {bps[bad]} bit/s")
    lat = np.asarray(graph.link_latency_s, dtype=np.float64)
    if not np.all(np.isfinite(lat)) or np.any(lat < 0):
        bad = int(np.nonzero(~np.isfinite(lat) | (lat < 0))[0][0])
        raise ValueError(f"link {bad} of topology {graph.name!r} has latency {lat[bad]} s")
    return (np.ascontiguousarray(graph.link_src, dtype=np.int32),
            np.ascontiguousarray(graph.link_dst, dtype=np.int32),
            np.rint(bps).astype(np.uint64), np.rint(lat * 1e12).astype(np.int64))
