"""Every request-trace format against the same checks: the shared options (window, seeded
sampling, cap, time scale, target rate), on_error=skip and its count in summary.json, and
each reader's error paths (missing column, non-numeric field, negative length, out-of-order
timestamps, a non-UTF-8 byte) as one line naming file, line and field, exit code 2 from the
CLI without a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_serving_system import toy

import cosim
from cosim.config.workload import ArrivalConfig, TraceConfig, WorkloadConfig
from cosim.errors import ConfigError
from cosim.workload.build import build_workload
from cosim.workload.traces import detect_format

FORMATS = ("mooncake", "bailian", "azure", "burstgpt", "cosim")
SUFFIX = {"mooncake": ".jsonl", "bailian": ".jsonl", "azure": ".csv", "burstgpt": ".csv",
          "cosim": ".parquet"}
ROOT = Path(__file__).resolve().parents[1]


def write(fmt: str, path: Path, rows: list[dict]) -> Path:
    """A trace of `fmt` from rows {t (s), i, o, conv (conversation), and raw overrides}.

    A row's "raw" dict replaces field values as written (to make bad lines)."""
    if fmt in ("mooncake", "bailian"):
        lines = []
        for k, r in enumerate(rows):
            if fmt == "mooncake":
                rec = {"timestamp": r["t"] * 1000, "input_length": r["i"],
                       "output_length": r["o"], "hash_ids": []}
            else:
                rec = {"chat_id": k, "parent_chat_id": r.get("parent", -1), "timestamp": r["t"],
                       "input_length": r["i"], "output_length": r["o"], "turn": 0,
                       "hash_ids": []}
            rec.update(r.get("raw", {}))
            for key in r.get("drop", ()):
                rec.pop(key)
            lines.append(json.dumps(rec))
        path.write_text("\n".join(lines) + "\n")
    elif fmt in ("azure", "burstgpt"):
        cols = (["TIMESTAMP", "ContextTokens", "GeneratedTokens"] if fmt == "azure" else
                ["Timestamp", "Model", "Request tokens", "Response tokens", "Total tokens",
                 "Log Type"])
        out = [",".join(cols)]
        for r in rows:
            vals = ({"TIMESTAMP": r["t"], "ContextTokens": r["i"], "GeneratedTokens": r["o"]}
                    if fmt == "azure" else
                    {"Timestamp": r["t"], "Model": "ChatGPT", "Request tokens": r["i"],
                     "Response tokens": r["o"], "Total tokens": r["i"] + r["o"],
                     "Log Type": "Conversation log"})
            vals.update(r.get("raw", {}))
            out.append(",".join(str(vals[c]) for c in cols))
        path.write_text("\n".join(out) + "\n")
    else:
        n = len(rows)
        df = pd.DataFrame({"session": np.arange(n), "turn": np.zeros(n, dtype=np.int64),
                           "prefix_tokens": np.zeros(n, dtype=np.int64),
                           "input_tokens": [r["i"] for r in rows],
                           "output_tokens": [r["o"] for r in rows],
                           "arrival_s": [float(r["t"]) for r in rows]})
        for k, r in enumerate(rows):
            for key, v in r.get("raw", {}).items():
                df[key] = df[key].astype(type(v))
                df.loc[k, key] = v
        df.to_parquet(path, index=False)
    return path


def even(n: int = 40, gap: float = 1.0) -> list[dict]:
    return [{"t": k * gap, "i": 100 + k, "o": 8} for k in range(n)]


def load(path: Path, fmt: str = "auto", num_requests: int = 100000, **trace) -> object:
    cfg = WorkloadConfig(name="t", kind="trace", num_requests=num_requests,
                         arrival=ArrivalConfig(process="trace"),
                         trace=TraceConfig(path=str(path), format=fmt, block_tokens=16, **trace))
    cfg.validate()
    return build_workload(cfg, 163840, seed=0)


@pytest.mark.parametrize("fmt", FORMATS)
def test_auto_detects_every_format(tmp_path, fmt):
    p = write(fmt, tmp_path / f"t{SUFFIX[fmt]}", even(3))
    assert detect_format(p) == fmt
    assert len(load(p)) == 3


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_option_on_every_format(tmp_path, fmt):
    p = write(fmt, tmp_path / f"t{SUFFIX[fmt]}", even(40))
    full = load(p, fmt)
    assert len(full) == 40 and full.start_s.tolist() == [float(k) for k in range(40)]
    # time window [10, 20) s of the trace clock, shifted to start at 0
    w = load(p, fmt, window_start_s=10, window_end_s=20)
    assert w.input_tokens.tolist() == list(range(110, 120))
    assert w.start_s.tolist() == [float(k) for k in range(10)]
    # cap (workload.num_requests) after the window
    c = load(p, fmt, num_requests=4, window_start_s=10)
    assert c.input_tokens.tolist() == [110, 111, 112, 113]
    # time scale and target rate
    assert load(p, fmt, time_scale=0.5).start_s[-1] == pytest.approx(19.5)
    r = load(p, fmt, rate_per_s=4.0)
    assert r.start_s[-1] == pytest.approx(39 / 4.0)
    assert r.notes["rate_per_s"] == pytest.approx(4.0)
    # seeded sampling: reproducible, about the fraction, nested, and the seed matters
    s1 = load(p, fmt, sample_fraction=0.5, sample_seed=3)
    s2 = load(p, fmt, sample_fraction=0.5, sample_seed=3)
    assert s1.input_tokens.tolist() == s2.input_tokens.tolist()
    assert 10 <= len(s1) <= 30 and s1.start_s[0] == 0
    small = set(load(p, fmt, sample_fraction=0.25, sample_seed=3).input_tokens.tolist())
    assert small <= set(s1.input_tokens.tolist())
    other = load(p, fmt, sample_fraction=0.5, sample_seed=4).input_tokens.tolist()
    assert other != s1.input_tokens.tolist()
    assert s1.notes["requests_read"] == 40 and s1.notes["requests_replayed"] == len(s1)


def test_sampling_keeps_whole_bailian_conversations(tmp_path):
    rows = []
    for conv in range(30):  # conversations of two turns: chat 2c, then 2c+1 (parent 2c)
        rows.append({"t": conv * 2.0, "i": 50, "o": 4})
        rows.append({"t": conv * 2.0 + 1, "i": 60, "o": 4, "parent": 2 * conv})
    p = write("bailian", tmp_path / "b.jsonl", rows)
    t = load(p, sample_fraction=0.5, sample_seed=1)
    assert t.conversation is not None
    _, counts = np.unique(t.conversation, return_counts=True)
    assert (counts == 2).all() and 0 < len(t) < 60


def test_options_that_leave_nothing_or_cannot_rescale(tmp_path):
    p = write("azure", tmp_path / "a.csv", even(5))
    with pytest.raises(ConfigError, match="no request of .* is left after the window"):
        load(p, window_start_s=100)
    q = write("azure", tmp_path / "one.csv", even(1))
    with pytest.raises(ConfigError, match="workload.trace.rate_per_s: needs at least two"):
        load(q, rate_per_s=2.0)
    with pytest.raises(ConfigError, match="rate_per_s: set either rate_per_s or time_scale"):
        load(p, rate_per_s=2.0, time_scale=0.5)
    with pytest.raises(ConfigError, match="workload.trace.on_error: must be error or skip"):
        load(p, on_error="ignore")
    with pytest.raises(ConfigError, match="window_end_s: must be null or a number >"):
        load(p, window_start_s=5, window_end_s=2)


# One malformed row (the second) per format and kind of fault: (fault, raw fields, expected
# "<line>: <field>" and the words of the reason). cosim rows are "row N" of the Parquet file.
FAULTS = {
    "mooncake": [("missing", {"drop": ["output_length"]}, ":2: output_length", "missing"),
                 ("non_numeric", {"raw": {"input_length": "many"}}, ":2: input_length",
                  "expected an integer"),
                 ("negative", {"raw": {"output_length": -3}}, ":2: output_length", ">= 1"),
                 ("out_of_order", {"t2": True}, ":3: timestamp",
                  "earlier than the line before")],
    "bailian": [("missing", {"drop": ["turn"]}, ":2: turn", "missing"),
                ("non_numeric", {"raw": {"timestamp": "noon"}}, ":2: timestamp", "number"),
                ("negative", {"raw": {"input_length": -1}}, ":2: input_length", ">= 1"),
                ("out_of_order", {"t2": True}, ":3: timestamp",
                 "earlier than the line before")],
    "azure": [("non_numeric", {"raw": {"GeneratedTokens": "n/a"}}, ":3: GeneratedTokens",
               "expected an integer"),
              ("negative", {"raw": {"ContextTokens": -7}}, ":3: ContextTokens", ">= 1"),
              ("out_of_order", {"t2": True}, ":4: TIMESTAMP",
               "earlier than the line before")],
    "burstgpt": [("non_numeric", {"raw": {"Request tokens": "x"}}, ":3: Request tokens",
                  "expected an integer"),
                 ("negative", {"raw": {"Response tokens": -2}}, ":3: Response tokens", ">= 0"),
                 ("out_of_order", {"t2": True}, ":4: Timestamp",
                  "earlier than the line before")],
    "cosim": [("negative", {"raw": {"input_tokens": -5}}, ": row 2: input_tokens", ">= 0"),
              ("non_integer", {"raw": {"output_tokens": 2.5}}, ": row 2: output_tokens",
               "expected an integer")],
}


def faulty(fmt: str, tmp_path: Path, fault: dict) -> Path:
    rows = even(4, gap=2.0)
    target = 2 if fault.get("t2") else 1  # out of order: the third row goes back in time
    if "t2" in fault:
        rows[target]["t"] = 0.5
    rows[target].update({k: v for k, v in fault.items() if k in ("raw", "drop")})
    return write(fmt, tmp_path / f"bad{SUFFIX[fmt]}", rows)


CASES = [(fmt, *case) for fmt, cases in FAULTS.items() for case in cases]


@pytest.mark.parametrize("fmt,fault,spec,where,reason", CASES,
                         ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_a_bad_line_is_one_error_or_counted_and_skipped(tmp_path, fmt, fault, spec, where,
                                                        reason):
    p = faulty(fmt, tmp_path, spec)
    with pytest.raises(ConfigError) as e:
        load(p, fmt)
    msg = str(e.value)
    assert msg.startswith(f"{p}{where}:") and reason in msg and "\n" not in msg, msg
    t = load(p, fmt, on_error="skip")
    assert len(t) == 3 and t.notes["skipped_lines"] == 1
    assert t.notes["first_skipped"] == msg


@pytest.mark.parametrize("fmt", ["azure", "burstgpt"])
def test_csv_missing_column_names_it(tmp_path, fmt):
    p = tmp_path / "t.csv"
    p.write_text("TIMESTAMP,ContextTokens\n0,5\n" if fmt == "azure" else
                 "Timestamp,Model,Request tokens\n0,ChatGPT,5\n")
    with pytest.raises(ConfigError) as e:
        load(p, fmt, on_error="skip")  # a file-level fault is never skipped
    col = "generatedtokens" if fmt == "azure" else "response tokens"
    assert str(e.value).startswith(f"{p}:1: {col}: missing column")


def test_cosim_missing_and_non_numeric_columns(tmp_path):
    p = tmp_path / "r.parquet"
    pd.DataFrame({"session": [0], "turn": [0], "prefix_tokens": [0], "input_tokens": [5],
                  "output_tokens": [3]}).to_parquet(p, index=False)
    with pytest.raises(ConfigError, match=rf"^{p}: arrival_s: missing column"):
        load(p, "cosim")
    pd.DataFrame({"session": [0], "turn": [0], "prefix_tokens": [0], "input_tokens": ["5"],
                  "output_tokens": [3], "arrival_s": [0.0]}).to_parquet(p, index=False)
    with pytest.raises(ConfigError, match=rf"^{p}: input_tokens: expected numbers"):
        load(p, "cosim")


def test_cosim_rows_in_any_order_replay_by_arrival(tmp_path):
    # documented: requests.parquet is a table, so sessions are ordered by first arrival
    p = write("cosim", tmp_path / "r.parquet",
              [{"t": 3.0, "i": 30, "o": 2}, {"t": 1.0, "i": 10, "o": 2}, {"t": 2.0, "i": 20, "o": 2}])
    t = load(p, "cosim")
    assert t.input_tokens.tolist() == [10, 20, 30] and t.start_s.tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("fmt", FORMATS)
def test_non_utf8_byte_names_the_line(tmp_path, fmt):
    p = tmp_path / f"bad{SUFFIX[fmt]}"
    if fmt == "cosim":
        p.write_bytes(b"PAR1\xff\xfe not parquet")
        with pytest.raises(ConfigError, match=rf"^{p}: not a Parquet file"):
            load(p, fmt)
        return
    good = write(fmt, tmp_path / f"good{SUFFIX[fmt]}", even(3)).read_bytes().splitlines()
    good.insert(2, good[2].replace(b"1", b"\xff1", 1))
    p.write_bytes(b"\n".join(good) + b"\n")
    with pytest.raises(ConfigError) as e:
        load(p, fmt)
    assert str(e.value).startswith(f"{p}:3: not UTF-8") and "\n" not in str(e.value)
    assert load(p, fmt, on_error="skip").notes["skipped_lines"] == 1


def test_skipped_count_lands_in_summary_json(tmp_path):
    p = faulty("mooncake", tmp_path, {"raw": {"output_length": -3}})
    res = cosim.simulate(["workload=mooncake_sample", f"workload.trace.path={p}",
                          "workload.trace.on_error=skip", "output.progress=false",
                          "deployment.comm.model=none"], step_cost_factory=toy)
    notes = res.summary["workload_notes"]
    assert notes["skipped_lines"] == 1 and res.summary["requests_completed"] == 3
    assert ":2: output_length" in notes["first_skipped"]


@pytest.mark.parametrize("fmt,spec,needle", [
    ("mooncake", {"raw": {"input_length": -10}}, ":2: input_length: must be >= 1"),
    ("bailian", {"drop": ["chat_id"]}, ":2: chat_id: missing"),
    ("azure", {"raw": {"ContextTokens": "ten"}}, ":3: ContextTokens: expected an integer"),
    ("burstgpt", {"raw": {"Response tokens": -1}}, ":3: Response tokens: must be >= 0"),
    ("cosim", {"raw": {"input_tokens": -5}}, ": row 2: input_tokens: must be >= 0"),
])
def test_cli_bad_trace_is_one_line_and_exit_2(tmp_path, fmt, spec, needle):
    p = faulty(fmt, tmp_path, spec)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", "from cosim.cli import main; main()",
                           "workload=mooncake_sample", f"workload.trace.path={p}",
                           f"workload.trace.format={fmt}", "output.progress=false",
                           f"hydra.run.dir={tmp_path / 'run'}"],
                          capture_output=True, text=True, env=env, timeout=300)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and f"{p}{needle}" in lines[0] and "Traceback" not in proc.stderr


def test_options_compose_from_the_command_line():
    res = cosim.simulate(["workload=mooncake_sample", "workload.trace.window_start_s=60",
                          "workload.trace.window_end_s=180", "workload.trace.sample_fraction=0.5",
                          "workload.trace.rate_per_s=4", "workload.num_requests=50",
                          "output.progress=false", "deployment.comm.model=none"],
                         step_cost_factory=toy)
    notes = res.summary["workload_notes"]
    assert res.summary["requests_completed"] == notes["requests_replayed"] == 50
    assert notes["rate_per_s"] == pytest.approx(4.0) and notes["window_s"] == [60.0, 180.0]
    with pytest.raises(ConfigError, match="set either rate_per_s or time_scale"):
        cosim.simulate(["workload=mooncake_sample", "workload.trace.rate_per_s=4",
                        "workload.trace.time_scale=2", "output.progress=false"],
                       step_cost_factory=toy)


def test_csv_session_column_groups_sampling(tmp_path):
    p = tmp_path / "b.csv"
    head = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type,Session ID\n"
    body = "".join(f"{k},ChatGPT,{100 + k},5,{105 + k},Conversation log,s{k // 3}\n"
                   for k in range(60))  # sessions of three requests
    p.write_text(head + body)
    t = load(p, "burstgpt", session_column="Session ID", sample_fraction=0.5, sample_seed=2)
    assert t.notes["conversations"] == len(t) // 3 and 0 < len(t) < 60
    _, counts = np.unique(t.conversation, return_counts=True)
    assert (counts == 3).all()
    with pytest.raises(ConfigError, match=r":1: Session: missing column"):
        load(p, "burstgpt", session_column="Session")
