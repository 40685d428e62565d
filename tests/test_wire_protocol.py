"""Wire protocol (cosim.network.ns3.wire): encoding, strict decoding, content checks.

Pure: no ns-3, no sockets. The server-level behaviour (error replies, survival) is pinned
in test_ns3_backend.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from cosim.network.ns3 import wire


def _topology_msg(**over):
    arrays = {"link_src": np.array([0, 2, 1, 2], np.int32),
              "link_dst": np.array([2, 0, 2, 1], np.int32),
              "link_bps": np.full(4, 10**11, np.uint64),
              "link_latency_ps": np.full(4, 10**6, np.int64)}
    arrays.update(over)
    frames = wire.encode("load_topology", request_id=1,
                         params={"num_nodes": 3, "num_gpus": 2}, arrays=arrays)
    return wire.decode([bytes(f) for f in frames])


def _simulate_msg(params=None, **over):
    arrays = {"src": np.array([0, 1], np.int32), "dst": np.array([1, 0], np.int32),
              "size": np.array([1000, 2000], np.int64), "start_s": np.zeros(2),
              "route_indptr": np.array([0, 2, 4], np.int64),
              "route_links": np.array([0, 3, 2, 1], np.int32)}
    arrays.update(over)
    frames = wire.encode("simulate", request_id=2, topology="x",
                         params=params or {"transport": "lossless", "frame_bytes": 9000},
                         arrays=arrays)
    return wire.decode([bytes(f) for f in frames])


def test_roundtrip_keeps_arrays_bit_exact():
    a = np.array([0.1, np.pi, 1e-300], dtype=np.float64)
    frames = wire.encode("reply", request_id=5, arrays={"finish_s": a},
                         extra={"ok": True, "result": {}})
    msg = wire.decode([bytes(f) for f in frames], reply=True)
    assert msg.id == 5
    assert msg.arrays["finish_s"].tobytes() == a.tobytes()


def test_big_endian_input_is_sent_little_endian():
    a = np.array([1, 2, 3], dtype=">i4")
    frames = wire.encode("simulate", arrays={"src": a})
    assert json.loads(frames[0])["arrays"][0]["dtype"] == "<i4"
    assert np.frombuffer(bytes(frames[1]), "<i4").tolist() == [1, 2, 3]


@pytest.mark.parametrize("frames, needle", [
    ([], "empty"),
    ([b"\xff\xfe"], "JSON"),
    ([b"[1, 2]"], "object"),
    ([b'{"v": 2, "kind": "ping"}'], "version"),
    ([b'{"v": 1, "kind": "pickle"}'], "kind"),
    ([b'{"v": 1, "kind": "ping", "x": NaN}'], "NaN"),
    ([b'{"v": 1, "kind": "ping", "id": true}'], "id"),
    ([b"{" + b" " * wire.MAX_HEADER_BYTES + b"}"], "exceeds"),
    ([b'{"v": 1, "kind": "ping"}'] + [b""] * wire.MAX_FRAMES, "frames"),
])
def test_malformed_messages_are_rejected_with_a_reason(frames, needle):
    with pytest.raises(wire.WireError, match=needle):
        wire.decode(frames)


def test_truncated_and_missing_frames_are_rejected():
    frames = [bytes(f) for f in wire.encode(
        "simulate", arrays={"src": np.arange(4, dtype=np.int32)})]
    with pytest.raises(wire.WireError, match="truncated"):
        wire.decode([frames[0], frames[1][:-3]])
    with pytest.raises(wire.WireError, match="frames follow"):
        wire.decode([frames[0]])
    with pytest.raises(wire.WireError, match="lacks arrays"):
        wire.decode(frames)


def test_wrong_dtype_is_rejected():
    frames = wire.encode("simulate", arrays={"size": np.array([np.nan, 1.0])})
    with pytest.raises(wire.WireError, match="dtype"):
        wire.decode([bytes(f) for f in frames])


def test_topology_checks_name_the_bad_entry():
    topo = wire.check_topology(_topology_msg())
    assert topo.num_gpus == 2 and topo.link_src.shape == (4,)
    with pytest.raises(wire.WireError, match=r"link_bps\[1\]"):
        wire.check_topology(_topology_msg(link_bps=np.array([10**11, 0, 1, 1], np.uint64)))
    with pytest.raises(wire.WireError, match=r"link_dst\[0\]"):
        wire.check_topology(_topology_msg(link_dst=np.array([7, 0, 2, 1], np.int32)))
    with pytest.raises(wire.WireError, match="link_latency_ps"):
        wire.check_topology(_topology_msg(link_latency_ps=np.array([-1, 0, 0, 0], np.int64)))
    with pytest.raises(wire.WireError, match="to itself"):
        wire.check_topology(_topology_msg(link_dst=np.array([0, 0, 2, 1], np.int32)))


def test_topology_digest_must_match_the_arrays():
    msg = _topology_msg()
    msg.header["topology"] = "not-the-digest"
    with pytest.raises(wire.WireError, match="digest"):
        wire.check_topology(msg)


def test_simulate_checks():
    topo = wire.check_topology(_topology_msg())
    spec = wire.check_simulate(_simulate_msg(), topo)
    assert spec.frame_bytes == 9000
    bad = [
        (dict(size=np.array([1000, -5], np.int64)), r"size\[1\]"),
        (dict(start_s=np.array([0.0, np.nan])), r"start_s\[1\]"),
        (dict(src=np.array([0, 9], np.int32)), r"src\[1\]=9 is not a GPU"),
        (dict(route_links=np.array([0, 3, 2, 9], np.int32)), "not a link"),
        (dict(route_links=np.array([0, 1, 2, 1], np.int32)), "route does not end"),
        (dict(route_indptr=np.array([0, 0, 4], np.int64)), "route of 0 links"),
        (dict(route_indptr=np.array([0, 4], np.int64)), "route_indptr has"),
    ]
    for over, needle in bad:
        with pytest.raises(wire.WireError, match=needle):
            wire.check_simulate(_simulate_msg(**over), topo)
    with pytest.raises(wire.WireError, match="frame_bytes=65536"):
        wire.check_simulate(_simulate_msg({"frame_bytes": 65536}), topo)
    with pytest.raises(wire.WireError, match="transport"):
        wire.check_simulate(_simulate_msg({"frame_bytes": 9000, "transport": "udp"}), topo)
    with pytest.raises(wire.WireError, match="limit of 1"):
        wire.check_simulate(_simulate_msg(), topo, max_flows=1)


def test_route_links_must_meet_at_nodes():
    # 4 nodes: links 0:0->2, 1:2->1, 2:3->1 ; a route 0->2 then 3->1 is broken.
    frames = wire.encode("load_topology", params={"num_nodes": 4, "num_gpus": 2}, arrays={
        "link_src": np.array([0, 2, 3], np.int32), "link_dst": np.array([2, 1, 1], np.int32),
        "link_bps": np.full(3, 10**9, np.uint64), "link_latency_ps": np.zeros(3, np.int64)})
    topo = wire.check_topology(wire.decode([bytes(f) for f in frames]))
    msg = _simulate_msg(src=np.array([0], np.int32), dst=np.array([1], np.int32),
                        size=np.array([10], np.int64), start_s=np.zeros(1),
                        route_indptr=np.array([0, 2], np.int64),
                        route_links=np.array([0, 2], np.int32))
    with pytest.raises(wire.WireError, match="do not meet"):
        wire.check_simulate(msg, topo)
