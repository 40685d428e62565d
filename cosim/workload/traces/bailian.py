"""Qwen-Bailian style JSONL request traces (16-token blocks):

    {"chat_id": 7, "parent_chat_id": 3, "timestamp": 12.5, "input_length": 900,
     "output_length": 40, "type": "text", "turn": 2, "hash_ids": [0, 1, ...]}

`timestamp` is seconds; `hash_ids` one id per `block_tokens` (16) of the prompt. Each line is
replayed at its own timestamp as its own request; a conversation's reuse of earlier turns
shows up through equal hash ids (the KV cache's prefix hits), and the number of
conversations (chains of parent_chat_id, -1 = none) is kept in notes["conversations"].
Errors name file, line and key.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cosim.errors import ConfigError
from cosim.workload.requests import RequestTable
from cosim.workload.traces.records import int_field, json_lines, request_fields

REQUIRED = ("chat_id", "parent_chat_id", "timestamp", "input_length", "output_length", "turn")


def read_bailian(path: str | Path, block_tokens: int = 16, max_requests: int = 0,
                 max_context: int = 0, time_scale: float = 1.0) -> RequestTable:
    path = Path(path)
    ts, isl, osl, ptr, ids = [], [], [], [0], []
    root: dict[int, int] = {}
    for _lineno, where, rec in json_lines(path, max_requests):
        t, i, o, h = request_fields(rec, where, REQUIRED, max_context, block_tokens, "s")
        chat = int_field(rec, "chat_id", where, 0)
        parent = int_field(rec, "parent_chat_id", where, -1)
        int_field(rec, "turn", where, 0)
        tt = t * time_scale
        if ts and tt < ts[-1]:
            raise ConfigError(f"{where}: timestamp", "lines must be in timestamp order")
        root[chat] = root.get(parent, chat) if parent >= 0 else chat
        ts.append(tt)
        isl.append(i)
        osl.append(o)
        ids.extend(h)
        ptr.append(len(ids))
    n = len(ts)
    if n == 0:
        raise ConfigError("workload.trace.path", f"{path} holds no requests")
    return RequestTable(
        session=np.arange(n, dtype=np.int64), turn=np.zeros(n, dtype=np.int32),
        prefix_tokens=np.zeros(n, dtype=np.int64), input_tokens=np.asarray(isl, dtype=np.int64),
        output_tokens=np.asarray(osl, dtype=np.int64), pool_id=np.full(n, -1, dtype=np.int64),
        pool_tokens=np.zeros(n, dtype=np.int64), start_s=np.asarray(ts) - ts[0],
        think_s=np.zeros(n), trace_hash_ptr=np.asarray(ptr, dtype=np.int64),
        trace_hashes=np.asarray(ids, dtype=np.int64), trace_block_tokens=int(block_tokens),
        source=str(path), notes={"format": "bailian", "conversations": len(set(root.values()))})
