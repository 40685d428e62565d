"""timeline.json: Chrome trace events that the Perfetto UI opens."""

import json

import numpy as np

from cosim.network.flows import FlowBatch
from cosim.timeline import afd_pipeline, schedule_pipeline
from cosim.timeline.perfetto import TraceBuilder

US = 1e-6


def _check_trace(doc: dict) -> list[dict]:
    """Structure Perfetto's JSON importer relies on; returns the complete events."""
    assert isinstance(doc["traceEvents"], list)
    named_pids = {e["pid"] for e in doc["traceEvents"] if e["ph"] == "M" and e["name"] == "process_name"}
    named_tids = {(e["pid"], e["tid"]) for e in doc["traceEvents"]
                  if e["ph"] == "M" and e["name"] == "thread_name"}
    xs = [e for e in doc["traceEvents"] if e["ph"] == "X"]
    for e in xs:
        assert {"name", "ph", "pid", "tid", "ts", "dur"} <= set(e)
        assert e["dur"] >= 0 and np.isfinite(e["ts"])
        assert e["pid"] in named_pids and (e["pid"], e["tid"]) in named_tids
    # complete events on one track never partially overlap (they would not nest)
    by_track: dict = {}
    for e in xs:
        by_track.setdefault((e["pid"], e["tid"]), []).append((e["ts"], e["ts"] + e["dur"]))
    for spans in by_track.values():
        spans.sort()
        for (_, e0), (s1, _) in zip(spans, spans[1:], strict=False):
            assert s1 >= e0 - 1e-3
    return xs


def test_afd_iteration_trace_has_every_task_on_its_group_track(tmp_path):
    L, m = 4, 2
    p = afd_pipeline(L, m, 100 * US, 20 * US, 120 * US, 20 * US)
    sched = schedule_pipeline(p)
    tb = TraceBuilder()
    tb.add_schedule("afd 0", p.graph(), sched, origin_s=1.0, iteration=7)
    path = tb.write(tmp_path / "timeline.json")
    xs = _check_trace(json.loads(path.read_text()))
    assert len(xs) == L * 4 * m
    tracks = {e["tid"] for e in xs}
    assert len(tracks) == 4  # attention, a2f, ffn, f2a
    first = min(e["ts"] for e in xs)
    last = max(e["ts"] + e["dur"] for e in xs)
    assert first == 1e6  # origin shifts to the iteration's start, in microseconds
    assert abs((last - first) * US - sched.makespan) < 1e-9
    assert all(e["args"]["iteration"] == 7 for e in xs)


def test_overlapping_flows_go_to_separate_lanes_per_link_class(tmp_path):
    flows = FlowBatch.from_arrays(src=[0, 1, 2, 3], dst=[8, 9, 10, 3 - 2], size=[100, 100, 100, 50],
                                  start=[0.0, 0.0, 1e-6, 0.0], tag=[0, 0, 1, 2])
    finish = np.array([4e-6, 5e-6, 3e-6, 1e-6])
    link_class = np.array([1, 1, 1, 0])
    tb = TraceBuilder()
    tb.add_flows("fabric", flows, finish, link_class, {0: "nvlink", 1: "nic"})
    xs = _check_trace(tb.to_dict())
    assert len(xs) == 4
    tb2 = TraceBuilder()
    tb2.add_flows("fabric", flows, finish, link_class, {0: "nvlink", 1: "nic"}, group=flows.tag,
                  group_names={0: "a2f L0 mb0", 1: "a2f L0 mb1", 2: "f2a L0 mb0"})
    xs2 = _check_trace(tb2.to_dict())
    agg = {e["name"]: e for e in xs2}
    assert agg["a2f L0 mb0"]["args"] == {"flows": 2, "bytes": 200}
    assert agg["a2f L0 mb0"]["dur"] == 5.0
