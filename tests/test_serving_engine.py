"""Core of the serving engine: event order, KV cache accounting, the batch scheduler."""

from __future__ import annotations

import numpy as np
import pytest

from cosim.serving.engine import Engine
from cosim.serving.events import Callback
from cosim.serving.kv_cache import KVCache
from cosim.serving.request_state import RequestState
from cosim.serving.scheduler import KVExhaustedError, Scheduler
from cosim.workload.block_hashes import BlockHasher
from cosim.workload.requests import RequestTable


def table(prompts, outputs, pool_tokens=None) -> RequestTable:
    """Single-turn requests; with pool_tokens every request shares that many prompt tokens."""
    n = len(prompts)
    prompts = np.asarray(prompts, dtype=np.int64)
    pool = np.zeros(n, dtype=np.int64) if pool_tokens is None else np.full(n, pool_tokens)
    return RequestTable(
        session=np.arange(n, dtype=np.int64), turn=np.zeros(n, dtype=np.int32),
        prefix_tokens=pool, input_tokens=prompts - pool,
        output_tokens=np.asarray(outputs, dtype=np.int64),
        pool_id=np.zeros(n, dtype=np.int64) if pool_tokens is not None else np.full(n, -1),
        pool_tokens=pool, start_s=np.zeros(n), think_s=np.zeros(n))


def drive(sched: Scheduler, max_iters: int = 100_000):
    """Run one scheduler to completion with unit-time iterations.

    Yields (plan, prompts completed by this iteration) per iteration.
    """
    now = 0.0
    st = sched.state
    for _ in range(max_iters):
        p = sched.plan(now)
        if p is None:
            return
        done = sum(1 for rid, c in sched.chunks if st.computed[rid] + c >= st.ctx_len[rid])
        yield p, done
        now += 1.0
        sched.complete(now)
        sched.kv.check()
    raise AssertionError("did not finish")


# --- engine ------------------------------------------------------------------------------------

def test_events_run_in_time_order_and_ties_in_scheduling_order():
    eng = Engine()
    seen = []

    def note(tag):
        def fn(now):
            seen.append((now, tag))
            if tag == "a":  # an event returns the events it causes
                return [(now + 1.0, Callback(note("c"))), (now + 1.0, Callback(note("d")))]
            return None
        return fn

    eng.schedule(2.0, Callback(note("b")))
    eng.schedule(1.0, Callback(note("a")))
    eng.schedule(2.0, Callback(note("b2")))
    assert eng.run() == 5
    assert seen == [(1.0, "a"), (2.0, "b"), (2.0, "b2"), (2.0, "c"), (2.0, "d")]


def test_engine_refuses_events_in_the_past():
    eng = Engine()
    eng.schedule(1.0, Callback(lambda now: None))
    eng.run()
    with pytest.raises(ValueError, match="past"):
        eng.schedule(0.5, Callback(lambda now: None))


# --- KV cache ----------------------------------------------------------------------------------

def test_kv_cache_prefix_hits_lru_eviction_and_invariant():
    kv = KVCache(6, 16)
    assert kv.allocate(3)
    kv.register([11, 12, 13])  # a finished prompt's three blocks
    kv.release([11, 12, 13], 0)  # nobody uses them: evictable
    assert kv.match([11, 12, 99]) == (2, 2)
    kv.check()
    # Six blocks needed: the three evictable ones go, tail first (a hit needs the head).
    assert kv.allocate(4)
    assert kv.evictions == 1 and 11 in kv.refs and 12 in kv.refs and 13 not in kv.refs
    assert kv.match([11, 12]) == (2, 2)
    kv.acquire([11, 12])  # referenced again: no longer evictable
    assert not kv.allocate(1)  # 4 private + 2 referenced = full
    assert kv.used == kv.capacity == 6
    kv.check()


def test_kv_cache_register_duplicate_frees_the_copy():
    kv = KVCache(4, 16)
    kv.allocate(2)
    kv.register([1])
    kv.allocate(1)
    assert kv.register([1]) == 1  # same content computed twice: one block is enough
    assert kv.refs[1] == 2 and kv.free == 4 - 2
    kv.check()


# --- scheduler ---------------------------------------------------------------------------------

def make_sched(t: RequestTable, blocks: int, block_tokens: int = 16, **kw) -> tuple[Scheduler, RequestState]:
    st = RequestState(t)
    kw.setdefault("token_budget", 64)
    kw.setdefault("max_running", 8)
    sched = Scheduler(0, KVCache(blocks, block_tokens), BlockHasher(t, block_tokens), st, **kw)
    for rid in range(len(t)):
        st.arrival_s[rid] = 0.0
        sched.enqueue(rid)
    return sched, st


def test_chunked_prefill_respects_the_token_budget_and_decode_has_priority():
    t = table([100, 30], [5, 3])
    sched, st = make_sched(t, blocks=64, token_budget=48)
    plans = [p for p, _ in drive(sched)]
    for n, _, p_tok, _, _ in plans:
        assert n + p_tok <= 48
    # request 0: chunks of 48, 48, 4 tokens; its first token comes with the last chunk
    assert [p[2] for p in plans[:3]] == [48, 48, 4 + 30]
    assert st.generated == [5, 3]
    assert st.prefill_tokens == [100, 30]


def test_every_token_once_and_kv_never_over_capacity_under_preemption():
    rng = np.random.default_rng(1)
    prompts = rng.integers(20, 120, 40)
    outputs = rng.integers(1, 200, 40)
    t = table(prompts, outputs)
    # 40 blocks of 16 tokens: far less than 40 requests need at once -> preemption
    sched, st = make_sched(t, blocks=40, token_budget=256, max_running=16)
    decode_tokens = prefill_tokens = completions = 0
    for (n, _, p_tok, _, _), done in drive(sched):
        decode_tokens += n
        prefill_tokens += p_tok
        completions += done
        assert sched.kv.used <= sched.kv.capacity
    assert sched.preemptions > 0
    assert st.generated == outputs.tolist()  # every output token produced exactly once
    # tokens produced = one per decode slot + one per completed prefill (the first token, and
    # the next token after each recomputation of a preempted decode)
    assert decode_tokens + completions == int(outputs.sum())
    assert completions >= len(t)
    assert prefill_tokens == sum(st.prefill_tokens)
    assert sched.kv.peak_used <= sched.kv.capacity
    assert not sched.running and sched.kv.private == 0


def test_a_request_larger_than_the_empty_cache_is_an_error():
    t = table([1000], [10])
    sched, _ = make_sched(t, blocks=4)
    with pytest.raises(KVExhaustedError, match="does not fit|needs"):
        list(drive(sched))


def test_prefix_hit_skips_exactly_the_reused_blocks():
    # both prompts share their first 70 tokens: 4 full blocks of 16 (64 tokens)
    t = table([100, 90], [2, 2], pool_tokens=70)
    sched, st = make_sched(t, blocks=64, max_running=1)
    list(drive(sched))
    assert st.cached_tokens == [0, 64]
    assert st.prefill_tokens == [100, 90 - 64]
