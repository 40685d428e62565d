"""Scheduler policies: guaranteed_no_evict (TensorRT-LLM) and prefill_first (SGLang)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_serving_engine import drive, make_sched, table


def _random(seed: int, n: int = 40):
    rng = np.random.default_rng(seed)
    return rng.integers(20, 120, n), rng.integers(1, 200, n)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_guaranteed_no_evict_admits_only_what_fits_to_the_end_and_never_preempts(seed):
    prompts, outputs = _random(seed)
    t = table(prompts, outputs)
    B, cap = 16, 40
    sched, st = make_sched(t, blocks=cap, token_budget=256, max_running=16,
                           policy="guaranteed_no_evict")
    for _ in drive(sched):
        # every running request's prompt + remaining output fits next to the others
        promised = sum(-(-(st.prompt[r] + st.output[r] - 1) // B) for r in sched.running)
        assert promised <= cap
        assert sched.reserved == sum(sched.future.values()) >= 0
    assert sched.preemptions == 0 and sum(st.preemptions) == 0
    assert st.generated == outputs.tolist()
    assert not sched.running and sched.kv.private == 0 and sched.reserved == 0


def test_guaranteed_no_evict_waits_where_mixed_would_admit():
    # two requests of 32-token prompts and 200 output tokens, 20 blocks of 16: each needs
    # 2 blocks to start but 15 to finish; mixed admits both, the capacity policy only one.
    t = table([32, 32], [200, 200])
    mixed, _ = make_sched(t, blocks=20, policy="mixed")
    mixed.plan(0.0)
    assert len(mixed.running) == 2
    gne, _ = make_sched(t, blocks=20, policy="guaranteed_no_evict")
    gne.plan(0.0)
    assert len(gne.running) == 1 and gne.reserved == 13


def test_default_policy_is_mixed_and_unchanged():
    prompts, outputs = _random(4)
    t = table(prompts, outputs)
    a, _ = make_sched(t, blocks=40, token_budget=256, max_running=16)
    b, _ = make_sched(t, blocks=40, token_budget=256, max_running=16, policy="mixed")
    pa = [p for p, _ in drive(a)]
    pb = [p for p, _ in drive(b)]
    assert pa == pb and a.preemptions == b.preemptions > 0


@pytest.mark.parametrize("seed", [1, 5])
def test_prefill_first_never_mixes_and_every_token_is_produced_once(seed):
    prompts, outputs = _random(seed)
    t = table(prompts, outputs)
    sched, st = make_sched(t, blocks=200, token_budget=128, max_running=16,
                           policy="prefill_first")
    decode_tokens = completions = 0
    saw_decode = saw_prefill = False
    for (n, _, p_tok, _, _), done in drive(sched):
        assert n == 0 or p_tok == 0  # an iteration prefills or decodes, never both
        assert p_tok <= 128
        saw_decode |= n > 0
        saw_prefill |= p_tok > 0
        decode_tokens += n
        completions += done
    assert saw_decode and saw_prefill
    assert st.generated == outputs.tolist()
    assert decode_tokens + completions == int(outputs.sum())


def test_prefill_first_decode_context_is_the_tokens_held():
    # one decoding request; a second arrives later: its prefill iteration must not advance
    # the first one's KV length.
    t = table([32, 32], [6, 3])
    sched, st = make_sched(t, blocks=64, token_budget=32, policy="prefill_first")
    sched.waiting.pop()  # request 1 comes later
    plans = []
    now = 0.0
    for step in range(40):
        if step == 2:
            sched.enqueue(1)
        p = sched.plan(now)
        if p is None:
            break
        plans.append(p)
        now += 1
        sched.complete(now)
    # iterations: prefill r0 | decode r0 (kv 33) | prefill r1 | decode both (r0 at kv 34) ...
    assert plans[0][2] == 32 and plans[0][0] == 0
    assert plans[1][:2] == (1, 33)
    assert plans[2][0] == 0 and plans[2][2] == 32
    assert plans[3][:2] == (2, 34 + 33)
    assert st.generated == [6, 3]


def test_unknown_policy_is_refused():
    from cosim.config.deployment import SchedulerConfig
    from cosim.errors import ConfigError

    with pytest.raises(ConfigError, match="policy"):
        SchedulerConfig(policy="fastest").validate("deployment.scheduler")
