"""Transfer durations from the analytical backend: per phase and per iteration (fixed point)."""

import numpy as np
import pytest

from cosim.config.topology_files import get_topology
from cosim.network.analytical import AnalyticalBackend
from cosim.network.flows import FlowBatch
from cosim.network.topology import build_fabric
from cosim.timeline import afd_pipeline, schedule_pipeline
from cosim.timeline.network_coupling import time_transfers

US = 1e-6
HIDDEN = 7168


class CountingBackend:
    """The analytical backend, counting how often it is asked."""

    name = "analytical"

    def __init__(self, inner):
        self.inner = inner
        self.calls = 0
        self.flows = 0

    def simulate(self, flows):
        self.calls += 1
        self.flows += len(flows)
        return self.inner.simulate(flows)

    def close(self):
        self.inner.close()


@pytest.fixture(scope="module")
def backend():
    return AnalyticalBackend(build_fabric(get_topology("dgx_b200_ib", num_nodes=2)))


def m_to_n(src, dst, nbytes):
    s, d = np.repeat(src, len(dst)), np.tile(dst, len(src))
    return FlowBatch.from_arrays(s, d, np.full(len(s), nbytes))


ATT, FFN = np.arange(8), np.arange(8, 16)  # attention GPUs on node 0, FFN GPUs on node 1
TOKENS = 64  # per attention GPU per micro-batch
A2F = m_to_n(ATT, FFN, TOKENS * HIDDEN)  # fp8 activations (1 byte)
F2A = m_to_n(FFN, ATT, TOKENS * HIDDEN * 2)  # bf16 results


def test_phase_mode_times_each_pattern_once_for_all_layers(backend):
    counting = CountingBackend(backend)
    p = afd_pipeline(58, 3, 100 * US, 0.0, 100 * US, 0.0, traffic_a2f=0, traffic_f2a=1)
    c = time_transfers(p, [A2F, F2A], counting, mode="phase")
    assert counting.calls == 2  # 58 layers x 3 micro-batches x 2 directions share two results
    d = c.pipeline.durations
    assert np.all(d[:, 1, :] == backend.simulate(A2F).makespan)
    assert np.all(d[:, 3, :] == backend.simulate(F2A).makespan)
    assert c.schedule.makespan == pytest.approx(schedule_pipeline(c.pipeline).makespan)


def test_iteration_mode_without_contention_is_phase_mode(backend):
    # A2F (node 0 -> 1) and F2A (node 1 -> 0) run mostly on opposite directions of full-duplex
    # links (they meet only on leaf->spine uplinks of cross-rail pairs, and 64-token transfers
    # barely overlap there), and each direction's transfers are in order on one stream: the
    # phase durations are already a fixed point.
    p = afd_pipeline(20, 3, 150 * US, 0.0, 150 * US, 0.0, traffic_a2f=0, traffic_f2a=1)
    phase = time_transfers(p, [A2F, F2A], backend, mode="phase")
    it = time_transfers(p, [A2F, F2A], backend, mode="iteration")
    assert it.converged and it.rounds == 1
    assert it.schedule.makespan == pytest.approx(phase.schedule.makespan, rel=1e-6)
    assert len(it.flows) == 20 * 3 * 2 * 64
    assert np.all(it.flow_task >= 0)


def test_background_kv_transfer_contends_with_a2f_and_converges(backend):
    p = afd_pipeline(20, 3, 150 * US, 0.0, 150 * US, 0.0, traffic_a2f=0, traffic_f2a=1)
    phase = time_transfers(p, [A2F, F2A], backend, mode="phase")
    kv = FlowBatch.from_arrays(ATT, FFN, np.full(8, 50_000_000))  # same NICs, same direction as A2F
    it = time_transfers(p, [A2F, F2A], backend, mode="iteration", background=kv)
    assert it.converged and 1 <= it.rounds <= 12
    assert it.schedule.makespan > phase.schedule.makespan  # A2F shares its links with KV
    kv_alone = backend.simulate(kv).makespan
    assert np.all(it.background_finish > kv_alone)  # and KV shares with A2F
    # at the fixed point every A2F task lasts what the network says for its start time
    a2f_tasks = it.flow_task[(it.flow_task >= 0)]
    last = np.zeros(len(it.pipeline.durations.ravel()))
    np.maximum.at(last, a2f_tasks, it.flow_result.finish[: len(a2f_tasks)])
    moved = np.unique(a2f_tasks)
    got = it.pipeline.durations.ravel()[moved]
    want = last[moved] - it.schedule.start[moved]
    np.testing.assert_allclose(got, want, rtol=1e-3)


def test_unknown_mode_is_rejected(backend):
    p = afd_pipeline(2, 2, 1e-4, 0.0, 1e-4, 0.0, traffic_a2f=0, traffic_f2a=1)
    with pytest.raises(ValueError, match="network.mode"):
        time_transfers(p, [A2F, F2A], backend, mode="batch")
