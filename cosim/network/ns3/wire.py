"""Wire protocol between the orchestrator and `cosim-ns3-server` (ZeroMQ multipart).

A message is a multipart ZeroMQ message: frame 0 is a UTF-8 JSON header, frames 1..k are
raw little-endian arrays described by the header's `arrays` list, in order::

    {"v": 1, "id": 7, "kind": "simulate", "topology": "3f2a...", "params": {...},
     "arrays": [{"name": "src", "dtype": "<i4", "shape": [4032]}, ...]}

No pickle, nothing executable: arrays are rebuilt with `np.frombuffer` after their dtype,
shape and byte count are checked against a fixed schema per kind. Every size is bounded.
Replies have kind "reply" with `ok` true (and `result`, arrays) or false (and `error`).
This module is pure (numpy and json only): the server, the client and the tests share it.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field

import numpy as np

PROTOCOL_VERSION = 1
KINDS = ("load_topology", "simulate", "ping", "shutdown")

# Bounds (bytes or counts). The server may lower the flow bound (--max-flows).
MAX_HEADER_BYTES = 64 * 1024
MAX_JSON_DEPTH = 8  # headers nest 3 deep; deeper JSON is refused before it is parsed
MAX_NUMBER_CHARS = 24  # int64 has 19 digits; longer literals are refused, not parsed
MAX_ID_CHARS = 128  # a request id is echoed in the reply: keep it short
MAX_REPLY_ERROR_CHARS = 2000
MAX_FRAMES = 16
MAX_FLOWS = 2_000_000
MAX_NODES = 1_000_000
MAX_LINKS = 4_000_000
MAX_ROUTE_HOPS = 64
MAX_FLOW_BYTES = 1 << 50  # 1 PiB per flow: keeps packet counts far from int64 overflow
MAX_START_S = 1.0e3  # flows start within this many seconds of the batch start
MIN_LINK_BPS = 1_000  # ns-3 DataRate is an integer bit/s; sub-kbit/s links are typos
MAX_LINK_BPS = 10**16  # 10 Pbit/s
MAX_LINK_LATENCY_PS = 10**12  # 1 s
MIN_FRAME_BYTES = 64
MAX_FRAME_BYTES = 65535  # PointToPointNetDevice Mtu is a uint16: 65536 aborts ns-3
TRANSPORTS = ("lossless", "dctcp", "tcp")
MAX_BUDGET_EVENTS = 1 << 62  # a request's own event budget (params.max_events)
MAX_BUDGET_WALL_S = 1.0e6  # and wall budget (params.max_wall_s); the server's bounds win

# Array schema per request kind: name -> (dtype, role). Roles fix the expected length.
_SCHEMA: dict[str, dict[str, str]] = {
    "load_topology": {"link_src": "<i4", "link_dst": "<i4", "link_bps": "<u8",
                      "link_latency_ps": "<i8"},
    "simulate": {"src": "<i4", "dst": "<i4", "size": "<i8", "start_s": "<f8",
                 "route_indptr": "<i8", "route_links": "<i4"},
    "ping": {},
    "shutdown": {},
}
_REPLY_SCHEMA = {"finish_s": "<f8"}


class WireError(ValueError):
    """A message that breaks the protocol; the text is sent back as the error reply."""


@dataclass
class Message:
    """A decoded message: the JSON header and its arrays by name."""

    header: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.header["kind"]

    @property
    def id(self):
        return self.header.get("id")

    @property
    def params(self) -> dict:
        return self.header.get("params") or {}


def encode(kind: str, *, request_id=None, topology: str | None = None,
           params: dict | None = None, arrays: dict[str, np.ndarray] | None = None,
           extra: dict | None = None) -> list:
    """Frames (header bytes, then each array's buffer) of one message."""
    arrays = arrays or {}
    header: dict = {"v": PROTOCOL_VERSION, "id": request_id, "kind": kind}
    if topology is not None:
        header["topology"] = topology
    if params:
        header["params"] = params
    if extra:
        header.update(extra)
    descs, frames = [], []
    for name, a in arrays.items():
        a = np.ascontiguousarray(a)
        dt = a.dtype.newbyteorder("<") if a.dtype.byteorder == ">" else a.dtype
        a = a.astype(dt, copy=False)
        descs.append({"name": name, "dtype": dt.str, "shape": list(a.shape)})
        frames.append(memoryview(a).cast("B") if a.size else b"")
    header["arrays"] = descs
    hb = json.dumps(header, separators=(",", ":"), allow_nan=False).encode()
    if len(hb) > MAX_HEADER_BYTES:
        raise WireError(f"header of {len(hb)} bytes exceeds {MAX_HEADER_BYTES}")
    return [hb, *frames]


def reply_ok(request_id, result: dict | None = None,
             arrays: dict[str, np.ndarray] | None = None) -> list:
    return encode("reply", request_id=request_id, arrays=arrays,
                  extra={"ok": True, "result": result or {}})


def reply_error(request_id, message: str) -> list:
    """An error reply that always fits the header bound (never raises)."""
    if not _valid_id(request_id):
        request_id = None
    try:
        return encode("reply", request_id=request_id,
                      extra={"ok": False, "error": str(message)[:MAX_REPLY_ERROR_CHARS]})
    except Exception:  # noqa: BLE001 - the last resort must not fail
        return [FALLBACK_ERROR]


FALLBACK_ERROR = json.dumps({"v": PROTOCOL_VERSION, "id": None, "kind": "reply", "ok": False,
                             "error": "server error while reporting an error",
                             "arrays": []}).encode()


def _valid_id(rid) -> bool:
    if rid is None:
        return True
    if isinstance(rid, bool):
        return False
    if isinstance(rid, int):
        return -(1 << 63) <= rid < (1 << 63)
    return isinstance(rid, str) and len(rid) <= MAX_ID_CHARS


def _parse_header(frame) -> dict:
    b = bytes(frame)
    if len(b) > MAX_HEADER_BYTES:
        raise WireError(f"header of {len(b)} bytes exceeds {MAX_HEADER_BYTES}")
    try:
        text = b.decode("utf-8")
    except UnicodeDecodeError as e:
        raise WireError(f"header is not UTF-8 JSON: {e}") from None
    depth = json_depth(text)
    if depth > MAX_JSON_DEPTH:
        raise WireError(f"header nests {depth} levels deep, more than {MAX_JSON_DEPTH}")
    try:
        h = json.loads(text, parse_constant=_reject_constant, parse_int=_bounded_int,
                       parse_float=_bounded_float)
    except json.JSONDecodeError as e:
        raise WireError(f"header is not JSON: {e}") from None
    except RecursionError:  # belt and braces: json_depth should have caught it
        raise WireError("header nests too deep") from None
    if not isinstance(h, dict):
        raise WireError("header is not a JSON object")
    return h


_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')


def json_depth(text: str) -> int:
    """Deepest nesting of [ and { in JSON text, strings ignored (linear, no recursion)."""
    skeleton = _STRINGS.sub("", text)
    opens = np.frombuffer(skeleton.encode("utf-8", "replace"), dtype=np.uint8)
    step = np.zeros(opens.shape[0], dtype=np.int64)
    step[(opens == ord("[")) | (opens == ord("{"))] = 1
    step[(opens == ord("]")) | (opens == ord("}"))] = -1
    return int(np.cumsum(step).max()) if step.size else 0


def _bounded_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise WireError(f"header holds an integer of {len(literal)} characters "
                        f"(more than {MAX_NUMBER_CHARS})")
    return int(literal)


def _bounded_float(literal: str) -> float:
    if len(literal) > 2 * MAX_NUMBER_CHARS:
        raise WireError(f"header holds a number of {len(literal)} characters")
    v = float(literal)
    if not math.isfinite(v):
        raise WireError(f"header holds the non-finite number {literal[:32]}")
    return v


def _reject_constant(name: str):
    raise WireError(f"header holds the non-JSON constant {name}")


def request_id_of(frames: list):
    """Best-effort request id of a (possibly malformed) message, for the error reply."""
    try:
        rid = _parse_header(frames[0]).get("id")
    except (WireError, IndexError):
        return None
    return rid if rid is not None and _valid_id(rid) else None


def decode(frames: list, *, reply: bool = False) -> Message:
    """Check and decode a multipart message; raises WireError saying what is wrong."""
    if not frames:
        raise WireError("empty message")
    if len(frames) > MAX_FRAMES:
        raise WireError(f"{len(frames)} frames exceed the limit of {MAX_FRAMES}")
    h = _parse_header(frames[0])
    v = h.get("v")
    if type(v) is not int or v != PROTOCOL_VERSION:
        raise WireError(f"protocol version {v!r} is not supported (server speaks "
                        f"{PROTOCOL_VERSION})")
    kind = h.get("kind")
    if reply:
        if kind != "reply" or not isinstance(h.get("ok"), bool):
            raise WireError("not a reply")
        schema = _REPLY_SCHEMA
    else:
        if kind not in KINDS:
            raise WireError(f"kind {kind!r} is not one of {list(KINDS)}")
        schema = _SCHEMA[kind]
    rid = h.get("id")
    if not _valid_id(rid):
        raise WireError(f"id must be an int64 or a string of at most {MAX_ID_CHARS} characters")
    if "params" in h and not isinstance(h["params"], dict):
        raise WireError("params must be a JSON object")
    descs = h.get("arrays", [])
    if not isinstance(descs, list):
        raise WireError("arrays must be a list")
    if len(descs) != len(frames) - 1:
        raise WireError(f"header announces {len(descs)} arrays but {len(frames) - 1} frames "
                        "follow (truncated or extra frames)")
    arrays: dict[str, np.ndarray] = {}
    for desc, frame in zip(descs, frames[1:], strict=True):
        if not isinstance(desc, dict):
            raise WireError("array descriptor is not an object")
        name, dtype, shape = desc.get("name"), desc.get("dtype"), desc.get("shape")
        if name not in schema:
            raise WireError(f"unexpected array {name!r} for kind {kind!r} "
                            f"(expected {sorted(schema)})")
        if name in arrays:
            raise WireError(f"array {name!r} given twice")
        if dtype != schema[name]:
            raise WireError(f"array {name!r} has dtype {dtype!r}, expected {schema[name]!r}")
        if (not isinstance(shape, list) or len(shape) != 1 or not isinstance(shape[0], int)
                or isinstance(shape[0], bool) or not 0 <= shape[0] <= 1 << 40):
            raise WireError(f"array {name!r} shape must be [n] with n >= 0, got {shape!r}")
        dt = np.dtype(dtype)
        nbytes = shape[0] * dt.itemsize
        buf = frame.buffer if hasattr(frame, "buffer") else frame  # zmq.Frame or bytes
        if len(buf) != nbytes:
            raise WireError(f"array {name!r}: frame has {len(buf)} bytes, shape {shape} "
                            f"needs {nbytes} (truncated frame?)")
        arrays[name] = np.frombuffer(buf, dtype=dt) if nbytes else np.zeros(0, dt)
    missing = set(schema) - set(arrays)
    if missing and not reply:  # replies carry arrays only on success
        raise WireError(f"kind {kind!r} lacks arrays {sorted(missing)}")
    return Message(header=h, arrays=arrays)


# ---------------------------------------------------------------- content checks


def topology_digest(num_nodes: int, num_gpus: int, link_src, link_dst, link_bps,
                    link_latency_ps) -> str:
    """Digest of exactly what the server builds (recomputed server-side to verify)."""
    h = hashlib.sha256(f"cosim-ns3-v{PROTOCOL_VERSION}:{num_nodes}:{num_gpus}".encode())
    for a, dt in ((link_src, "<i4"), (link_dst, "<i4"), (link_bps, "<u8"),
                  (link_latency_ps, "<i8")):
        h.update(np.ascontiguousarray(a, dtype=dt).tobytes())
    return h.hexdigest()[:24]


def _int_param(p: dict, name: str, lo: int, hi: int) -> int:
    v = p.get(name)
    if isinstance(v, bool) or not isinstance(v, int):
        raise WireError(f"params.{name} must be an integer, got {v!r}")
    if not lo <= v <= hi:
        raise WireError(f"params.{name}={v} is outside [{lo}, {hi}]")
    return v


@dataclass(frozen=True)
class TopologySpec:
    num_nodes: int
    num_gpus: int
    link_src: np.ndarray
    link_dst: np.ndarray
    link_bps: np.ndarray
    link_latency_ps: np.ndarray
    digest: str


def check_topology(msg: Message) -> TopologySpec:
    """Validate a load_topology request so that ns-3 never sees a bad attribute."""
    p = msg.params
    num_nodes = _int_param(p, "num_nodes", 2, MAX_NODES)
    num_gpus = _int_param(p, "num_gpus", 1, num_nodes)
    a = msg.arrays
    n = a["link_src"].shape[0]
    if not 1 <= n <= MAX_LINKS:
        raise WireError(f"link count {n} is outside [1, {MAX_LINKS}]")
    for name in ("link_dst", "link_bps", "link_latency_ps"):
        if a[name].shape[0] != n:
            raise WireError(f"{name} has {a[name].shape[0]} entries, link_src has {n}")
    for name in ("link_src", "link_dst"):
        bad = np.nonzero((a[name] < 0) | (a[name] >= num_nodes))[0]
        if bad.size:
            raise WireError(f"{name}[{bad[0]}]={a[name][bad[0]]} is outside the "
                            f"{num_nodes} nodes")
    loops = np.nonzero(a["link_src"] == a["link_dst"])[0]
    if loops.size:
        raise WireError(f"link {loops[0]} connects node {a['link_src'][loops[0]]} to itself")
    bad = np.nonzero((a["link_bps"] < MIN_LINK_BPS) | (a["link_bps"] > MAX_LINK_BPS))[0]
    if bad.size:
        raise WireError(f"link_bps[{bad[0]}]={a['link_bps'][bad[0]]} is outside "
                        f"[{MIN_LINK_BPS}, {MAX_LINK_BPS}] bit/s")
    lat = a["link_latency_ps"]
    bad = np.nonzero((lat < 0) | (lat > MAX_LINK_LATENCY_PS))[0]
    if bad.size:
        raise WireError(f"link_latency_ps[{bad[0]}]={lat[bad[0]]} is outside "
                        f"[0, {MAX_LINK_LATENCY_PS}]")
    digest = topology_digest(num_nodes, num_gpus, a["link_src"], a["link_dst"],
                             a["link_bps"], lat)
    claimed = msg.header.get("topology")
    if claimed is not None and claimed != digest:
        raise WireError(f"topology digest {claimed!r} does not match the arrays ({digest})")
    return TopologySpec(num_nodes, num_gpus, *(a[k] for k in (
        "link_src", "link_dst", "link_bps", "link_latency_ps")), digest)


def budget_params(p: dict) -> tuple[int | None, float | None]:
    """A simulate request's own budget (`max_events`, `max_wall_s`), None where not given.

    The server takes the smaller of these and its own --max-events / --max-wall-s: a client
    can tighten the budget of its request, never loosen it.
    """
    events = None
    if p.get("max_events") is not None:
        events = _int_param(p, "max_events", 1, MAX_BUDGET_EVENTS)
    wall = p.get("max_wall_s")
    if wall is not None:
        if isinstance(wall, bool) or not isinstance(wall, (int, float)):
            raise WireError(f"params.max_wall_s must be a number, got {wall!r}")
        if not 0 < wall <= MAX_BUDGET_WALL_S:
            raise WireError(f"params.max_wall_s={wall} is outside (0, {MAX_BUDGET_WALL_S:g}]")
        wall = float(wall)
    return events, wall


@dataclass(frozen=True)
class SimulateSpec:
    transport: str
    frame_bytes: int
    src: np.ndarray
    dst: np.ndarray
    size: np.ndarray
    start_s: np.ndarray
    route_indptr: np.ndarray
    route_links: np.ndarray


def check_simulate(msg: Message, topo: TopologySpec, max_flows: int = MAX_FLOWS,
                   max_packets: int = 10**9) -> SimulateSpec:
    """Validate a simulate request against the loaded topology (vectorised)."""
    p = msg.params
    transport = p.get("transport", "lossless")
    if transport not in TRANSPORTS:
        raise WireError(f"params.transport={transport!r} is not one of {list(TRANSPORTS)}")
    frame = _int_param(p, "frame_bytes", MIN_FRAME_BYTES, MAX_FRAME_BYTES)
    a = msg.arrays
    n = a["src"].shape[0]
    if n > max_flows:
        raise WireError(f"batch of {n} flows exceeds the server's limit of {max_flows} "
                        "(split it, or raise --max-flows)")
    for name in ("dst", "size", "start_s"):
        if a[name].shape[0] != n:
            raise WireError(f"{name} has {a[name].shape[0]} entries, src has {n}")
    for name in ("src", "dst"):
        bad = np.nonzero((a[name] < 0) | (a[name] >= topo.num_gpus))[0]
        if bad.size:
            raise WireError(f"{name}[{bad[0]}]={a[name][bad[0]]} is not a GPU of the "
                            f"topology (0..{topo.num_gpus - 1})")
    size, start = a["size"], a["start_s"]
    bad = np.nonzero((size <= 0) | (size > MAX_FLOW_BYTES))[0]
    if bad.size:
        raise WireError(f"size[{bad[0]}]={size[bad[0]]} must be in [1, {MAX_FLOW_BYTES}] bytes")
    bad = np.nonzero(~np.isfinite(start) | (start < 0) | (start > MAX_START_S))[0]
    if bad.size:
        raise WireError(f"start_s[{bad[0]}]={start[bad[0]]} must be finite and in "
                        f"[0, {MAX_START_S}] s")
    payload = frame - 8
    # sizes are bounded above, so this sum cannot overflow (float64 for the total)
    packets = int(np.sum((size + payload - 1) // payload, dtype=np.float64)) if n else 0
    if packets > max_packets:
        raise WireError(f"batch needs {packets} packets, more than the server's limit "
                        f"{max_packets} (use larger frames or split the batch)")
    indptr, links = a["route_indptr"], a["route_links"]
    if indptr.shape[0] != n + 1:
        raise WireError(f"route_indptr has {indptr.shape[0]} entries, expected {n + 1}")
    if n and (indptr[0] != 0 or indptr[-1] != links.shape[0]):
        raise WireError("route_indptr must start at 0 and end at len(route_links)")
    hops = np.diff(indptr)
    bad = np.nonzero((hops < 1) | (hops > MAX_ROUTE_HOPS))[0]
    if bad.size:
        raise WireError(f"flow {bad[0]} has a route of {hops[bad[0]]} links "
                        f"(expected 1..{MAX_ROUTE_HOPS}; src == dst flows need no network)")
    nl = topo.link_src.shape[0]
    bad = np.nonzero((links < 0) | (links >= nl))[0]
    if bad.size:
        raise WireError(f"route_links[{bad[0]}]={links[bad[0]]} is not a link (0..{nl - 1})")
    if n:
        first, last = links[indptr[:-1]], links[indptr[1:] - 1]
        bad = np.nonzero(topo.link_src[first] != a["src"])[0]
        if bad.size:
            raise WireError(f"flow {bad[0]}: route does not start at src {a['src'][bad[0]]}")
        bad = np.nonzero(topo.link_dst[last] != a["dst"])[0]
        if bad.size:
            raise WireError(f"flow {bad[0]}: route does not end at dst {a['dst'][bad[0]]}")
        # Consecutive links of one flow must meet at a node.
        joint = np.ones(links.shape[0], dtype=bool)
        joint[indptr[:-1]] = False  # the first link of each flow has no predecessor
        k = np.nonzero(joint)[0]
        broken = k[topo.link_dst[links[k - 1]] != topo.link_src[links[k]]]
        if broken.size:
            f = int(np.searchsorted(indptr, broken[0], side="right") - 1)
            raise WireError(f"flow {f}: route links {links[broken[0] - 1]} and "
                            f"{links[broken[0]]} do not meet at a node")
        # A route must be a simple path: a revisited node would loop packets for ever.
        flow_of = np.repeat(np.arange(n, dtype=np.int64), hops)
        nodes = np.concatenate([topo.link_src[links].astype(np.int64),
                                a["dst"].astype(np.int64)])
        owner = np.concatenate([flow_of, np.arange(n, dtype=np.int64)])
        order = np.lexsort((nodes, owner))
        dup = np.nonzero((np.diff(owner[order]) == 0) & (np.diff(nodes[order]) == 0))[0]
        if dup.size:
            f = int(owner[order][dup[0]])
            raise WireError(f"flow {f}: route visits node {int(nodes[order][dup[0]])} twice "
                            "(routes must be simple paths)")
    return SimulateSpec(transport, frame, a["src"], a["dst"], size, start, indptr, links)
