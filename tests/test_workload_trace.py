"""Trace replay (Mooncake JSONL with hash_ids): reading, writing, errors, prefix reuse."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_serving_system import toy

import cosim
from cosim.errors import ConfigError
from cosim.paths import data_dir
from cosim.workload.trace import read_trace, trace_hash_ids, write_trace

SAMPLE = data_dir("traces") / "mooncake_sample.jsonl"


def test_the_sample_trace_reads():
    t = read_trace(SAMPLE)
    assert len(t) == 300
    assert (np.diff(t.start_s) >= 0).all() and t.start_s[0] == 0
    assert (t.input_tokens > 0).all() and (t.output_tokens > 0).all()
    per_req = np.diff(t.trace_hash_ptr)
    assert (per_req == -(-t.input_tokens // 512)).all()  # one id per 512-token block
    # conversations: later turns repeat earlier hash ids
    assert np.unique(t.trace_hashes).size < t.trace_hashes.size


def test_write_then_read_round_trips(tmp_path):
    p = tmp_path / "t.jsonl"
    write_trace(p, [0.0, 1.5], [600, 1100], [7, 9], [[3, 4], [3, 5, 6]])
    t = read_trace(p)
    assert t.start_s.tolist() == [0.0, 1.5]
    assert t.input_tokens.tolist() == [600, 1100] and t.output_tokens.tolist() == [7, 9]
    assert t.trace_hashes.tolist() == [3, 4, 3, 5, 6] and t.trace_hash_ptr.tolist() == [0, 2, 5]
    assert not list(tmp_path.glob(".t.jsonl.*"))  # no temporary file left behind


def test_trace_ids_from_a_synthetic_table_share_prefixes(tmp_path):
    t = read_trace(SAMPLE, max_requests=40)
    ids = trace_hash_ids(t, 512)
    assert [len(r) for r in ids] == (-(-t.prompt_tokens // 512)).tolist()


@pytest.mark.parametrize("line,key", [
    ('{"timestamp": 0, "input_length": 10}', "output_length"),
    ('{"timestamp": 0, "input_length": -5, "output_length": 1}', "input_length"),
    ('{"timestamp": "soon", "input_length": 5, "output_length": 1}', "timestamp"),
    ('{"timestamp": 0, "input_length": 600, "output_length": 1, "hash_ids": [1, 2, 3]}', "hash_ids"),
    ('{"timestamp": 0, "input_length": 5, "output_length": 1, "hash_ids": ["a"]}', "hash_ids"),
    ('{"timestamp": 0, "input_length": 200000, "output_length": 1}', "input_length"),
])
def test_bad_lines_name_file_line_and_key(tmp_path, line, key):
    p = tmp_path / "bad.jsonl"
    p.write_text('{"timestamp": 0, "input_length": 5, "output_length": 1}\n' + line + "\n")
    with pytest.raises(ConfigError) as e:
        read_trace(p, max_context=163840)
    assert e.value.field == f"{p}:2: {key}"


def test_not_json_names_the_line(tmp_path):
    p = tmp_path / "bad.jsonl"
    p.write_text("{nope\n")
    with pytest.raises(ConfigError, match=r"bad.jsonl:1"):
        read_trace(p)


def test_shared_hash_ids_become_prefix_hits(tmp_path):
    p = tmp_path / "two.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in [
        {"timestamp": 0, "input_length": 1100, "output_length": 4, "hash_ids": [1, 2, 3]},
        {"timestamp": 5000, "input_length": 1300, "output_length": 4, "hash_ids": [1, 2, 9]},
    ]) + "\n")
    res = cosim.simulate(["workload=mooncake_sample", f"workload.trace.path={p}",
                          "deployment.layout.tp=8", "deployment.layout.dp=1",
                          "deployment.comm.model=none", "output.progress=false"],
                         step_cost_factory=toy)
    req = res.requests
    assert req.arrival_s.tolist() == [0.0, 5.0]
    assert req.cached_tokens.tolist() == [0, 1024]  # ids 1 and 2: two 512-token blocks
    assert req.prefilled_tokens.tolist() == [1100, 1300 - 1024]


def test_the_sample_trace_replays():
    res = cosim.simulate(["workload=mooncake_sample", "output.progress=false",
                          "deployment.comm.model=none", "deployment.router=prefix_aware"],
                         step_cost_factory=toy)
    assert res.summary["requests_completed"] == 300
    assert res.summary["prefix_hit_rate"] > 0.3


@pytest.mark.parametrize("body, needle", [
    (b'{"timestamp": 0, "input_length": 10, "output_length": 5}\n\xff\xfe\n', ":2: not UTF-8"),
    (b"[" * 5000 + b"]" * 5000 + b"\n", ":1: not a trace record"),
    (b'{"timestamp": ' + b"9" * 5000 + b', "input_length": 10, "output_length": 5}\n',
     ":1: not a trace record"),
    (b'{"timestamp": 5, "input_length": 10, "output_length": 5}\n\n'
     b'{"timestamp": 1, "input_length": 10, "output_length": 5}\n', ":3: timestamp"),
])
def test_bad_trace_bytes_are_one_config_error_naming_the_line(tmp_path, body, needle):
    from cosim.errors import ConfigError
    from cosim.workload.trace import read_trace

    p = tmp_path / "t.jsonl"
    p.write_bytes(body)
    with pytest.raises(ConfigError) as e:
        read_trace(p)
    assert needle in str(e.value) and "\n" not in str(e.value)
