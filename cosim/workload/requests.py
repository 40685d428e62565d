"""The request table: one row per request (a turn of a session), columns as numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RequestTable:
    """All requests of a run, known before it starts (only their issue times are dynamic).

    Rows of one session are consecutive and in turn order. The prompt of a request is
    `prefix_tokens + input_tokens`; for turn k > 0 the prefix is the session's whole previous
    context (previous prompt + output). Block hashes for prefix reuse come from
    :class:`cosim.workload.block_hashes.BlockHasher`.
    """

    session: np.ndarray  # int64 session id (0..S-1, rows of a session consecutive)
    turn: np.ndarray  # int32 turn index within the session
    prefix_tokens: np.ndarray  # int64 reusable prefix (shared prompt or previous context)
    input_tokens: np.ndarray  # int64 new input tokens
    output_tokens: np.ndarray  # int64 tokens to generate (>= 1)
    pool_id: np.ndarray  # int64 shared-prefix id of the session (-1: none)
    pool_tokens: np.ndarray  # int64 length of that shared prefix
    start_s: np.ndarray  # float64 open-loop issue time of a session's first turn; NaN otherwise
    think_s: np.ndarray  # float64 pause before this request after the previous one finished
    # Trace replay: hash ids of each request's prompt blocks (CSR: trace_hash_ptr[i]..[i+1]).
    trace_hash_ptr: np.ndarray | None = None
    trace_hashes: np.ndarray | None = None
    trace_block_tokens: int = 0
    # Trace replay: the conversation each row belongs to (sampling keeps or drops whole
    # conversations); None: each session is its own conversation.
    conversation: np.ndarray | None = None
    source: str = ""  # generator name or trace path
    notes: dict = field(default_factory=dict)  # e.g. how many lengths were clipped

    def __len__(self) -> int:
        return int(self.session.shape[0])

    @property
    def prompt_tokens(self) -> np.ndarray:
        return self.prefix_tokens + self.input_tokens

    @property
    def num_sessions(self) -> int:
        return int(self.session[-1]) + 1 if len(self) else 0

    def session_first_rows(self) -> np.ndarray:
        """Row index of each session's first turn."""
        return np.flatnonzero(self.turn == 0)


def trace_hash_columns(table: RequestTable) -> dict[str, object]:
    """requests.parquet columns that keep a trace's hash ids (none for synthetic tables)."""
    if table.trace_hash_ptr is None:
        return {}
    ptr, ids = table.trace_hash_ptr, table.trace_hashes
    return {"hash_ids": [ids[ptr[i]:ptr[i + 1]] for i in range(len(table))],
            "trace_block_tokens": np.full(len(table), table.trace_block_tokens, dtype=np.int64)}
