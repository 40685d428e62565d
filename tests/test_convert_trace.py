"""scripts/convert_trace.py: other column layouts into each format cosim reads, read back by
cosim's own readers; bad rows are one line naming file, line and column, exit code 2."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cosim.config.workload import ArrivalConfig, TraceConfig, WorkloadConfig
from cosim.workload.build import build_workload
from cosim.workload.traces import detect_format

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "convert_trace.py"
spec = importlib.util.spec_from_file_location("convert_trace", SCRIPT)
convert = importlib.util.module_from_spec(spec)
spec.loader.exec_module(convert)

# a production-style log: milliseconds, its own column names, rows out of time order,
# a conversation column and semicolon-separated block hashes; one failed request (0 output)
CSV = """req_ts_ms,conv,prompt_len,completion_len,blocks
2000,a,40,5,1;2;3
0,a,20,4,1;2
1000,b,18,3,7;8
3000,b,50,0,7;8;9
4000,c,33,6,
"""
FLAGS = ["--time-col", "req_ts_ms", "--time-unit", "ms", "--input-col", "prompt_len",
         "--output-col", "completion_len", "--session-col", "conv", "--hash-col", "blocks"]


def read_back(path: Path, fmt: str):
    cfg = WorkloadConfig(name="t", kind="trace", num_requests=1000,
                         arrival=ArrivalConfig(process="trace"),
                         trace=TraceConfig(path=str(path), format="auto", block_tokens=16))
    assert detect_format(path) == fmt
    return build_workload(cfg, 163840, seed=0)


@pytest.mark.parametrize("to,suffix", [("mooncake", "jsonl"), ("bailian", "jsonl"),
                                       ("azure", "csv"), ("burstgpt", "csv")])
def test_converts_to_each_format_and_reads_back(tmp_path, capsys, to, suffix):
    src = tmp_path / "log.csv"
    src.write_text(CSV)
    out = tmp_path / f"t.{suffix}"
    assert convert.main([str(src), "-o", str(out), "--to", to, *FLAGS]) == 0
    assert "4 requests" in capsys.readouterr().out
    t = read_back(out, to)
    assert t.start_s.tolist() == [0.0, 1.0, 2.0, 4.0]  # sorted, relative to the first
    assert t.input_tokens.tolist() == [20, 18, 40, 33]
    assert t.output_tokens.tolist() == [4, 3, 5, 6]
    if to in ("mooncake", "bailian"):
        assert t.trace_hashes.tolist() == [1, 2, 7, 8, 1, 2, 3]
    if to == "bailian":  # conversations from --session-col: a's second turn follows its first
        recs = [json.loads(line) for line in out.read_text().splitlines()]
        assert [(r["chat_id"], r["parent_chat_id"], r["turn"]) for r in recs] == \
            [(0, -1, 1), (1, -1, 1), (2, 0, 2), (3, -1, 1)]
        assert t.notes["conversations"] == 3


def test_jsonl_input_with_iso_times(tmp_path):
    src = tmp_path / "log.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in [
        {"when": "2024-05-10T12:00:00Z", "in": 100, "out": 10},
        {"when": "2024-05-10T12:00:02.5Z", "in": 200, "out": 20}]) + "\n")
    out = tmp_path / "t.csv"
    assert convert.main([str(src), "-o", str(out), "--to", "azure", "--time-col", "when",
                         "--time-unit", "iso", "--input-col", "in", "--output-col", "out"]) == 0
    t = read_back(out, "azure")
    assert t.start_s.tolist() == [0.0, 2.5] and t.input_tokens.tolist() == [100, 200]


@pytest.mark.parametrize("text,needle", [
    ("ts,p\n0,5\n", ":1: prompt_len: missing column (header: ts, p)"),
    ("ts,prompt_len,completion_len\n0,5,3\n1,lots,3\n", ":3: prompt_len: expected an integer"),
    ("ts,prompt_len,completion_len\n0,5,3\n1,5,-3\n", ":3: completion_len: must be >= 0"),
    ("ts,prompt_len,completion_len\n0,5,3\nnoon,5,3\n", ":3: ts: expected a number of s"),
])
def test_bad_rows_are_one_line_naming_file_line_column(tmp_path, capsys, text, needle):
    src = tmp_path / "bad.csv"
    src.write_text(text)
    flags = ["--time-col", "ts", "--input-col", "prompt_len", "--output-col", "completion_len"]
    assert convert.main([str(src), "-o", str(tmp_path / "o.jsonl"), "--to", "mooncake",
                         *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"convert_trace: {src}{needle}") and "\n" not in err
    assert not (tmp_path / "o.jsonl").exists()  # nothing half-written


def test_skip_counts_bad_rows_and_non_utf8(tmp_path, capsys):
    src = tmp_path / "bad.csv"
    src.write_bytes(b"ts,prompt_len,completion_len\n0,5,3\n1,\xff5,3\n2,x,3\n3,6,4\n")
    out = tmp_path / "o.jsonl"
    flags = ["--time-col", "ts", "--input-col", "prompt_len", "--output-col", "completion_len"]
    assert convert.main([str(src), "-o", str(out), "--to", "mooncake", *flags]) == 2
    assert f"{src}:3: not UTF-8" in capsys.readouterr().err
    assert convert.main([str(src), "-o", str(out), "--to", "mooncake", *flags,
                         "--on-error", "skip"]) == 0
    assert "2 malformed rows skipped" in capsys.readouterr().out
    assert len(read_back(out, "mooncake")) == 2


def test_cli_exit_code_2_without_traceback(tmp_path):
    src = tmp_path / "bad.csv"
    src.write_text("ts,prompt_len,completion_len\n0,-5,3\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.run([sys.executable, str(SCRIPT), str(src), "-o", str(tmp_path / "o.csv"),
                        "--to", "azure", "--time-col", "ts", "--input-col", "prompt_len",
                        "--output-col", "completion_len"],
                       capture_output=True, text=True, env=env, timeout=120)
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr
    assert f"{src}:2: prompt_len: must be >= 1" in lines[0]
