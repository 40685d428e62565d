"""CSV request traces: Azure LLM inference 2023/2024 and BurstGPT.

Azure (github.com/Azure/AzurePublicDataset, CC-BY-4.0): `TIMESTAMP, ContextTokens,
GeneratedTokens`; TIMESTAMP is an ISO date-time (2023/2024 releases) or seconds.
BurstGPT (github.com/HPMLL/BurstGPT, CC-BY-4.0): `Timestamp, Model, Request tokens,
Response tokens, Total tokens, Log Type` with Timestamp in seconds; rows with 0 response
tokens are failed requests and are skipped (counted in notes["skipped_failed"]).

Every request is its own session with no known prefix reuse (these traces carry no block
hashes). Lines must be in time order; out-of-order timestamps are an error naming the line.
Errors name file, line and column; workload.trace.on_error=skip counts and skips such lines.
"""

from __future__ import annotations

import csv
import io
import math
import re
from datetime import datetime
from pathlib import Path

from cosim.errors import ConfigError
from cosim.workload.requests import RequestTable
from cosim.workload.traces.records import LineErrors, TraceRows, check_context, parse_count

COLUMNS = {
    "azure": ("timestamp", "contexttokens", "generatedtokens"),
    "burstgpt": ("timestamp", "request tokens", "response tokens"),
}


def _time(v: str, where: str) -> float:
    try:
        t = float(v)
    except ValueError:
        try:
            # Azure 2023 writes 7 fractional digits ("18:15:46.6805900"); keep microseconds
            iso = re.sub(r"(\.\d{6})\d+", r"\1", v.strip().replace("Z", "+00:00"))
            t = datetime.fromisoformat(iso).timestamp()
        except ValueError:
            raise ConfigError(where, f"expected seconds or an ISO date-time, got {v!r}") from None
    if not math.isfinite(t):
        raise ConfigError(where, f"must be finite, got {v!r}")
    return t




def _has_bad_bytes(row: list[str]) -> int:
    """1-based column of the first field holding a byte that was not UTF-8 (0: none)."""
    for k, c in enumerate(row, start=1):
        if _SURROGATE.search(c):
            return k
    return 0


_SURROGATE = re.compile("[\udc80-\udcff]")  # what errors="surrogateescape" makes of bad bytes


def read_csv_trace(path: str | Path, fmt: str, max_requests: int = 0, max_context: int = 0,
                   time_scale: float = 1.0, on_error: str = "error",
                   session_column: str = "") -> RequestTable:
    """Read an Azure or BurstGPT CSV trace into a RequestTable (one session per row).

    `session_column`: a column whose values group rows into conversations (for sampling)."""
    path = Path(path)
    if fmt not in COLUMNS:
        raise ConfigError("workload.trace.format", f"{fmt!r} is not a CSV format ({', '.join(COLUMNS)})")
    errors = LineErrors(on_error)
    try:
        # bad bytes survive as lone surrogates, so the line that holds one can be named
        text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    except FileNotFoundError:
        raise ConfigError("workload.trace.path", f"trace file not found: {path}") from None
    except IsADirectoryError:
        raise ConfigError("workload.trace.path", f"{path} is a directory") from None
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if header is None:
        raise ConfigError("workload.trace.path", f"{path} is empty")
    if _has_bad_bytes(header):
        raise ConfigError(f"{path}:1", "not UTF-8 text (in the header)")
    names = [h.strip().lower() for h in header]
    idx = {}
    for col in COLUMNS[fmt]:
        if col not in names:
            raise ConfigError(f"{path}:1: {col}", f"missing column (header: {', '.join(header)})")
        idx[col] = names.index(col)
    s_col = -1
    if session_column:
        if session_column.strip().lower() not in names:
            raise ConfigError(f"{path}:1: {session_column}",
                              f"missing column (workload.trace.session_column; header: "
                              f"{', '.join(header)})")
        s_col = names.index(session_column.strip().lower())
    conv_ids: dict[str, int] = {}
    t_col, i_col, o_col = (idx[c] for c in COLUMNS[fmt])
    t_name, i_name, o_name = (header[k].strip() for k in (t_col, i_col, o_col))
    rows = TraceRows(path, max_requests)
    failed = 0
    while not rows.full:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:  # e.g. a NUL byte or an unterminated quote
            errors.handle(ConfigError(f"{path}:{reader.line_num}", f"not a CSV row ({e})"))
            continue
        lineno = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        where = f"{path}:{lineno}"
        try:
            if _has_bad_bytes(row):
                raise ConfigError(where, "not UTF-8 text")
            if len(row) < len(names):
                raise ConfigError(where, f"{len(row)} fields, header has {len(names)}")
            t = _time(row[t_col], f"{where}: {t_name}")
            i = parse_count(row[i_col], f"{where}: {i_name}", 1)
            o = parse_count(row[o_col], f"{where}: {o_name}", 0)
            if o == 0:  # BurstGPT logs failed requests with no response; nothing to serve
                failed += 1
                continue
            rows.check_order(t, f"{where}: {t_name}")
            check_context(f"{where}: {i_name}", i, o, max_context)
        except ConfigError as err:
            errors.handle(err)
            continue
        rows.add(t, i, o, conversation=(conv_ids.setdefault(row[s_col].strip(), len(conv_ids))
                                        if s_col >= 0 else -1))
    notes = {"format": fmt, **errors.notes(), "skipped_failed": failed}
    if s_col >= 0:
        notes["conversations"] = len(set(rows.conv))
    return rows.table(notes,
                      time_scale=time_scale)
