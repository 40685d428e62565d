"""The options every request-trace format shares, applied after reading, in this order:

1. time window: sessions whose first request starts in [window_start_s, window_end_s)
   seconds after the file's first request (the trace's own clock); the kept part is shifted
   so that its first request is at 0;
2. sampling: each conversation (a Bailian chain of parent_chat_id, a cosim session, otherwise
   a single request) is kept when a hash of (sample_seed, its id) falls below
   sample_fraction, so the choice is reproducible, independent of the window, and a smaller
   fraction keeps a subset of a larger one with the same seed;
3. cap: the first `workload.num_requests` requests (in file order, rows of a session together);
4. time: session start times times `time_scale`, or rescaled so that the mean rate of
   session starts, (starts - 1) / (last start - first start), equals `rate_per_s`.

What was applied is written into the table's notes (summary.json `workload_notes`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cosim.errors import ConfigError
from cosim.workload.requests import RequestTable


@dataclass(frozen=True)
class TraceOptions:
    """The shared options (the fields of cosim.config.workload.TraceConfig that they read)."""

    window_start_s: float = 0.0
    window_end_s: float | None = None  # None: to the end of the trace
    sample_fraction: float = 1.0
    sample_seed: int = 0
    max_requests: int = 0  # 0: no cap
    time_scale: float = 1.0
    rate_per_s: float | None = None  # None: keep the trace's rate (times time_scale)

    @property
    def selects(self) -> bool:
        """True when rows are dropped by anything but the cap (so readers must read all)."""
        return (self.window_start_s > 0 or self.window_end_s is not None
                or self.sample_fraction < 1.0)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser (Steele et al., OOPSLA 2014): a well-mixed 64-bit hash per id."""
    z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def sample_keep(groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask: rows whose group is kept by seeded sampling at `fraction`."""
    if fraction >= 1.0:
        return np.ones(groups.shape[0], dtype=bool)
    salt = _splitmix64(np.asarray([seed & (2**63 - 1)], dtype=np.int64))[0]
    with np.errstate(over="ignore"):
        h = _splitmix64(groups.astype(np.int64).view(np.uint64) ^ salt)
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53) < fraction


def take_rows(table: RequestTable, rows: np.ndarray) -> RequestTable:
    """The table of `rows` (sorted indices; whole sessions or a session's leading turns)."""
    rows = np.asarray(rows, dtype=np.int64)
    _, session = np.unique(table.session[rows], return_inverse=True)
    ptr = ids = None
    if table.trace_hash_ptr is not None:
        lo, hi = table.trace_hash_ptr[rows], table.trace_hash_ptr[rows + 1]
        lens = hi - lo
        ptr = np.zeros(rows.size + 1, dtype=np.int64)
        np.cumsum(lens, out=ptr[1:])
        idx = np.repeat(lo - ptr[:-1], lens) + np.arange(int(ptr[-1]), dtype=np.int64)
        ids = table.trace_hashes[idx]
    return RequestTable(
        session=session.astype(np.int64), turn=table.turn[rows],
        prefix_tokens=table.prefix_tokens[rows], input_tokens=table.input_tokens[rows],
        output_tokens=table.output_tokens[rows], pool_id=table.pool_id[rows],
        pool_tokens=table.pool_tokens[rows], start_s=table.start_s[rows],
        think_s=table.think_s[rows], trace_hash_ptr=ptr, trace_hashes=ids,
        trace_block_tokens=table.trace_block_tokens,
        conversation=None if table.conversation is None else table.conversation[rows],
        source=table.source, notes=dict(table.notes))


def apply_options(table: RequestTable, opt: TraceOptions) -> RequestTable:
    """`table` (start times from the file's first request, trace clock) after the options."""
    n_file = len(table)
    first = table.turn == 0
    # a session's start, on every row of it
    sess_start = table.start_s[first][table.session]
    keep = np.ones(n_file, dtype=bool)
    if opt.window_start_s > 0 or opt.window_end_s is not None:
        keep &= sess_start >= opt.window_start_s
        if opt.window_end_s is not None:
            keep &= sess_start < opt.window_end_s
    if opt.sample_fraction < 1.0:
        groups = table.conversation if table.conversation is not None else table.session
        keep &= sample_keep(groups, opt.sample_fraction, opt.sample_seed)
    rows = np.flatnonzero(keep)
    if opt.max_requests and rows.size > opt.max_requests:
        rows = rows[: opt.max_requests]
    if rows.size == 0:
        raise ConfigError("workload.trace", f"no request of {table.source} is left after the "
                          f"window [{opt.window_start_s:g}, {opt.window_end_s}) s and "
                          f"sample_fraction {opt.sample_fraction:g}")
    out = take_rows(table, rows) if rows.size < n_file else table
    starts = out.start_s[out.turn == 0]
    t0 = float(np.nanmin(starts)) if np.isfinite(starts).any() else 0.0
    factor = float(opt.time_scale)
    span = float(np.nanmax(starts)) - t0 if np.isfinite(starts).any() else 0.0
    if opt.rate_per_s is not None:
        if starts.size < 2 or not span > 0:
            raise ConfigError("workload.trace.rate_per_s",
                              "needs at least two requests at different times to rescale")
        factor = (starts.size - 1) / opt.rate_per_s / span
    out.start_s = (out.start_s - t0) * factor
    notes = out.notes
    notes["requests_read"] = n_file
    notes["requests_replayed"] = len(out)
    if out.conversation is not None:  # conversations replayed (a window or sample drops some)
        notes["conversations"] = int(np.unique(out.conversation).size)
    notes["time_factor"] = factor
    notes["rate_per_s"] = (starts.size - 1) / (span * factor) if span > 0 else None
    if opt.selects:
        notes["window_s"] = [opt.window_start_s, opt.window_end_s]
        notes["sample_fraction"] = opt.sample_fraction
        notes["sample_seed"] = opt.sample_seed
    return out
