"""output.flows: flows.parquet records what the backend timed, and changes nothing else."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from cosim.api import compose_config
from cosim.apps.run import write_outputs
from cosim.network.flow_trace import METADATA_KEY, FlowTraceError, read_flow_trace
from cosim.serving.simulation import run_simulation

BASE = ["workload=chat", "workload.num_requests=40", "output.progress=false",
        "network=analytical", "network.cache.enabled=false"]
KINDS = {
    "chunked": ["deployment=chunked"],
    "afd": ["deployment=afd"],
    "pd": ["deployment=pd"],
    "afd_iteration": ["deployment=afd", "network.mode=iteration", "workload.num_requests=8"],
}
VOLATILE = {"sim_wall_s", "wall_s", "flow_trace"}


def _run(kind: str, flows: bool):
    return run_simulation(compose_config([*BASE, *KINDS[kind], f"output.flows={str(flows).lower()}"]))


def _stable(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in VOLATILE and "wall" not in k}


@pytest.fixture(scope="module")
def runs():
    return {k: (_run(k, False), _run(k, True)) for k in KINDS}


@pytest.mark.parametrize("kind", list(KINDS))
def test_flows_on_or_off_the_results_are_identical(runs, kind):
    off, on = runs[kind]
    assert off.flows is None and "flow_trace" not in off.summary
    assert json.dumps(_stable(off.summary), sort_keys=True, default=str) == \
        json.dumps(_stable(on.summary), sort_keys=True, default=str)
    pd.testing.assert_frame_equal(off.requests, on.requests)
    pd.testing.assert_frame_equal(off.iterations, on.iterations)


@pytest.mark.parametrize("kind,classes", [
    ("chunked", {"ep_dispatch", "ep_combine"}),
    ("afd", {"a2f", "f2a"}),
    ("pd", {"ep_dispatch", "ep_combine", "kv_transfer"}),
    ("afd_iteration", {"a2f", "f2a"}),
])
def test_flow_rows_say_what_moved_when(runs, kind, classes, tmp_path):
    _, on = runs[kind]
    write_outputs(tmp_path, on.summary, on.requests, on.iterations, True, {}, on.flows)
    tr = read_flow_trace(tmp_path / "flows.parquet")
    c = tr.columns
    assert tr.rows == on.summary["flow_trace"]["rows"] > 0
    assert set(np.unique(c["traffic_class"])) == classes
    assert set(np.unique(c["backend"])) == {"analytical"}
    assert np.all(c["completion_s"] >= c["start_s"]) and np.all(c["bytes"] > 0)
    assert np.all(c["src"] != c["dst"])
    meta = tr.metadata
    assert meta["topology"]["name"] == "dgx_b200_ib" and meta["topology"]["num_gpus"] == 16
    assert meta["topology"]["config"]["nic"]["gbps"] == 400
    assert meta["groups"] == np.unique(c["group"]).size
    # every group belongs to an iteration that ran: its time zero is that iteration's start
    # (KV groups: the prefill iteration's start or end)
    it = on.iterations
    starts = set(zip(it["instance"].tolist(), it["start_s"].tolist(), strict=True))
    ends = set(zip(it["instance"].tolist(), (it["start_s"] + it["duration_s"]).tolist(),
                   strict=True))
    first = pd.DataFrame(c).groupby("group").first()
    for row in first.itertuples():
        key = (row.instance, row.group_start_s)
        assert key in starts or (row.traffic_class == "kv_transfer" and key in ends), row
    if kind == "afd_iteration":
        assert np.all(c["layer"] >= 0) and np.all(c["layers"] == 1)
    else:
        assert np.all(c["layer"][c["traffic_class"] != "kv_transfer"] == -1)
        assert np.all(c["layers"][c["traffic_class"] != "kv_transfer"] > 1)


def test_a_damaged_flow_file_is_one_error(tmp_path):
    p = tmp_path / "flows.parquet"
    p.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(FlowTraceError, match="flows.parquet: not a readable parquet"):
        read_flow_trace(p)
    with pytest.raises(FlowTraceError, match="no such file"):
        read_flow_trace(tmp_path / "missing.parquet")
    pd.DataFrame({"a": [1]}).to_parquet(p)
    with pytest.raises(FlowTraceError, match="no cosim flow-trace metadata"):
        read_flow_trace(p)


def test_flow_metadata_is_in_the_parquet_schema(runs, tmp_path):
    _, on = runs["afd"]
    write_outputs(tmp_path, on.summary, on.requests, on.iterations, True, {}, on.flows)
    meta = json.loads(pq.read_schema(tmp_path / "flows.parquet").metadata[METADATA_KEY])
    assert meta["backend"] == "analytical" and meta["deployment"] == "afd"
    assert "identical layers" in meta["aggregation"]
    assert not list(tmp_path.glob(".*.tmp"))  # staged, then renamed


def test_rows_come_in_batches_of_whole_groups(runs):
    _, on = runs["afd"]
    whole = on.flows.table()
    on.flows.rows_per_batch = 1000
    batches = list(on.flows.batches())
    assert len(batches) > 1 and all(b.num_rows <= 1000 for b in batches)
    assert batches[0].column("group")[-1] != batches[1].column("group")[0]
    assert on.flows.table().equals(whole)
    on.flows.rows_per_batch = 1 << 20
