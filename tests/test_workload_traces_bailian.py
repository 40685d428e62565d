"""Qwen-Bailian JSONL reader; prefix reuse of the Mooncake and Bailian samples vs. an
independent count of repeated leading blocks."""

from __future__ import annotations

import json

import pytest
from test_serving_system import toy

import cosim
from cosim.errors import ConfigError
from cosim.paths import data_dir
from cosim.workload.traces import detect_format, read_bailian

SAMPLE = data_dir("traces") / "bailian_sample.jsonl"
GOOD = {"chat_id": 1, "parent_chat_id": -1, "timestamp": 0.5, "input_length": 40,
        "output_length": 5, "turn": 1, "hash_ids": [0, 1, 2]}


def repeated_block_fraction(path, block):
    """Prompt tokens in leading blocks whose ids were all seen before / prompt tokens."""
    seen: set[int] = set()
    hit = total = 0
    for line in open(path):
        r = json.loads(line)
        ids, n = r["hash_ids"], r["input_length"]
        lead = 0
        while lead < len(ids) and ids[lead] in seen and (lead + 1) * block <= n:
            lead += 1
        hit += lead * block
        total += n
        seen.update(ids)
    return hit / total


def test_sample_detects_and_reads():
    assert detect_format(SAMPLE) == "bailian"
    t = read_bailian(SAMPLE)
    assert len(t) == 327 and t.notes["conversations"] == 120
    assert t.trace_block_tokens == 16


@pytest.mark.parametrize("workload,path,block,kv", [
    ("bailian_sample", SAMPLE, 16, 16),  # KV cache blocks must divide the 16-token hash block
    ("mooncake_sample", data_dir("traces") / "mooncake_sample.jsonl", 512, 64),
])
def test_prefix_hit_rate_matches_repeated_blocks(workload, path, block, kv):
    res = cosim.simulate([f"workload={workload}", "output.progress=false",
                          "deployment.comm.model=none", "deployment.router=prefix_aware",
                          f"deployment.scheduler.kv_block_tokens={kv}"],
                         step_cost_factory=toy)
    expected = repeated_block_fraction(path, block)
    # tolerance: the toy cluster's KV cache is finite and a request's last prompt token is
    # always recomputed, so the simulator can only come in at or a little below the count
    assert res.summary["prefix_hit_rate"] == pytest.approx(expected, abs=0.02)


@pytest.mark.parametrize("edit,match", [
    ({"turn": None}, r":1: turn: expected an integer"),
    ("drop:chat_id", r":1: chat_id: missing"),
    ({"input_length": "40"}, r":1: input_length: expected an integer"),
    ({"input_length": -4}, r":1: input_length: must be >= 1"),
    ({"input_length": 10**30}, r":1: input_length: expected an integer"),
    ({"hash_ids": [0, 1, 2, 3, 4]}, r":1: hash_ids: 5 ids"),
])
def test_bad_fields_name_file_line_key(tmp_path, edit, match):
    rec = dict(GOOD)
    if isinstance(edit, str):
        del rec[edit.split(":")[1]]
    else:
        rec.update(edit)
    p = tmp_path / "b.jsonl"
    p.write_text(json.dumps(rec) + "\n")
    with pytest.raises(ConfigError, match=match) as e:
        read_bailian(p)
    assert str(p) in str(e.value)


def test_out_of_order_and_non_utf8(tmp_path):
    p = tmp_path / "b.jsonl"
    p.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "timestamp": 0.1}) + "\n")
    with pytest.raises(ConfigError, match=r":2: timestamp: earlier than the line before"):
        read_bailian(p)
    p.write_bytes(json.dumps(GOOD).encode() + b"\n{\"chat_id\": \xff}\n")
    with pytest.raises(ConfigError, match=r"b.jsonl:2: not UTF-8"):
        read_bailian(p)
