"""CSV request traces: Azure LLM inference 2023/2024 and BurstGPT.

Azure (github.com/Azure/AzurePublicDataset, CC-BY-4.0): `TIMESTAMP, ContextTokens,
GeneratedTokens`; TIMESTAMP is an ISO date-time (2023/2024 releases) or seconds.
BurstGPT (github.com/HPMLL/BurstGPT, CC-BY-4.0): `Timestamp, Model, Request tokens,
Response tokens, Total tokens, Log Type` with Timestamp in seconds; rows with 0 response
tokens are failed requests and are skipped (counted in notes["skipped_failed"]).

Every request is its own session with no known prefix reuse (these traces carry no block
hashes). Lines must be in time order; out-of-order timestamps are an error naming the line.
Errors name file, line and column.
"""

from __future__ import annotations

import csv
import io
import math
import re
from datetime import datetime
from pathlib import Path

import numpy as np

from cosim.errors import ConfigError
from cosim.workload.requests import RequestTable

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


def _count(v: str, where: str, minimum: int) -> int:
    try:
        f = float(v)
    except ValueError:
        raise ConfigError(where, f"expected an integer, got {v!r}") from None
    if not math.isfinite(f) or f != int(f) or abs(f) > 2**53:
        raise ConfigError(where, f"expected an integer, got {v!r}")
    if f < minimum:
        raise ConfigError(where, f"must be >= {minimum}, got {v}")
    return int(f)


def read_csv_trace(path: str | Path, fmt: str, max_requests: int = 0, max_context: int = 0,
                   time_scale: float = 1.0) -> RequestTable:
    """Read an Azure or BurstGPT CSV trace into a RequestTable (one session per row)."""
    path = Path(path)
    if fmt not in COLUMNS:
        raise ConfigError("workload.trace.format", f"{fmt!r} is not a CSV format ({', '.join(COLUMNS)})")
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError("workload.trace.path", f"trace file not found: {path}") from None
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}", f"not UTF-8 text (byte {e.start})") from None
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if header is None:
        raise ConfigError("workload.trace.path", f"{path} is empty")
    names = [h.strip().lower() for h in header]
    idx = {}
    for col in COLUMNS[fmt]:
        if col not in names:
            raise ConfigError(f"{path}:1: {col}", f"missing column (header: {', '.join(header)})")
        idx[col] = names.index(col)
    t_col, i_col, o_col = COLUMNS[fmt]
    ts: list[float] = []
    isl: list[int] = []
    osl: list[int] = []
    failed = 0
    for row in reader:
        lineno = reader.line_num
        if max_requests and len(ts) >= max_requests:
            break
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < len(names):
            raise ConfigError(f"{path}:{lineno}", f"{len(row)} fields, header has {len(names)}")
        where = f"{path}:{lineno}"
        t = _time(row[idx[t_col]], f"{where}: {header[idx[t_col]].strip()}")
        i = _count(row[idx[i_col]], f"{where}: {header[idx[i_col]].strip()}", 1)
        o = _count(row[idx[o_col]], f"{where}: {header[idx[o_col]].strip()}", 0)
        if o == 0:  # BurstGPT logs failed requests with no response; nothing to serve
            failed += 1
            continue
        if ts and t * time_scale < ts[-1]:
            raise ConfigError(f"{where}: {header[idx[t_col]].strip()}",
                              "timestamps must be in order (sort the file first)")
        if max_context and i + o > max_context:
            raise ConfigError(f"{where}: {header[idx[i_col]].strip()}",
                              f"input {i} + output {o} tokens exceed the model context of "
                              f"{max_context} tokens")
        ts.append(t * time_scale)
        isl.append(i)
        osl.append(o)
    n = len(ts)
    if n == 0:
        raise ConfigError("workload.trace.path", f"{path} holds no requests")
    start = np.asarray(ts) - ts[0]
    return RequestTable(
        session=np.arange(n, dtype=np.int64), turn=np.zeros(n, dtype=np.int32),
        prefix_tokens=np.zeros(n, dtype=np.int64), input_tokens=np.asarray(isl, dtype=np.int64),
        output_tokens=np.asarray(osl, dtype=np.int64), pool_id=np.full(n, -1, dtype=np.int64),
        pool_tokens=np.zeros(n, dtype=np.int64), start_s=start, think_s=np.zeros(n),
        source=str(path), notes={"skipped_failed": failed, "format": fmt})
