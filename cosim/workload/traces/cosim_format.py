"""cosim's own `requests.parquet` (written by every run) read back as a request trace.

Columns read: `session`, `turn`, `prefix_tokens`, `input_tokens`, `output_tokens`,
`arrival_s` (required); `finish_s`, `think_s`, `pool_id`, `pool_tokens`, `hash_ids`,
`trace_block_tokens` (used when present). The replay keeps the run's sessions: a session's
first request is issued at its recorded arrival, each later turn `think_s` after the turn
before it finishes (as in the recorded run: cosim.workload.arrivals), so a later turn never
overtakes its answer. Shared prefixes keep their pool ids and a replayed trace run keeps its
hash ids, so prefix reuse is that of the recorded run. Sessions whose first request was
never issued (an infeasible run) are left out and counted in notes["sessions_not_issued"].
Rows are a table, not a log: sessions are ordered by their first arrival, whatever the row
order. Errors name the file, row (1-based) and column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from cosim.errors import ConfigError
from cosim.workload.requests import RequestTable
from cosim.workload.traces.records import LineErrors

REQUIRED = ("session", "turn", "prefix_tokens", "input_tokens", "output_tokens", "arrival_s")
OPTIONAL = ("finish_s", "think_s", "pool_id", "pool_tokens", "trace_block_tokens")
MAGIC = b"PAR1"  # first and last 4 bytes of every Parquet file


def _numeric(tab: pa.Table, name: str, path: Path) -> np.ndarray:
    col = tab.column(name)
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        raise ConfigError(f"{path}: {name}", f"expected numbers, the column holds {col.type}")
    return col.to_numpy(zero_copy_only=False).astype(np.float64)


def read_cosim(path: str | Path, max_context: int = 0, on_error: str = "error") -> RequestTable:
    """Read a run's requests.parquet as a trace (sessions kept, times from the first arrival)."""
    path = Path(path)
    errors = LineErrors(on_error)
    if not path.is_file():
        raise ConfigError("workload.trace.path", f"trace file not found: {path}")
    try:
        tab = pq.read_table(path)
    except (pa.ArrowException, OSError) as e:
        raise ConfigError(f"{path}", f"not a Parquet file ({str(e).splitlines()[0]})") from None
    for name in REQUIRED:
        if name not in tab.column_names:
            raise ConfigError(f"{path}: {name}", "missing column (is this a cosim "
                              "requests.parquet?)")
    col = {name: _numeric(tab, name, path) for name in REQUIRED + OPTIONAL
           if name in tab.column_names}
    n = tab.num_rows
    if n == 0:
        raise ConfigError("workload.trace.path", f"{path} holds no requests")
    bad = np.zeros(n, dtype=bool)

    def check(mask: np.ndarray, name: str, reason: str) -> None:
        """Rows where `mask` holds are malformed in column `name`."""
        nonlocal bad
        for r in np.flatnonzero(mask & ~bad).tolist():
            errors.handle(ConfigError(f"{path}: row {r + 1}: {name}",
                                      f"{reason}, got {col[name][r]!r}"))
            bad[r] = True

    for name in ("session", "turn", "prefix_tokens", "input_tokens", "output_tokens"):
        v = col[name]
        check(~np.isfinite(v) | (v != np.round(v)), name, "expected an integer")
        check(v < (1 if name == "output_tokens" else 0), name,
              f"must be >= {1 if name == 'output_tokens' else 0}")
    check(col["prefix_tokens"] + col["input_tokens"] < 1, "input_tokens",
          "prefix_tokens + input_tokens must be >= 1")
    if max_context:
        check(col["prefix_tokens"] + col["input_tokens"] + col["output_tokens"] > max_context,
              "output_tokens", f"prompt + output exceed the model context of {max_context} tokens")
    arrival = col["arrival_s"]
    check(arrival < 0, "arrival_s", "must be >= 0")
    # whole sessions: a bad row drops its session (its later turns would lose their context)
    session = np.nan_to_num(col["session"], nan=-1.0).astype(np.int64)
    ok = ~bad & ~np.isin(session, np.unique(session[bad]))
    turn = np.nan_to_num(col["turn"], nan=-1.0).astype(np.int64)
    # rows of a session in turn order; sessions in order of their first arrival
    order = np.lexsort((turn, session))
    order = order[ok[order]]
    s_sorted, t_sorted = session[order], turn[order]
    new_session = np.r_[True, s_sorted[1:] != s_sorted[:-1]] if order.size else np.zeros(0, bool)
    expected_turn = np.arange(order.size) - np.maximum.accumulate(
        np.where(new_session, np.arange(order.size), 0))
    gap = np.flatnonzero(t_sorted != expected_turn)
    if gap.size:
        r = int(order[gap[0]])
        raise ConfigError(f"{path}: row {r + 1}: turn",
                          f"session {int(session[r])} has turn {int(turn[r])} where turn "
                          f"{int(expected_turn[gap[0]])} belongs (turns of a session run 0, 1, ...)")
    first_arrival = arrival[order][new_session]
    issued = np.isfinite(first_arrival)
    sess_ids = s_sorted[new_session]
    not_issued = int((~issued).sum())
    keep_sess = sess_ids[issued]
    keep_sess = keep_sess[np.argsort(first_arrival[issued], kind="stable")]
    if keep_sess.size == 0:
        raise ConfigError("workload.trace.path", f"{path} holds no issued requests")
    rank = {int(s): k for k, s in enumerate(keep_sess.tolist())}
    sess_rank = np.asarray([rank.get(int(s), -1) for s in s_sorted.tolist()], dtype=np.int64)
    sel = sess_rank >= 0
    rows = order[sel][np.argsort(sess_rank[sel], kind="stable")]
    new_sess = np.sort(sess_rank[sel], kind="stable")
    m = rows.size
    turn_r = turn[rows]
    start = np.where(turn_r == 0, arrival[rows], np.nan)
    start = start - np.nanmin(start)
    if "think_s" in col:
        think = np.nan_to_num(col["think_s"][rows], nan=0.0)
    else:  # older runs: a later turn's issue minus its predecessor's finish
        think = np.zeros(m)
        if "finish_s" in col and m > 1:
            prev_fin = np.r_[np.nan, col["finish_s"][rows][:-1]]
            gap_s = arrival[rows] - prev_fin
            later = (turn_r > 0) & np.isfinite(gap_s)
            think[later] = np.maximum(gap_s[later], 0.0)
    pool = col.get("pool_id", np.full(n, -1.0))[rows]
    pool_tok = col.get("pool_tokens", np.zeros(n))[rows]
    ptr = ids = None
    block = 0
    if "hash_ids" in tab.column_names and "trace_block_tokens" in col:
        lists = tab.column("hash_ids").to_pylist()
        chosen = [lists[r] or [] for r in rows.tolist()]
        ptr = np.zeros(m + 1, dtype=np.int64)
        np.cumsum([len(h) for h in chosen], out=ptr[1:])
        ids = np.asarray([x for h in chosen for x in h], dtype=np.int64)
        block = int(col["trace_block_tokens"][rows[0]])
    notes = {"format": "cosim", **errors.notes(), "sessions_not_issued": not_issued}
    return RequestTable(
        session=new_sess.astype(np.int64), turn=turn_r.astype(np.int32),
        prefix_tokens=col["prefix_tokens"][rows].astype(np.int64),
        input_tokens=col["input_tokens"][rows].astype(np.int64),
        output_tokens=col["output_tokens"][rows].astype(np.int64),
        pool_id=pool.astype(np.int64), pool_tokens=pool_tok.astype(np.int64),
        start_s=start, think_s=think, trace_hash_ptr=ptr, trace_hashes=ids,
        trace_block_tokens=block, source=str(path), notes=notes)
