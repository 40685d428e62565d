"""Checks shared by the JSONL trace readers (Mooncake, Bailian): one record's fields."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

from cosim.errors import ConfigError


def int_field(rec: dict, key: str, where: str, minimum: int) -> int:
    """rec[key] as an int >= minimum; errors name `<file>:<line>: <key>`."""
    v = rec.get(key)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
            or v != int(v) or abs(v) > 2**53:
        raise ConfigError(f"{where}: {key}", f"expected an integer, got {v!r}")
    if v < minimum:
        raise ConfigError(f"{where}: {key}", f"must be >= {minimum}, got {v}")
    return int(v)


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
    if max_context and i + o > max_context:
        raise ConfigError(f"{where}: input_length",
                          f"input {i} + output {o} tokens exceed the model context of "
                          f"{max_context} tokens")
    h = rec.get("hash_ids", [])
    if not isinstance(h, list) or not all(isinstance(x, int) and not isinstance(x, bool)
                                          and 0 <= x < 1 << 52 for x in h):
        raise ConfigError(f"{where}: hash_ids", "must be a list of integers in [0, 2**52)")
    if len(h) > -(-i // block_tokens):
        raise ConfigError(f"{where}: hash_ids",
                          f"{len(h)} ids for {i} input tokens is more than one per "
                          f"{block_tokens}-token block (workload.trace.block_tokens)")
    return float(t), i, o, h


def json_lines(path: Path, max_records: int = 0) -> Iterator[tuple[int, str, object]]:
    """(line number, "<file>:<line>", parsed JSON) of each non-blank line of a JSONL trace.

    Stops after `max_records` (0: all); a line that is not UTF-8 or not JSON is a ConfigError
    naming the file and line.
    """
    if not path.is_file():
        raise ConfigError("workload.trace.path", f"trace file not found: {path}")
    count = 0
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            if max_records and count >= max_records:
                return
            where = f"{path}:{lineno}"
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
            count += 1
            yield lineno, where, rec
