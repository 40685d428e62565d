"""Adversarial messages for `cosim-ns3-server`, in named families (seeded, pure numpy/json).

Used by tests/test_ns3_fuzz.py (a bounded run in the suite) and scripts/fuzz_ns3_server.py
(the long run whose figures are in docs/ns3.md). Each family builds one message from a
random generator and a small valid context (a 4-GPU two-level tree: its topology arrays and
a valid batch). `must_fail` families break the protocol on purpose: the server must answer
them with an error reply; the `mutate_*` families may or may not be valid, and only need an
answer. No family may crash or hang the server.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import zmq

from cosim.network.ns3 import wire
from cosim.network.ns3.client import topology_arrays


@dataclass(frozen=True)
class Context(wire.TopologySpec):
    """A valid topology (the server's own TopologySpec) and batches the families start from
    (and break)."""

    routes: Callable  # (src, dst) -> (indptr, links), as FabricGraph.routes

    def topology_arrays(self) -> dict[str, np.ndarray]:
        return {"link_src": self.link_src, "link_dst": self.link_dst,
                "link_bps": self.link_bps, "link_latency_ps": self.link_latency_ps}

    def batch(self, rng: np.random.Generator, n: int | None = None) -> dict[str, np.ndarray]:
        """A valid random batch of n flows between distinct GPUs."""
        n = int(rng.integers(1, 9)) if n is None else n
        src = rng.integers(0, self.num_gpus, n).astype(np.int32)
        dst = ((src + rng.integers(1, self.num_gpus, n)) % self.num_gpus).astype(np.int32)
        indptr, links = self.routes(src, dst)
        return {"src": src, "dst": dst,
                "size": rng.integers(1, 200_000, n).astype(np.int64),
                "start_s": np.round(rng.random(n) * 1e-5, 9),
                "route_indptr": np.asarray(indptr, np.int64),
                "route_links": np.asarray(links, np.int32)}


def context_of(graph) -> Context:
    """The fuzz context of a cosim FabricGraph (tests/ns3_graphs.py builds small ones)."""
    src, dst, bps, lat = topology_arrays(graph)
    digest = wire.topology_digest(graph.num_nodes, graph.num_gpus, src, dst, bps, lat)
    return Context(int(graph.num_nodes), int(graph.num_gpus), src, dst, bps, lat, digest,
                   graph.routes)


PARAMS = {"transport": "lossless", "frame_bytes": 9000}


def valid_simulate(ctx: Context, rng: np.random.Generator, rid=1) -> list:
    return _frames(wire.encode("simulate", request_id=rid, topology=ctx.digest,
                               params=dict(PARAMS), arrays=ctx.batch(rng)))


def load_topology(ctx: Context, rid="load") -> list:
    return _frames(wire.encode("load_topology", request_id=rid, topology=ctx.digest,
                               params={"num_nodes": ctx.num_nodes, "num_gpus": ctx.num_gpus},
                               arrays=ctx.topology_arrays()))


def _frames(frames: list) -> list[bytes]:
    return [bytes(f) for f in frames]


def _header(frames: list[bytes]) -> dict:
    return json.loads(frames[0])


def _with_header(frames: list[bytes], h: dict) -> list[bytes]:
    return [json.dumps(h).encode(), *frames[1:]]


def _sim(ctx, rng, rid, params=None, **over) -> list[bytes]:
    arrays = ctx.batch(rng)
    arrays.update(over)
    return _frames(wire.encode("simulate", request_id=rid, topology=ctx.digest,
                               params=params or dict(PARAMS), arrays=arrays))


def _topo(ctx, rid, params=None, **over) -> list[bytes]:
    arrays = ctx.topology_arrays()
    arrays.update(over)
    return _frames(wire.encode("load_topology", request_id=rid,
                               params=params or {"num_nodes": ctx.num_nodes,
                                                 "num_gpus": ctx.num_gpus},
                               arrays=arrays))


def _pick(rng, xs):
    return xs[int(rng.integers(0, len(xs)))]


# ------------------------------------------------------------------ families
# Each: (ctx, rng, rid) -> frames. Registered with must_fail True or False.

FAMILIES: dict[str, tuple[Callable, bool]] = {}


def family(must_fail: bool = True):
    def deco(fn):
        FAMILIES[fn.__name__] = (fn, must_fail)
        return fn
    return deco


@family()
def empty_message(ctx, rng, rid):
    return []


@family()
def too_many_frames(ctx, rng, rid):
    return [b'{"v":1,"kind":"ping"}'] + [b"x"] * int(rng.integers(17, 64))


@family()
def random_bytes_header(ctx, rng, rid):
    return [bytes(rng.integers(0, 256, int(rng.integers(1, 512)), dtype=np.uint8))]


@family()
def non_utf8_header(ctx, rng, rid):
    return [b'{"v":1,"id":"\xff\xfe","kind":"ping","arrays":[]}']


@family()
def header_not_object(ctx, rng, rid):
    return [_pick(rng, [b"[1,2]", b"7", b'"ping"', b"null", b"true"])]


@family()
def deep_nesting(ctx, rng, rid):
    d = int(rng.integers(wire.MAX_JSON_DEPTH + 1, 20_000))
    opener, closer = _pick(rng, [("[", "]"), ('{"a":', "}")])
    return [('{"v":1,"kind":"ping","id":1,"params":' + opener * d + "1" + closer * d
             + "}").encode()]


@family()
def huge_integer_id(ctx, rng, rid):
    return [('{"v":1,"kind":"ping","id":' + "9" * int(rng.integers(25, 6000)) + "}").encode()]


@family()
def huge_integer_param(ctx, rng, rid):
    h = _header(_sim(ctx, rng, rid))
    text = json.dumps(h).replace('"frame_bytes": 9000',
                                 '"frame_bytes": ' + "1" * int(rng.integers(25, 6000)))
    return [text.encode(), *_sim(ctx, rng, rid)[1:]]


@family()
def long_unicode_id(ctx, rng, rid):
    n = int(rng.integers(wire.MAX_ID_CHARS + 1, 20_000))
    return [json.dumps({"v": 1, "kind": "ping", "id": "é" * n}).encode()]


@family()
def id_of_wrong_type(ctx, rng, rid):
    return [json.dumps({"v": 1, "kind": "ping", "id": _pick(rng, [True, 1.5, [1], {"a": 1},
                                                                   2**70])}).encode()]


@family()
def wrong_version(ctx, rng, rid):
    return [json.dumps({"v": _pick(rng, [0, 2, "1", None, 1.0]), "kind": "ping",
                        "id": rid}).encode()]


@family()
def unknown_kind(ctx, rng, rid):
    return [json.dumps({"v": 1, "kind": _pick(rng, ["pickle", "", None, 3, "__init__",
                                                    "_ping", "handle"]),
                        "id": rid}).encode()]


@family()
def nonfinite_constant(ctx, rng, rid):
    return [b'{"v":1,"kind":"ping","id":1,"params":{"x":' + _pick(
        rng, [b"NaN", b"Infinity", b"-Infinity"]) + b"}}"]


@family()
def overflowing_float(ctx, rng, rid):
    return [b'{"v":1,"kind":"ping","id":1,"params":{"x":1e' + str(
        int(rng.integers(309, 99999))).encode() + b"}}"]


@family()
def oversized_header(ctx, rng, rid):
    return [json.dumps({"v": 1, "kind": "ping", "id": rid,
                        "pad": "x" * (wire.MAX_HEADER_BYTES + 1)}).encode()]


@family()
def params_not_object(ctx, rng, rid):
    f = _sim(ctx, rng, rid)
    h = _header(f)
    h["params"] = _pick(rng, [[1], "lossless", 7])
    return _with_header(f, h)


@family()
def arrays_not_list(ctx, rng, rid):
    f = _sim(ctx, rng, rid)
    h = _header(f)
    h["arrays"] = {"src": 1}
    return _with_header(f, h)


@family()
def descriptor_not_object(ctx, rng, rid):
    f = _sim(ctx, rng, rid)
    h = _header(f)
    h["arrays"][int(rng.integers(0, 6))] = "src"
    return _with_header(f, h)


@family()
def extra_frame(ctx, rng, rid):
    return [*_sim(ctx, rng, rid), b"\x00" * int(rng.integers(0, 64))]


@family()
def missing_frame(ctx, rng, rid):
    f = _sim(ctx, rng, rid)
    del f[int(rng.integers(1, len(f)))]
    return f


@family()
def truncated_frame(ctx, rng, rid):
    f = _sim(ctx, rng, rid)
    k = int(rng.integers(1, len(f)))
    f[k] = f[k][:-int(rng.integers(1, 4))] if len(f[k]) > 3 else f[k] + b"\x00"
    return f


@family()
def wrong_dtype(ctx, rng, rid):
    f = _sim(ctx, rng, rid)
    h = _header(f)
    d = h["arrays"][int(rng.integers(0, 6))]
    d["dtype"] = _pick(rng, ["<f4", ">i8", "|O", "<U4", "object", "<c16"])
    return _with_header(f, h)


@family()
def bad_shape(ctx, rng, rid):
    f = _sim(ctx, rng, rid)
    h = _header(f)
    d = h["arrays"][int(rng.integers(0, 6))]
    d["shape"] = _pick(rng, [[-1], [True], [2, 2], [], "4", [2**62], [1.5], None])
    return _with_header(f, h)


@family()
def unknown_array(ctx, rng, rid):
    f = _sim(ctx, rng, rid)
    h = _header(f)
    h["arrays"][0]["name"] = _pick(rng, ["__class__", "srcs", "", None, 1])
    return _with_header(f, h)


@family()
def duplicate_array(ctx, rng, rid):
    f = _sim(ctx, rng, rid)
    h = _header(f)
    h["arrays"][1] = dict(h["arrays"][0])
    return _with_header([f[0], f[1], f[1], *f[3:]], h)


@family()
def topology_bad_counts(ctx, rng, rid):
    return _topo(ctx, rid, params=_pick(rng, [
        {"num_nodes": 1, "num_gpus": 1}, {"num_nodes": wire.MAX_NODES + 1, "num_gpus": 2},
        {"num_nodes": ctx.num_nodes, "num_gpus": ctx.num_nodes + 1},
        {"num_nodes": "7", "num_gpus": 2}, {"num_nodes": True, "num_gpus": 2},
        {"num_gpus": 2}, {"num_nodes": 2.5, "num_gpus": 2}]))


@family()
def topology_link_outside(ctx, rng, rid):
    s = ctx.link_src.copy()
    s[int(rng.integers(0, s.size))] = _pick(rng, [-1, ctx.num_nodes, 2**31 - 1])
    return _topo(ctx, rid, link_src=s)


@family()
def topology_self_loop(ctx, rng, rid):
    d = ctx.link_dst.copy()
    k = int(rng.integers(0, d.size))
    d[k] = ctx.link_src[k]
    return _topo(ctx, rid, link_dst=d)


@family()
def topology_bad_rate(ctx, rng, rid):
    b = ctx.link_bps.copy()
    b[int(rng.integers(0, b.size))] = _pick(rng, [0, 1, wire.MAX_LINK_BPS + 1, 2**64 - 1])
    return _topo(ctx, rid, link_bps=b)


@family()
def topology_bad_latency(ctx, rng, rid):
    lat = ctx.link_latency_ps.copy()
    lat[int(rng.integers(0, lat.size))] = _pick(rng, [-1, wire.MAX_LINK_LATENCY_PS + 1,
                                                      -(2**63)])
    return _topo(ctx, rid, link_latency_ps=lat)


@family()
def topology_length_mismatch(ctx, rng, rid):
    return _topo(ctx, rid, link_bps=ctx.link_bps[:-1])


@family()
def topology_no_links(ctx, rng, rid):
    e = np.zeros(0, np.int32)
    return _topo(ctx, rid, link_src=e, link_dst=e, link_bps=np.zeros(0, np.uint64),
                 link_latency_ps=np.zeros(0, np.int64))


@family()
def topology_digest_mismatch(ctx, rng, rid):
    f = _topo(ctx, rid)
    h = _header(f)
    h["topology"] = "0" * 24
    return _with_header(f, h)


@family()
def unknown_topology(ctx, rng, rid):
    f = _sim(ctx, rng, rid)
    h = _header(f)
    h["topology"] = _pick(rng, ["feedbeef", "", None, 5, "../../etc/passwd"])
    return _with_header(f, h)


@family()
def bad_transport(ctx, rng, rid):
    return _sim(ctx, rng, rid, params={"transport": _pick(rng, ["udp", "", 3, None]),
                                       "frame_bytes": 9000})


@family()
def bad_frame_bytes(ctx, rng, rid):
    return _sim(ctx, rng, rid, params={"transport": "lossless", "frame_bytes": _pick(
        rng, [0, 63, 65536, -1, 2**40, 9000.5, "9000", None, True])})


@family()
def bad_budget(ctx, rng, rid):
    key, value = _pick(rng, [("max_events", 0), ("max_events", -5), ("max_events", 2**63 - 1),
                             ("max_events", 1.5), ("max_events", "10"), ("max_events", True),
                             ("max_wall_s", 0), ("max_wall_s", -1.0), ("max_wall_s", 1e7),
                             ("max_wall_s", "1"), ("max_wall_s", [1]), ("max_wall_s", False)])
    return _sim(ctx, rng, rid, params={**PARAMS, key: value})


@family(must_fail=False)
def tiny_budget(ctx, rng, rid):
    """A valid batch with a budget of a few events: abandoned (ns-3 reset) unless tiny."""
    return _sim(ctx, rng, rid, params={**PARAMS, "max_events": int(rng.integers(1, 60))})


@family()
def flow_endpoint_outside(ctx, rng, rid):
    a = ctx.batch(rng)
    key = _pick(rng, ["src", "dst"])
    a[key] = a[key].copy()
    a[key][0] = _pick(rng, [-1, ctx.num_gpus, ctx.num_nodes - 1, 2**31 - 1])
    return _sim(ctx, rng, rid, **a)


@family()
def flow_size_out_of_range(ctx, rng, rid):
    a = ctx.batch(rng)
    a["size"] = a["size"].copy()
    a["size"][0] = _pick(rng, [0, -1, 2**63 - 1, wire.MAX_FLOW_BYTES + 1, -(2**63)])
    return _sim(ctx, rng, rid, **a)


@family()
def flow_start_out_of_range(ctx, rng, rid):
    a = ctx.batch(rng)
    a["start_s"] = a["start_s"].copy()
    a["start_s"][0] = _pick(rng, [np.nan, np.inf, -np.inf, -1e-9, wire.MAX_START_S * 2])
    return _sim(ctx, rng, rid, **a)


@family()
def flow_length_mismatch(ctx, rng, rid):
    a = ctx.batch(rng, n=3)
    key = _pick(rng, ["dst", "size", "start_s", "route_indptr"])
    a[key] = a[key][:-1]
    return _sim(ctx, rng, rid, **a)


@family()
def route_indptr_broken(ctx, rng, rid):
    a = ctx.batch(rng, n=2)
    ip = a["route_indptr"].copy()
    k = int(rng.integers(0, 3))
    ip[k] = _pick(rng, [-1, ip[k] + 1, 2**62, -(2**62)])
    a["route_indptr"] = ip
    return _sim(ctx, rng, rid, **a)


@family()
def route_too_long(ctx, rng, rid):
    a = ctx.batch(rng, n=1)
    links = a["route_links"]
    a["route_links"] = np.tile(links, wire.MAX_ROUTE_HOPS // len(links) + 2)
    a["route_indptr"] = np.array([0, a["route_links"].size], np.int64)
    return _sim(ctx, rng, rid, **a)


@family()
def route_link_outside(ctx, rng, rid):
    a = ctx.batch(rng)
    links = a["route_links"].copy()
    links[int(rng.integers(0, links.size))] = _pick(rng, [-1, ctx.link_src.size, 2**31 - 1])
    a["route_links"] = links
    return _sim(ctx, rng, rid, **a)


@family()
def route_wrong_endpoints(ctx, rng, rid):
    a = ctx.batch(rng, n=1)
    other = ctx.batch(rng, n=1)
    while other["src"][0] == a["src"][0] and other["dst"][0] == a["dst"][0]:
        other = ctx.batch(rng, n=1)
    a["route_indptr"], a["route_links"] = other["route_indptr"], other["route_links"]
    return _sim(ctx, rng, rid, **a)


@family()
def route_revisits(ctx, rng, rid):
    """A route that goes out and back over a link pair before going on: a loop."""
    a = ctx.batch(rng, n=1)
    links = a["route_links"]
    first = int(links[0])
    back = np.nonzero((ctx.link_src == ctx.link_dst[first])
                      & (ctx.link_dst == ctx.link_src[first]))[0]
    loop = np.concatenate([[first, int(back[0])], links]).astype(np.int32)
    a["route_links"] = loop
    a["route_indptr"] = np.array([0, loop.size], np.int64)
    return _sim(ctx, rng, rid, **a)


@family()
def too_many_packets(ctx, rng, rid):
    a = ctx.batch(rng, n=1)
    a["size"] = np.array([wire.MAX_FLOW_BYTES], np.int64)
    return _sim(ctx, rng, rid, params={"transport": "lossless", "frame_bytes": 64}, **a)


@family()
def oversized_batch(ctx, rng, rid):
    """More flows than the server accepts (the tests start it with a small --max-flows)."""
    n = 2_001
    a = ctx.batch(rng, n=n)
    return _sim(ctx, rng, rid, **a)


@family(must_fail=False)
def mutate_header_byte(ctx, rng, rid):
    f = _sim(ctx, rng, rid)
    h = bytearray(f[0])
    for _ in range(int(rng.integers(1, 4))):
        h[int(rng.integers(0, len(h)))] = int(rng.integers(0, 256))
    return [bytes(h), *f[1:]]


@family(must_fail=False)
def mutate_array_bytes(ctx, rng, rid):
    f = _sim(ctx, rng, rid)
    # Not the size frame (index 3): a mutated size can be a legal multi-GB flow that takes
    # ns-3 minutes (no per-request wall budget yet); sizes are fuzzed by flow_size_out_of_range.
    k = int(_pick(rng, [1, 2, 4, 5, 6]))
    b = bytearray(f[k])
    if b:
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
    f[k] = bytes(b)
    return f


@family(must_fail=False)
def mutate_topology_bytes(ctx, rng, rid):
    f = _topo(ctx, rid)
    k = int(rng.integers(1, len(f)))
    b = bytearray(f[k])
    b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
    f[k] = bytes(b)
    return f


def messages(ctx: Context, seed: int, count: int, families: list[str] | None = None):
    """`count` (family, must_fail, frames) triples, cycling through the families."""
    rng = np.random.default_rng(seed)
    names = families or sorted(FAMILIES)
    for i in range(count):
        name = names[i % len(names)]
        fn, must_fail = FAMILIES[name]
        yield name, must_fail, fn(ctx, rng, f"fuzz-{i}")


class Peer:
    """A raw DEALER socket to a server, for sending fuzz frames as they are (no client
    checks in between): `exchange` returns the decoded reply, or None after `timeout_s`."""

    def __init__(self, address: str):
        self._ctx = zmq.Context()
        self._sock = self._ctx.socket(zmq.DEALER)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.connect(address)

    def exchange(self, frames: list, timeout_s: float = 30.0) -> wire.Message | None:
        self._sock.send_multipart(frames)
        if not self._sock.poll(int(timeout_s * 1000)):
            return None
        return wire.decode(self._sock.recv_multipart(), reply=True)

    def close(self) -> None:
        self._sock.close()
        self._ctx.term()

    def __enter__(self) -> Peer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
