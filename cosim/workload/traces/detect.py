"""Tell a request-trace file's format from its first non-empty line."""

from __future__ import annotations

import json
from pathlib import Path

from cosim.errors import ConfigError

FORMATS = ("mooncake", "bailian", "azure", "burstgpt", "cosim")


def detect_format(path: str | Path) -> str:
    """`cosim` (a Parquet file), `bailian` (JSON object with chat_id), `mooncake` (JSON
    object with input_length), `azure` or `burstgpt` (CSV header); an error naming the
    formats otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("workload.trace.path", f"trace file not found: {path}")
    try:
        with path.open("rb") as f:
            if f.read(4) == b"PAR1":  # Parquet's magic number: a run's requests.parquet
                return "cosim"
            f.seek(0)
            first = b""
            for raw in f:
                if raw.strip():
                    first = raw
                    break
    except OSError as e:
        raise ConfigError("workload.trace.path", f"cannot read {path}: {e.strerror}") from None
    try:
        line = first.decode("utf-8").strip()
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}:1", f"not UTF-8 text (byte {e.start})") from None
    if line.startswith("{"):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            rec = None
        if isinstance(rec, dict) and "chat_id" in rec:
            return "bailian"
        if isinstance(rec, dict) and "input_length" in rec:
            return "mooncake"
    cols = {c.strip().lower() for c in line.lstrip("\ufeff").split(",")}
    if {"timestamp", "contexttokens", "generatedtokens"} <= cols:
        return "azure"
    if {"timestamp", "request tokens", "response tokens"} <= cols:
        return "burstgpt"
    raise ConfigError("workload.trace.format",
                      f"cannot tell the format of {path}; set one of {', '.join(FORMATS)}")
