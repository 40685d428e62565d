"""TensorRT-LLM's batch waiting (deployment.scheduler.batch_wait_*): in an iteration that also
decodes, context work waits until the batch reaches a share of the token budget or it has
waited the timeout (PyExecutor._waiting_requests)."""

from __future__ import annotations

from tests.test_serving_engine import make_sched, table


def _iterations_until_prefilled(sched, st, rid: int, now: float) -> int:
    """Iterations from `now` until request `rid`'s prompt has been run."""
    k = 0
    while st.computed[rid] < st.ctx_len[rid]:
        sched.plan(now + k)
        k += 1
        sched.complete(now + k)
    return k


def test_context_waits_the_timeout_while_a_request_decodes():
    t = table([32, 32], [200, 200])
    sched, st = make_sched(t, blocks=100, token_budget=256, max_running=8,
                           chunked_prefill=False, batch_wait_iters=5, batch_wait_ratio=0.9)
    sched.waiting.pop()  # request 1 arrives later
    assert _iterations_until_prefilled(sched, st, 0, 0.0) == 1  # nothing decodes: no wait
    sched.enqueue(1)
    # 1 + 32 tokens never reach 0.9 x 256: held 5 iterations, run in the 6th
    assert _iterations_until_prefilled(sched, st, 1, 1.0) == 6
    assert sched.batch_waits == 5


def test_context_runs_at_once_when_the_batch_is_full_enough():
    t = table([32, 200], [200, 200])
    sched, st = make_sched(t, blocks=100, token_budget=256, max_running=8,
                           chunked_prefill=False, batch_wait_iters=50, batch_wait_ratio=0.5)
    sched.waiting.pop()
    _iterations_until_prefilled(sched, st, 0, 0.0)
    sched.enqueue(1)
    # 1 decode token + 200 prompt tokens >= 0.5 x 256: no wait
    assert _iterations_until_prefilled(sched, st, 1, 1.0) == 1
    assert sched.batch_waits == 0


def test_off_by_default():
    t = table([32, 32], [200, 200])
    sched, st = make_sched(t, blocks=100, token_budget=256, max_running=8, chunked_prefill=False)
    sched.waiting.pop()
    _iterations_until_prefilled(sched, st, 0, 0.0)
    sched.enqueue(1)
    assert _iterations_until_prefilled(sched, st, 1, 1.0) == 1
    assert not sched.batch_wait and sched.batch_waits == 0
