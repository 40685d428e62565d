"""TensorRT-LLM's attention-DP balance (deployment.scheduler.adp_balance_*): context requests
run only when every rank has one, or after the waiting counter's timeout, or when a rank with
work has nothing to decode (PyExecutor._balance_adp_requests)."""

from __future__ import annotations

from cosim.serving.instance import Instance, InstanceInfo
from cosim.serving.kv_cache import KVCache
from cosim.serving.request_state import RequestState
from cosim.serving.scheduler import Scheduler
from cosim.workload.block_hashes import BlockHasher
from tests.test_serving_engine import table


class _Unpriced:
    """plan_ranks(plans=[...]) forms batches without pricing them."""

    attention = decode_attention = None


def _instance(t, timeout: int, batching_wait: int = 0) -> tuple[Instance, RequestState]:
    st = RequestState(t)
    hasher = BlockHasher(t, 16)
    ranks = [Scheduler(0, KVCache(400, 16), hasher, st, token_budget=256, max_running=8,
                       chunked_prefill=False) for _ in range(2)]
    info = InstanceInfo(iid=0, role="replica", layout=None, first_gpu=0, num_gpus=2)
    inst = Instance(info, ranks, cost=_Unpriced())
    inst.set_adp_balance(timeout, batching_wait)
    return inst, st


def _step(inst: Instance, now: float) -> list[list[int]]:
    """One iteration; the request ids each rank prefills in it."""
    inst.plan_ranks(now, plans=[])
    chunks = [[rid for rid, _ in r.chunks] for r in inst.ranks]
    inst.complete(now + 1.0)
    return chunks


def _arrive(inst: Instance, st: RequestState, rank: int, rid: int, now: float) -> None:
    st.arrival_s[rid] = now
    inst.ranks[rank].enqueue(rid)


def test_context_waits_for_every_rank_or_the_timeout():
    t = table([32] * 5, [400] * 5)
    inst, st = _instance(t, timeout=5)
    _arrive(inst, st, 0, 0, 0.0)
    _arrive(inst, st, 1, 1, 0.0)
    assert _step(inst, 0.0) == [[0], [1]]  # every rank has a context request: it runs
    # a context request on rank 0 alone waits while both ranks decode, until the counter
    # (counting from the last reset, pure-decode iterations included) reaches the timeout
    _arrive(inst, st, 0, 2, 1.0)
    waited = 0
    now = 1.0
    while _step(inst, now) == [[], []]:
        waited += 1
        now += 1.0
    assert waited == 4 and inst.adp_held == 4  # held at counter 1..4, released at 5
    assert st.computed[2] == st.ctx_len[2]
    # once every rank has one, context requests run at once
    now += 1.0
    _arrive(inst, st, 0, 3, now)
    _arrive(inst, st, 1, 4, now)
    assert _step(inst, now) == [[3], [4]]
    assert inst.adp_held == waited


def test_the_hold_lasts_the_timeout_while_every_rank_decodes():
    t = table([32] * 3, [400] * 3)
    inst, st = _instance(t, timeout=1000)
    _arrive(inst, st, 0, 0, 0.0)
    _arrive(inst, st, 1, 1, 0.0)
    _step(inst, 0.0)
    _arrive(inst, st, 0, 2, 1.0)  # rank 1 never gets a context request
    for k in range(10):
        assert _step(inst, 1.0 + k) == [[], []]
    assert inst.adp_held == 10 and inst.ranks[0].waiting


def test_a_lone_waiting_rank_is_released_at_once():
    # rank 1 has a waiting request and nothing to decode (rank 0 decodes): the hold would
    # starve it, so TensorRT-LLM releases context requests (not all ranks have generation)
    t = table([32] * 2, [400] * 2)
    inst, st = _instance(t, timeout=1000)
    _arrive(inst, st, 0, 0, 0.0)
    # rank 0 has work and nothing to decode: released although rank 1 has no context request
    assert _step(inst, 0.0) == [[0], []]
    _arrive(inst, st, 1, 1, 1.0)
    assert _step(inst, 1.0) == [[], [1]]
    assert inst.adp_held == 0


def test_batching_wait_holds_even_when_every_rank_has_context():
    t = table([32] * 4, [400] * 4)
    inst, st = _instance(t, timeout=1000, batching_wait=2)
    for rank, rid in ((0, 0), (1, 1)):
        _arrive(inst, st, rank, rid, 0.0)
    assert _step(inst, 0.0) == [[0], [1]]  # nobody decodes yet: no batching wait
    for rank, rid in ((0, 2), (1, 3)):
        _arrive(inst, st, rank, rid, 1.0)
    assert _step(inst, 1.0) == [[], []]
    assert _step(inst, 2.0) == [[], []]
    assert _step(inst, 3.0) == [[2], [3]]


def test_off_by_default_and_on_one_rank():
    t = table([32], [10])
    st = RequestState(t)
    r = Scheduler(0, KVCache(40, 16), BlockHasher(t, 16), st, token_budget=64, max_running=8)
    inst = Instance(InstanceInfo(0, "replica", None, 0, 1), [r], cost=None)
    inst.set_adp_balance(60)
    assert inst.adp_timeout == 0  # one rank: nothing to balance
