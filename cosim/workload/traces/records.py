"""Pieces shared by the request-trace readers: one JSONL record's fields, the policy for a
malformed line (error or count and skip), and the rows of a one-request-per-line trace."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from cosim.errors import ConfigError
from cosim.workload.requests import RequestTable

ON_ERROR = ("error", "skip")


class LineErrors:
    """What a reader does with a malformed line (workload.trace.on_error).

    `error`: raise its ConfigError (file, line, field). `skip`: count it, keep the first
    message, and go on; the count lands in the table's notes (summary.json workload_notes).
    Errors about the whole file (missing, empty, a missing column) always raise.
    """

    def __init__(self, on_error: str = "error"):
        if on_error not in ON_ERROR:
            raise ConfigError("workload.trace.on_error",
                              f"must be one of {', '.join(ON_ERROR)}, got {on_error!r}")
        self.skip = on_error == "skip"
        self.count = 0
        self.first = ""

    def handle(self, err: ConfigError) -> None:
        """Raise `err`, or count it when skipping."""
        if not self.skip:
            raise err
        self.count += 1
        if not self.first:
            self.first = str(err)

    def notes(self) -> dict:
        out: dict = {"skipped_lines": self.count}
        if self.first:
            out["first_skipped"] = self.first
        return out


def parse_count(v: object, where: str, minimum: int) -> int:
    """A token count from a CSV cell or a JSON value: an integer (written as one, or as a
    float with no fraction) >= `minimum`; else a ConfigError naming `where`."""
    try:
        f = float(v) if not isinstance(v, bool) else math.nan
    except (TypeError, ValueError):
        raise ConfigError(where, f"expected an integer, got {v!r}") from None
    if not math.isfinite(f) or f != int(f) or abs(f) > 2**53:
        raise ConfigError(where, f"expected an integer, got {v!r}")
    if f < minimum:
        raise ConfigError(where, f"must be >= {minimum}, got {v}")
    return int(f)


def int_field(rec: dict, key: str, where: str, minimum: int) -> int:
    """rec[key] as an int >= minimum; errors name `<file>:<line>: <key>`."""
    v = rec.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
            or v != int(v) or abs(v) > 2**53:
        raise ConfigError(f"{where}: {key}", f"expected an integer, got {v!r}")
    if v < minimum:
        raise ConfigError(f"{where}: {key}", f"must be >= {minimum}, got {v}")
    return int(v)


def check_hash_ids(h: object, where: str, input_tokens: int, block_tokens: int) -> list[int]:
    """A record's hash ids: a list of ints in [0, 2**52), at most one per block of the prompt."""
    if not isinstance(h, list) or not all(isinstance(x, int) and not isinstance(x, bool)
                                          and 0 <= x < 1 << 52 for x in h):
        raise ConfigError(f"{where}: hash_ids", "must be a list of integers in [0, 2**52)")
    if len(h) > -(-input_tokens // block_tokens):
        raise ConfigError(f"{where}: hash_ids",
                          f"{len(h)} ids for {input_tokens} input tokens is more than one per "
                          f"{block_tokens}-token block (workload.trace.block_tokens)")
    return h


def check_context(where: str, i: int, o: int, max_context: int) -> None:
    if max_context and i + o > max_context:
        raise ConfigError(where, f"input {i} + output {o} tokens exceed the model context of "
                                 f"{max_context} tokens")


def request_fields(rec: dict, where: str, required: tuple[str, ...], max_context: int,
                   block_tokens: int, unit: str) -> tuple[float, int, int, list[int]]:
    """(timestamp, input tokens, output tokens, hash ids) of one JSONL trace record."""
    if not isinstance(rec, dict):
        raise ConfigError(where, "each line must be a JSON object")
    for key in required:
        if key not in rec:
            raise ConfigError(f"{where}: {key}", "missing")
    t = rec["timestamp"]
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0:
        raise ConfigError(f"{where}: timestamp", f"must be a number >= 0 ({unit}), got {t!r}")
    i = int_field(rec, "input_length", where, 1)
    o = int_field(rec, "output_length", where, 1)
    check_context(f"{where}: input_length", i, o, max_context)
    h = check_hash_ids(rec.get("hash_ids", []), where, i, block_tokens)
    return float(t), i, o, h


def json_lines(path: Path, errors: LineErrors | None = None) -> Iterator[tuple[int, str, object]]:
    """(line number, "<file>:<line>", parsed JSON) of each non-blank line of a JSONL trace.

    A line that is not UTF-8 or not JSON is a ConfigError naming the file and line (or is
    counted and skipped, per `errors`).
    """
    errors = errors or LineErrors()
    if not path.is_file():
        raise ConfigError("workload.trace.path", f"trace file not found: {path}")
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            where = f"{path}:{lineno}"
            try:
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    raise ConfigError(where, f"not UTF-8 (byte {e.start + 1}: {e.reason})") from None
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise ConfigError(where, f"not valid JSON ({e.msg})") from None
                except RecursionError:
                    raise ConfigError(where, "not a trace record (JSON nested too deep)") from None
                except ValueError as e:  # e.g. an integer literal beyond Python's digit limit
                    raise ConfigError(where, f"not a trace record ({str(e).splitlines()[0]})") \
                        from None
            except ConfigError as err:
                errors.handle(err)
                continue
            yield lineno, where, rec


class TraceRows:
    """Requests of a one-request-per-line trace, gathered line by line in time order."""

    def __init__(self, path: Path, max_requests: int = 0):
        self.path = path
        self.max_requests = int(max_requests)
        self.t: list[float] = []
        self.isl: list[int] = []
        self.osl: list[int] = []
        self.ptr: list[int] = [0]
        self.ids: list[int] = []
        self.conv: list[int] = []

    @property
    def full(self) -> bool:
        return bool(self.max_requests) and len(self.t) >= self.max_requests

    def check_order(self, t: float, where: str, unit_note: str = "") -> None:
        """Out-of-order timestamps are an error naming the line (documented in docs/traces.md)."""
        if self.t and t < self.t[-1]:
            raise ConfigError(where, f"earlier than the line before{unit_note} "
                                     "(lines must be in timestamp order; sort the file first)")

    def add(self, t: float, i: int, o: int, hash_ids: list[int] | None = None,
            conversation: int = -1) -> None:
        self.t.append(t)
        self.isl.append(i)
        self.osl.append(o)
        if hash_ids:
            self.ids.extend(hash_ids)
        self.ptr.append(len(self.ids))
        self.conv.append(conversation)

    def table(self, notes: dict, block_tokens: int = 0, time_scale: float = 1.0,
              hashes: bool = False) -> RequestTable:
        """One session per line, start times from the first line (times `time_scale`)."""
        n = len(self.t)
        if n == 0:
            raise ConfigError("workload.trace.path", f"{self.path} holds no requests")
        t = np.asarray(self.t, dtype=np.float64)
        conv = np.asarray(self.conv, dtype=np.int64)
        return RequestTable(
            session=np.arange(n, dtype=np.int64), turn=np.zeros(n, dtype=np.int32),
            prefix_tokens=np.zeros(n, dtype=np.int64),
            input_tokens=np.asarray(self.isl, dtype=np.int64),
            output_tokens=np.asarray(self.osl, dtype=np.int64),
            pool_id=np.full(n, -1, dtype=np.int64), pool_tokens=np.zeros(n, dtype=np.int64),
            start_s=(t - t[0]) * time_scale, think_s=np.zeros(n),
            trace_hash_ptr=np.asarray(self.ptr, dtype=np.int64) if hashes else None,
            trace_hashes=np.asarray(self.ids, dtype=np.int64) if hashes else None,
            trace_block_tokens=int(block_tokens) if hashes else 0,
            conversation=conv if (conv >= 0).any() else None,
            source=str(self.path), notes=notes)
