"""Synthetic workloads (chat, coding, agentic, fixed): sessions of turns with drawn lengths.

Turn 0 of a session reuses a prefix (a shared one drawn from `prefix_pool`, or its own);
turn k > 0 reuses the session's whole previous context (prompt + output of turn k-1) and
adds new input. A session ends after its drawn number of turns, or earlier when the next turn
would not fit the context (prompt + at least one output token).
"""

from __future__ import annotations

import numpy as np

from cosim.config.workload import WorkloadConfig
from cosim.workload.arrivals import session_start_times
from cosim.workload.lengths import sample_lengths
from cosim.workload.requests import RequestTable


def generate_synthetic(cfg: WorkloadConfig, model_max_context: int,
                       rng: np.random.Generator) -> RequestTable:
    """Draw `cfg.num_requests` requests (sessions of turns) for a synthetic workload."""
    cfg.check_context(model_max_context)
    ctx = cfg.context_limit(model_max_context)
    n = int(cfg.num_requests)
    # Draw enough of everything up front (vectorised); sessions have >= 1 turn so n sessions
    # always cover n requests.
    turns = sample_lengths(cfg.turns, n, rng, floor=1)
    if cfg.prefix_pool > 0:
        pool_len = sample_lengths(cfg.prefix_tokens, cfg.prefix_pool, rng)
        pool_of_session = rng.integers(0, cfg.prefix_pool, n)
        prefix0 = pool_len[pool_of_session]
    else:
        pool_of_session = np.full(n, -1, dtype=np.int64)
        prefix0 = sample_lengths(cfg.prefix_tokens, n, rng)
    new_in = sample_lengths(cfg.input_tokens, n, rng)
    out = sample_lengths(cfg.output_tokens, n, rng, floor=1)
    think = (rng.exponential(cfg.arrival.think_time_s, n) if cfg.arrival.think_time_s > 0
             else np.zeros(n))

    session = np.empty(n, dtype=np.int64)
    turn = np.empty(n, dtype=np.int32)
    prefix = np.empty(n, dtype=np.int64)
    new = np.empty(n, dtype=np.int64)
    output = np.empty(n, dtype=np.int64)
    pool_id = np.empty(n, dtype=np.int64)
    pool_tokens = np.empty(n, dtype=np.int64)
    clipped = 0
    row, s = 0, 0
    # One pass per request (not per token): clipping needs the running context.
    new_l, out_l, pre_l, turns_l = new_in.tolist(), out.tolist(), prefix0.tolist(), turns.tolist()
    while row < n:
        p0 = min(pre_l[s], ctx - 1)
        context = p0
        for k in range(turns_l[s]):
            if row >= n:
                break
            x, o = new_l[row], out_l[row]
            if k == 0 and context + x == 0:
                x = 1  # a prompt has at least one token
            if context + x + o > ctx:
                if k > 0 and context + x + 1 > ctx:
                    break  # the session's context is full: it ends here
                clipped += 1
                x = max(min(x, ctx - 1 - context), 1 if context == 0 else 0)
                o = max(min(o, ctx - context - x), 1)
            session[row], turn[row] = s, k
            prefix[row], new[row], output[row] = context, x, o
            pool_id[row] = pool_of_session[s]
            pool_tokens[row] = p0 if pool_of_session[s] >= 0 else 0
            context += x + o
            row += 1
        s += 1
    num_sessions = s
    first = turn == 0
    start = np.full(n, np.nan)
    start[first] = session_start_times(cfg.arrival, num_sessions, rng)
    return RequestTable(
        session=session, turn=turn, prefix_tokens=prefix, input_tokens=new,
        output_tokens=output, pool_id=pool_id, pool_tokens=pool_tokens, start_s=start,
        think_s=think, source=f"synthetic:{cfg.name}", notes={"clipped_to_context": clipped,
                                                             "context_limit": ctx})
