"""AFD with tensor-parallel attention: every layer's TP all-reduce is priced inside the
attention stage (deployment.options.attention_tp_allreduce)."""

from __future__ import annotations

import numpy as np
import pytest
from disagg_toy_cost import FIXED, config

from cosim.serving.comm import AlphaBetaComm
from cosim.serving.fabric_comm import FabricComm
from cosim.serving.simulation import prepare, run_simulation

TP2 = ["deployment=afd", "model=deepseek_v32", "hardware=b200", "topology=dgx_b200_ib",
       "topology.num_nodes=2", "deployment.roles.attention.layout.tp=2",
       "deployment.roles.attention.layout.dp=4", *FIXED, "workload.num_requests=8",
       "output.progress=false"]
OFF = "+deployment.options.attention_tp_allreduce=false"


def _prepare(extra):
    dep, _, shared = prepare(config([*TP2, *extra]))
    return dep, shared


def _close(dep, shared):
    dep.close()
    if shared.get("backend") is not None:
        shared["backend"].close()


def test_tp1_attention_has_no_allreduce():
    dep, shared = _prepare(["deployment.roles.attention.layout.tp=1",
                            "deployment.roles.attention.layout.dp=8"])
    try:
        assert dep.units.afd.tp_ar is None
        assert dep.describe()["afd"]["attention_tp_allreduce"] is False
    finally:
        _close(dep, shared)


def test_alpha_beta_prices_one_ring_allreduce_per_layer():
    dep, shared = _prepare(["deployment.comm.model=alpha_beta"])
    try:
        ar = dep.units.afd.tp_ar
        assert isinstance(ar.comm, AlphaBetaComm)
        assert (ar.comm.layout.tp, ar.comm.layout.dp, ar.comm.layout.ep) == (2, 4, 1)
        per_rank = 16
        lk, shape = ar.comm.links, ar.comm.shape
        act = 7168 * 2  # bf16 hidden state of DeepSeek-V3.2
        step = 2 * (2 - 1) / 2 * per_rank * act / lk.nvlink_bytes_s + 2 * lk.nvlink_hop_s
        assert ar.seconds_per_layer(per_rank) == pytest.approx(ar.comm.launch_s + step)
        assert ar.n == shape.num_layers + shape.num_dense_layers
        assert ar.seconds_per_layer(0) == 0.0
    finally:
        _close(dep, shared)


def test_fabric_allreduce_runs_on_the_units_attention_gpus():
    dep, shared = _prepare(["network=analytical"])
    try:
        ar = dep.units.afd.tp_ar
        assert isinstance(ar.comm, FabricComm)
        assert ar.comm.gpus.tolist() == dep.units.units_gpus[0].attention.tolist()
        assert ar.seconds_per_layer(16) > ar.comm.launch_s  # NVLS flows on the backend
    finally:
        _close(dep, shared)


def test_the_allreduce_lengthens_the_attention_stage_by_its_time():
    on, s1 = _prepare(["deployment.comm.model=alpha_beta"])
    off, s2 = _prepare(["deployment.comm.model=alpha_beta", OFF])
    try:
        assert off.units.afd.tp_ar is None
        seen = {}
        for name, dep in (("on", on), ("off", off)):
            inst = dep.instances[0]
            for rid in range(8):
                inst.enqueue(rid)
            timer = inst.afd
            inner = timer.iteration

            def spy(ta, tf, tok, detail=False, _inner=inner, _name=name):
                seen[_name] = (ta.copy(), tf.copy(), tok.copy())
                return _inner(ta, tf, tok, detail)

            timer.iteration = spy
            if timer.tp_ar is not None:  # the tokens per attention-DP rank it is asked for
                priced = timer.tp_ar.per_layer

                def spy_ar(per_rank, _priced=priced):
                    seen["per_rank"] = list(per_rank)
                    return _priced(per_rank)

                timer.tp_ar.per_layer = spy_ar
            seen[name + "_t"] = inst.start(0.0)
        ta_on, tf_on, _ = seen["on"]
        ta_off, tf_off, _ = seen["off"]
        ar = on.units.afd.tp_ar
        # the attention stage of each micro-batch grew by one all-reduce of its tokens per
        # attention-DP rank, nothing else changed
        per_rank = seen["per_rank"]
        assert len(per_rank) == len(ta_on) == 3
        want = np.array([ar.seconds_per_layer(int(t)) for t in per_rank])
        assert np.allclose(ta_on - ta_off, want, rtol=1e-9, atol=0) and (want > 0).all()
        assert np.array_equal(tf_on, tf_off)
        assert seen["on_t"] > seen["off_t"]
    finally:
        _close(on, s1)
        _close(off, s2)


def test_a_run_reports_allreduce_bytes_and_seconds():
    s = run_simulation(config([*TP2, "network=analytical"])).summary
    assert s["feasible"]
    nv, so = s["traffic_bytes"]["allreduce"]["nvlink_bytes"], \
        s["traffic_bytes"]["allreduce"]["scale_out_bytes"]
    assert nv > 0 and so == 0  # a TP pair inside one server
    assert s["comm"]["afd_attention_tp_allreduce_s"] > 0
    off = run_simulation(config([*TP2, "network=analytical", OFF])).summary
    assert "allreduce" not in off["traffic_bytes"]
    assert "afd_attention_tp_allreduce_s" not in off["comm"]
    assert off["tpot_ms_p50"] <= s["tpot_ms_p50"]


def test_the_option_is_checked():
    from cosim.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        _prepare(["+deployment.options.attention_tp_allreduce=maybe"])
    assert e.value.field == "deployment.options.attention_tp_allreduce"
