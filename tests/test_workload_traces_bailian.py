"""Qwen-Bailian JSONL reader (the samples' prefix reuse: tests/test_trace_samples.py)."""

from __future__ import annotations

import json

import pytest

from cosim.errors import ConfigError
from cosim.paths import data_dir
from cosim.workload.traces import detect_format, read_bailian

SAMPLE = data_dir("traces") / "bailian_sample.jsonl"
GOOD = {"chat_id": 1, "parent_chat_id": -1, "timestamp": 0.5, "input_length": 40,
        "output_length": 5, "turn": 1, "hash_ids": [0, 1, 2]}


def test_sample_detects_and_reads():
    assert detect_format(SAMPLE) == "bailian"
    t = read_bailian(SAMPLE)
    assert len(t) == 327 and t.notes["conversations"] == 120
    assert t.trace_block_tokens == 16


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
