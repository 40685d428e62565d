"""Request traces as JSON lines in the Mooncake format (FAST'25 traces, 512-token blocks):

    {"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47, ...]}

`timestamp` is the arrival in milliseconds, `hash_ids` one id per `block_tokens` of the
prompt (the last block may be partial); equal ids at equal positions are the same tokens with
the same prefix, so they map directly onto the KV cache's block hashes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cosim.config.workload import WorkloadConfig
from cosim.errors import ConfigError
from cosim.files import write_atomic
from cosim.paths import data_dir
from cosim.workload.arrivals import session_start_times
from cosim.workload.block_hashes import BlockHasher
from cosim.workload.requests import RequestTable
from cosim.workload.traces import detect_format, read_bailian, read_csv_trace
from cosim.workload.traces.records import json_lines, request_fields

REQUIRED = ("timestamp", "input_length", "output_length")


def resolve_trace_path(path: str) -> Path:
    """An absolute path, or one relative to the working directory or the traces/ folder."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return data_dir("traces") / p


def read_trace(path: str | Path, block_tokens: int = 512, max_requests: int = 0,
               max_context: int = 0, time_scale: float = 1.0) -> RequestTable:
    """Read a Mooncake-style JSONL trace into a RequestTable (one session per line).

    Errors name the file, line and key. `max_context` > 0 rejects requests that do not fit.
    """
    path = Path(path)
    ts, isl, osl, ptr, ids, linenos = [], [], [], [0], [], []
    for lineno, where, rec in json_lines(path, max_requests):
        linenos.append(lineno)
        t, i, o, h = request_fields(rec, where, REQUIRED, max_context, block_tokens, "ms")
        ts.append(t / 1000.0 * time_scale)
        isl.append(i)
        osl.append(o)
        ids.extend(h)
        ptr.append(len(ids))
    n = len(ts)
    if n == 0:
        raise ConfigError("workload.trace.path", f"{path} holds no requests")
    order = np.argsort(np.asarray(ts), kind="stable")
    if not np.array_equal(order, np.arange(n)):
        k = int(np.nonzero(np.diff(np.asarray(ts)) < 0)[0][0]) + 1
        raise ConfigError(f"{path}:{linenos[k]}: timestamp",
                          f"{ts[k] * 1000 / time_scale:g} ms is earlier than the line before "
                          "(lines must be in timestamp order)")
    t0 = ts[0]
    return RequestTable(
        session=np.arange(n, dtype=np.int64), turn=np.zeros(n, dtype=np.int32),
        prefix_tokens=np.zeros(n, dtype=np.int64), input_tokens=np.asarray(isl, dtype=np.int64),
        output_tokens=np.asarray(osl, dtype=np.int64), pool_id=np.full(n, -1, dtype=np.int64),
        pool_tokens=np.zeros(n, dtype=np.int64), start_s=np.asarray(ts) - t0,
        think_s=np.zeros(n), trace_hash_ptr=np.asarray(ptr, dtype=np.int64),
        trace_hashes=np.asarray(ids, dtype=np.int64), trace_block_tokens=int(block_tokens),
        source=str(path))


def read_trace_for_workload(cfg: WorkloadConfig, model_max_context: int,
                            rng: np.random.Generator) -> RequestTable:
    """The trace of `cfg.trace`, cut to `cfg.num_requests`, with the configured arrivals."""
    path = resolve_trace_path(cfg.trace.path)
    fmt = cfg.trace.format
    if fmt == "auto" and path.is_file():
        fmt = detect_format(path)
    if fmt in ("azure", "burstgpt"):
        table = read_csv_trace(path, fmt, cfg.num_requests, cfg.context_limit(model_max_context),
                               cfg.trace.time_scale)
    elif fmt == "bailian":
        table = read_bailian(path, cfg.trace.block_tokens, cfg.num_requests,
                             cfg.context_limit(model_max_context), cfg.trace.time_scale)
    else:
        table = read_trace(path, cfg.trace.block_tokens, cfg.num_requests,
                           cfg.context_limit(model_max_context), cfg.trace.time_scale)
    n = len(table)
    if cfg.arrival.process != "trace":
        table.start_s = session_start_times(cfg.arrival, n, rng)
    if cfg.arrival.think_time_s > 0:
        table.think_s = rng.exponential(cfg.arrival.think_time_s, n)
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
