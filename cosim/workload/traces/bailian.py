"""Qwen-Bailian style JSONL request traces (16-token blocks):

    {"chat_id": 7, "parent_chat_id": 3, "timestamp": 12.5, "input_length": 900,
     "output_length": 40, "type": "text", "turn": 2, "hash_ids": [0, 1, ...]}

`timestamp` is seconds; `hash_ids` one id per `block_tokens` (16) of the prompt. Each line is
replayed at its own timestamp as its own request; a conversation's reuse of earlier turns
shows up through equal hash ids (the KV cache's prefix hits), and the number of
conversations (chains of parent_chat_id, -1 = none) is kept in notes["conversations"]; the
conversation of each line is the table's `conversation` column (sampling keeps whole
conversations). Errors name file, line and key.
"""

from __future__ import annotations

from pathlib import Path

from cosim.errors import ConfigError
from cosim.workload.requests import RequestTable
from cosim.workload.traces.records import (
    LineErrors,
    TraceRows,
    int_field,
    json_lines,
    request_fields,
)

REQUIRED = ("chat_id", "parent_chat_id", "timestamp", "input_length", "output_length", "turn")


def read_bailian(path: str | Path, block_tokens: int = 16, max_requests: int = 0,
                 max_context: int = 0, time_scale: float = 1.0,
                 on_error: str = "error") -> RequestTable:
    """Read a Bailian JSONL trace (one request per line, time order)."""
    path = Path(path)
    errors = LineErrors(on_error)
    rows = TraceRows(path, max_requests)
    root: dict[int, int] = {}
    for _lineno, where, rec in json_lines(path, errors):
        if rows.full:
            break
        try:
            t, i, o, h = request_fields(rec, where, REQUIRED, max_context, block_tokens, "s")
            chat = int_field(rec, "chat_id", where, 0)
            parent = int_field(rec, "parent_chat_id", where, -1)
            int_field(rec, "turn", where, 0)
            rows.check_order(t, f"{where}: timestamp")
        except ConfigError as err:
            errors.handle(err)
            continue
        root[chat] = root.get(parent, chat) if parent >= 0 else chat
        rows.add(t, i, o, h, root[chat])
    notes = {"format": "bailian", **errors.notes(),
             "conversations": len(set(rows.conv))}
    return rows.table(notes, block_tokens, time_scale, hashes=True)
