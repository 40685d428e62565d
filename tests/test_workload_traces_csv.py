"""Azure / BurstGPT CSV trace readers: the samples, auto-detection and every error path."""

from __future__ import annotations

import numpy as np
import pytest
from test_serving_system import toy

import cosim
from cosim.errors import ConfigError
from cosim.paths import data_dir
from cosim.workload.traces import detect_format, read_csv_trace

AZURE = data_dir("traces") / "azure_sample.csv"
BURST = data_dir("traces") / "burstgpt_sample.csv"
AZ_HEAD = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
BG_HEAD = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"


def test_samples_detect_and_read():
    assert detect_format(AZURE) == "azure"
    assert detect_format(BURST) == "burstgpt"
    assert detect_format(data_dir("traces") / "mooncake_sample.jsonl") == "mooncake"
    a = read_csv_trace(AZURE, "azure")
    b = read_csv_trace(BURST, "burstgpt")
    assert len(a) == 200 and a.start_s[0] == 0 and (np.diff(a.start_s) >= 0).all()
    assert b.notes["skipped_failed"] == 4 and len(b) == 196  # rows with 0 response tokens
    assert (a.input_tokens > 0).all() and (b.output_tokens > 0).all()


def test_options_cap_and_time_scale():
    a = read_csv_trace(AZURE, "azure")
    h = read_csv_trace(AZURE, "azure", max_requests=10, time_scale=0.5)
    assert len(h) == 10
    assert h.start_s == pytest.approx(a.start_s[:10] * 0.5)


def test_azure_2023_seven_digit_fraction(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text(AZ_HEAD + "2023-11-16 18:15:46.6805900,374,44\n2023-11-16 18:15:50.9951690,396,109\n")
    t = read_csv_trace(p, "azure")
    assert t.start_s[1] == pytest.approx(4.314579)


def test_undetectable_format_names_the_formats(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ConfigError, match="mooncake, bailian, azure, burstgpt"):
        detect_format(p)


@pytest.mark.parametrize("fmt,text,match", [
    ("azure", "TIMESTAMP,ContextTokens\n0,5\n", r":1: generatedtokens: missing column"),
    ("azure", AZ_HEAD + "0,5,6\n1,x,6\n", r":3: ContextTokens: expected an integer"),
    ("azure", AZ_HEAD + "0,-5,6\n", r":2: ContextTokens: must be >= 1"),
    ("azure", AZ_HEAD + "0,5,6\n1,5,1e400\n", r":3: GeneratedTokens: expected an integer"),
    ("azure", AZ_HEAD + "5,5,6\n1,5,6\n", r":3: TIMESTAMP: earlier than the line before"),
    ("azure", AZ_HEAD + "yesterday,5,6\n", r":2: TIMESTAMP: expected seconds"),
    ("burstgpt", BG_HEAD + "0,GPT-4,10,-3,7,API log\n", r":2: Response tokens: must be >= 0"),
    ("burstgpt", BG_HEAD + "0,GPT-4,10\n", r":2: 3 fields"),
])
def test_error_paths_name_file_line_field(tmp_path, fmt, text, match):
    p = tmp_path / "t.csv"
    p.write_text(text)
    with pytest.raises(ConfigError, match=match) as e:
        read_csv_trace(p, fmt)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_non_utf8_byte_names_the_line(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes(AZ_HEAD.encode() + b"0,5,6\n1,\xff5,6\n")
    with pytest.raises(ConfigError, match=r"t.csv:3: not UTF-8"):
        read_csv_trace(p, "azure")


@pytest.mark.parametrize("workload,n", [("azure_sample", 200), ("burstgpt_sample", 196)])
def test_csv_samples_replay(workload, n):
    res = cosim.simulate([f"workload={workload}", "output.progress=false",
                          "deployment.comm.model=none"], step_cost_factory=toy)
    assert res.summary["requests_completed"] == n


def test_auto_format_replays_a_csv(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text(AZ_HEAD + "0,600,5\n1.5,700,6\n")
    res = cosim.simulate(["workload=mooncake_sample", f"workload.trace.path={p}",
                          "workload.trace.format=auto", "output.progress=false",
                          "deployment.comm.model=none"], step_cost_factory=toy)
    assert res.summary["requests_completed"] == 2
