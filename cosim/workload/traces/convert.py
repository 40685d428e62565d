"""Convert a request trace in another column layout into one of the formats cosim reads.

The input is CSV (a header row) or JSON lines; flags name its columns (time, input tokens,
output tokens, optionally session and hash ids). Rows are sorted by time (stable) and written
relative to the first request:

- `mooncake`: JSONL `timestamp` (ms), `input_length`, `output_length`, `hash_ids`;
- `bailian`: JSONL `chat_id` (row number), `parent_chat_id` (the session's previous row, -1),
  `turn` (1, 2, ... within the session), `timestamp` (s), lengths, `hash_ids`;
- `azure`: CSV `TIMESTAMP` (s), `ContextTokens`, `GeneratedTokens`;
- `burstgpt`: CSV `Timestamp` (s), `Model`, `Request tokens`, `Response tokens`,
  `Total tokens`, `Log Type`.

Hash ids are copied as given (a JSON list, or integers separated by spaces or `;` in a CSV
cell); nothing is made up: without a hash column the output has no prefix reuse. Rows with 0
output tokens (failed requests) are dropped and counted. A malformed row is a ConfigError
naming file, line and column (or counted and skipped with on_error="skip").
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cosim.errors import ConfigError
from cosim.files import write_atomic
from cosim.workload.traces.records import LineErrors, json_lines, parse_count

OUTPUT_FORMATS = ("mooncake", "bailian", "azure", "burstgpt")
TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "iso": 0.0}
_SURROGATE = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class Columns:
    """Which input columns hold what (names as in the header / JSON keys)."""

    time: str
    input: str
    output: str
    session: str | None = None
    hash_ids: str | None = None
    time_unit: str = "s"  # s | ms | us | ns | iso (an ISO 8601 date-time)


@dataclass
class Row:
    t: float
    isl: int
    osl: int
    session: str | None
    hash_ids: list[int]


def _time(v: object, unit: str, where: str) -> float:
    if unit == "iso":
        try:
            iso = re.sub(r"(\.\d{6})\d+", r"\1", str(v).strip().replace("Z", "+00:00"))
            return datetime.fromisoformat(iso).timestamp()
        except ValueError:
            raise ConfigError(where, f"expected an ISO date-time, got {v!r}") from None
    try:
        t = float(v) if not isinstance(v, bool) else math.nan
    except (TypeError, ValueError):
        raise ConfigError(where, f"expected a number of {unit}, got {v!r}") from None
    if not math.isfinite(t):
        raise ConfigError(where, f"expected a finite number of {unit}, got {v!r}")
    return t * TIME_UNITS[unit]




def _hashes(v: object, where: str) -> list[int]:
    if v is None or v == "":
        return []
    if isinstance(v, str):
        s = v.strip()
        try:
            v = json.loads(s) if s.startswith("[") else [int(x) for x in re.split(r"[;\s]+", s) if x]
        except ValueError:
            raise ConfigError(where, f"expected a list of integers, got {s[:40]!r}") from None
    if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool)
                                          and 0 <= x < 1 << 52 for x in v):
        raise ConfigError(where, "expected a list of integers in [0, 2**52)")
    return v


def _csv_records(path: Path, errors: LineErrors, wanted: list[str]) -> Iterator[tuple[int, dict]]:
    try:
        text = path.read_bytes().decode("utf-8", errors="surrogateescape")
    except OSError as e:
        raise ConfigError(str(path), f"cannot read: {e.strerror}") from None
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header = next(reader, None)
    if not header:
        raise ConfigError(str(path), "empty (no header row)")
    names = [h.strip() for h in header]
    for c in wanted:
        if c not in names:
            raise ConfigError(f"{path}:1: {c}", f"missing column (header: {', '.join(names)})")
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            errors.handle(ConfigError(f"{path}:{reader.line_num}", f"not a CSV row ({e})"))
            continue
        if not row or all(not c.strip() for c in row):
            continue
        if any(_SURROGATE.search(c) for c in row):
            errors.handle(ConfigError(f"{path}:{reader.line_num}", "not UTF-8 text"))
            continue
        yield reader.line_num, dict(zip(names, row, strict=False))


def read_rows(path: str | Path, cols: Columns, fmt: str = "auto",
              errors: LineErrors | None = None) -> tuple[list[Row], int]:
    """(rows sorted by time, rows dropped for 0 output tokens) of a CSV or JSONL input."""
    path = Path(path)
    errors = errors or LineErrors()
    if cols.time_unit not in TIME_UNITS:
        raise ConfigError("--time-unit", f"must be one of {', '.join(TIME_UNITS)}, "
                          f"got {cols.time_unit!r}")
    if not path.is_file():
        raise ConfigError(str(path), "no such file")
    if fmt == "auto":
        with path.open("rb") as f:
            head = f.read(1 << 12).lstrip()
        fmt = "jsonl" if head.startswith(b"{") else "csv"
    wanted = [c for c in (cols.time, cols.input, cols.output, cols.session, cols.hash_ids) if c]
    records: Iterator[tuple[int, object]]
    if fmt == "csv":
        records = _csv_records(path, errors, wanted)
    elif fmt == "jsonl":
        records = ((ln, rec) for ln, _w, rec in json_lines(path, errors))
    else:
        raise ConfigError("--input-format", f"must be auto, csv or jsonl, got {fmt!r}")
    rows: list[Row] = []
    dropped = 0
    for lineno, rec in records:
        where = f"{path}:{lineno}"
        try:
            if not isinstance(rec, dict):
                raise ConfigError(where, "each line must be a JSON object")
            for c in wanted:
                if c not in rec:
                    raise ConfigError(f"{where}: {c}", "missing")
            t = _time(rec[cols.time], cols.time_unit, f"{where}: {cols.time}")
            i = parse_count(rec[cols.input], f"{where}: {cols.input}", 1)
            o = parse_count(rec[cols.output], f"{where}: {cols.output}", 0)
            h = _hashes(rec[cols.hash_ids], f"{where}: {cols.hash_ids}") if cols.hash_ids else []
            s = None if cols.session is None else str(rec[cols.session])
        except ConfigError as err:
            errors.handle(err)
            continue
        if o == 0:
            dropped += 1
            continue
        rows.append(Row(t, i, o, s, h))
    if not rows:
        raise ConfigError(str(path), "holds no requests")
    rows.sort(key=lambda r: r.t)
    return rows, dropped


def write_rows(rows: list[Row], out: str | Path, to: str) -> None:
    """Write `rows` (time-sorted) in format `to`, times relative to the first row."""
    if to not in OUTPUT_FORMATS:
        raise ConfigError("--to", f"must be one of {', '.join(OUTPUT_FORMATS)}, got {to!r}")
    t0 = rows[0].t
    last: dict[str, int] = {}
    turns: dict[str, int] = {}

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as f:
            if to in ("azure", "burstgpt"):
                w = csv.writer(f, lineterminator="\n")
                w.writerow(["TIMESTAMP", "ContextTokens", "GeneratedTokens"] if to == "azure"
                           else ["Timestamp", "Model", "Request tokens", "Response tokens",
                                 "Total tokens", "Log Type"])
                for r in rows:
                    t = round(r.t - t0, 6)
                    w.writerow([t, r.isl, r.osl] if to == "azure" else
                               [t, "unknown", r.isl, r.osl, r.isl + r.osl, "Conversation log"])
                return
            for k, r in enumerate(rows):
                if to == "mooncake":
                    rec = {"timestamp": int(round((r.t - t0) * 1000)), "input_length": r.isl,
                           "output_length": r.osl, "hash_ids": r.hash_ids}
                else:
                    parent = last.get(r.session, -1) if r.session is not None else -1
                    turn = turns.get(r.session, 1) if r.session is not None else 1
                    if r.session is not None:
                        last[r.session] = k
                        turns[r.session] = turn + 1
                    rec = {"chat_id": k, "parent_chat_id": parent, "timestamp": round(r.t - t0, 6),
                           "input_length": r.isl, "output_length": r.osl, "type": "text",
                           "turn": turn, "hash_ids": r.hash_ids}
                f.write(json.dumps(rec) + "\n")

    write_atomic(Path(out), write)
