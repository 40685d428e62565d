"""Request traces as JSON lines in the Mooncake format (FAST'25 traces, 512-token blocks):

    {"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47, ...]}

`timestamp` is the arrival in milliseconds, `hash_ids` one id per `block_tokens` of the
prompt (the last block may be partial); equal ids at equal positions are the same tokens with
the same prefix, so they map directly onto the KV cache's block hashes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from cosim.config.workload import TraceConfig, WorkloadConfig
from cosim.errors import ConfigError
from cosim.files import write_atomic
from cosim.paths import data_dir
from cosim.workload.arrivals import session_start_times
from cosim.workload.block_hashes import BlockHasher
from cosim.workload.requests import RequestTable
from cosim.workload.traces import detect_format, read_bailian, read_cosim, read_csv_trace
from cosim.workload.traces.options import TraceOptions, apply_options
from cosim.workload.traces.records import LineErrors, TraceRows, json_lines, request_fields

REQUIRED = ("timestamp", "input_length", "output_length")


def resolve_trace_path(path: str) -> Path:
    """An absolute path, or one relative to the working directory or the traces/ folder."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return data_dir("traces") / p


def read_trace(path: str | Path, block_tokens: int = 512, max_requests: int = 0,
               max_context: int = 0, time_scale: float = 1.0,
               on_error: str = "error") -> RequestTable:
    """Read a Mooncake-style JSONL trace into a RequestTable (one session per line).

    Errors name the file, line and key (`on_error="skip"` counts and skips bad lines).
    `max_context` > 0 rejects requests that do not fit.
    """
    path = Path(path)
    errors = LineErrors(on_error)
    rows = TraceRows(path, max_requests)
    for _lineno, where, rec in json_lines(path, errors):
        if rows.full:
            break
        try:
            t, i, o, h = request_fields(rec, where, REQUIRED, max_context, block_tokens, "ms")
            rows.check_order(t / 1000.0, f"{where}: timestamp", f" ({t:g} ms)")
        except ConfigError as err:
            errors.handle(err)
            continue
        rows.add(t / 1000.0, i, o, h)
    return rows.table({"format": "mooncake", **errors.notes()}, block_tokens, time_scale,
                      hashes=True)


# format -> reader(path, trace config, max_requests, max_context)
READERS: dict[str, Callable[[Path, TraceConfig, int, int], RequestTable]] = {
    "mooncake": lambda p, tc, n, c: read_trace(p, tc.block_tokens, n, c, on_error=tc.on_error),
    "bailian": lambda p, tc, n, c: read_bailian(p, tc.block_tokens, n, c, on_error=tc.on_error),
    "azure": lambda p, tc, n, c: read_csv_trace(p, "azure", n, c, on_error=tc.on_error,
                                                session_column=tc.session_column),
    "burstgpt": lambda p, tc, n, c: read_csv_trace(p, "burstgpt", n, c, on_error=tc.on_error,
                                                   session_column=tc.session_column),
    "cosim": lambda p, tc, n, c: read_cosim(p, c, on_error=tc.on_error),
}


def read_trace_for_workload(cfg: WorkloadConfig, model_max_context: int,
                            rng: np.random.Generator) -> RequestTable:
    """The trace of `cfg.trace` after its options (window, sampling, the cfg.num_requests
    cap, time scaling: cosim.workload.traces.options), with the configured arrivals."""
    tc = cfg.trace
    path = resolve_trace_path(tc.path)
    fmt = tc.format
    if fmt == "auto":
        fmt = detect_format(path)
    opt = TraceOptions(window_start_s=float(tc.window_start_s),
                       window_end_s=None if tc.window_end_s is None else float(tc.window_end_s),
                       sample_fraction=float(tc.sample_fraction), sample_seed=int(tc.sample_seed),
                       max_requests=int(cfg.num_requests), time_scale=float(tc.time_scale),
                       rate_per_s=None if tc.rate_per_s is None else float(tc.rate_per_s))
    # the readers may stop at the cap when nothing else drops rows (same result, less reading)
    cap = 0 if opt.selects else opt.max_requests
    reader = READERS.get(fmt)
    if reader is None:
        raise ConfigError("workload.trace.format", f"unknown format {fmt!r}")
    table = reader(path, tc, cap, cfg.context_limit(model_max_context))
    table = apply_options(table, opt)
    first = table.session_first_rows()
    if cfg.arrival.process != "trace":
        table.start_s = np.full(len(table), np.nan)
        table.start_s[first] = session_start_times(cfg.arrival, first.size, rng)
    if cfg.arrival.think_time_s > 0:
        table.think_s = rng.exponential(cfg.arrival.think_time_s, len(table))
    return table


def write_trace(path: str | Path, timestamps_s: Sequence[float], input_lengths: Sequence[int],
                output_lengths: Sequence[int], hash_ids: Sequence[Sequence[int]]) -> None:
    """Write a Mooncake-style JSONL trace (atomically: a temporary file, then a rename)."""
    def write(tmp: Path) -> None:
        with open(tmp, "w") as f:
            for t, i, o, h in zip(timestamps_s, input_lengths, output_lengths, hash_ids, strict=True):
                f.write(json.dumps({"timestamp": int(round(float(t) * 1000)),
                                    "input_length": int(i), "output_length": int(o),
                                    "hash_ids": [int(x) for x in h]}) + "\n")

    write_atomic(path, write)


def trace_hash_ids(table: RequestTable, block_tokens: int = 512) -> list[list[int]]:
    """Mooncake-style hash ids of each request's prompt: equal content gets equal small ids.

    Full blocks take their content hash (cosim.workload.block_hashes); a partial last block
    gets an id of its own. Ids are numbered in order of first appearance, as in Mooncake.
    """
    hasher = BlockHasher(table, block_tokens)
    names: dict[int, int] = {}
    out = []
    for rid, prompt in enumerate(table.prompt_tokens.tolist()):
        full = prompt // block_tokens
        row = [names.setdefault(h, len(names)) for h in hasher.hashes(rid, 0, full)]
        if prompt % block_tokens:
            row.append(names.setdefault(-1 - rid, len(names)))  # partial block: its own id
        out.append(row)
    return out
