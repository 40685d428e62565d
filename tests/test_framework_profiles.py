"""compute.profile=framework fills the framework's defaults; explicit keys win; none changes nothing."""

from __future__ import annotations

import dataclasses

import pytest

from cosim.api import compose_config
from cosim.config import to_object
from cosim.config.profiles import PROFILES, apply_profile, settings_for
from cosim.serving.memory_plan import plan_memory

BASE = ["model=deepseek_v3", "hardware=h200", "topology=dgx_h200_ib", "topology.num_nodes=1",
        "deployment.layout.tp=8", "deployment.layout.dp=1", "deployment.layout.ep=1",
        "deployment.layout.moe_tp=8"]


def cfg(*extra):
    return to_object(compose_config(BASE + list(extra)))


def test_profile_none_sets_nothing():
    c = cfg("compute.framework=trtllm")
    before = dataclasses.asdict(c)
    assert apply_profile(c) == {}
    assert dataclasses.asdict(c) == before


def test_trtllm_profile_fills_its_defaults():
    c = cfg("compute.framework=trtllm", "compute.profile=framework")
    applied = apply_profile(c)
    d = c.deployment
    assert d.scheduler.policy == "guaranteed_no_evict" and d.scheduler.max_batched_tokens == 8192
    assert d.scheduler.chunked_prefill is False and d.memory.fraction_of == "free"
    assert str(c.model.kv_dtype.value) == "fp8"  # DeepSeek: the documented FP8 KV cache
    assert set(applied) == {s.key for s in PROFILES["trtllm"]}


def test_explicit_keys_win_and_profile_keep_keeps_a_default():
    c = cfg("compute.framework=trtllm", "compute.profile=framework",
            "deployment.scheduler.max_batched_tokens=4096",
            "compute.profile_keep=[deployment.scheduler.policy]")
    applied = apply_profile(c)
    assert c.deployment.scheduler.max_batched_tokens == 4096
    assert c.deployment.scheduler.policy == "mixed"
    assert "deployment.scheduler.policy" not in applied


def test_sglang_profile_values_follow_server_args():
    c = cfg("compute.framework=sglang", "compute.profile=framework")
    apply_profile(c)
    s, m = c.deployment.scheduler, c.deployment.memory
    assert s.policy == "prefill_first" and s.max_batched_tokens == 8192  # H200: < 160 GiB
    g = c.hardware.hbm_gb * 1e9 / 1024**3
    assert m.fraction_of == "static" and m.gpu_memory_utilization == round((g - 16) / g, 3)
    c2 = cfg("compute.framework=sglang", "compute.profile=framework", "deployment.layout.tp=1",
             "deployment.layout.dp=8")
    apply_profile(c2)
    assert c2.deployment.scheduler.max_batched_tokens == 1024  # chunk / dp_size


def test_every_setting_names_a_source_and_version():
    for fw in PROFILES:
        for s in settings_for(fw):
            assert s.source.startswith("https://") and s.version and s.what


def test_guarded_keys_are_skipped_when_absent():
    c = cfg("compute.framework=sglang", "compute.profile=framework")
    applied = apply_profile(c)
    if not hasattr(c.network, "ep_kernel_mode"):
        assert "network.ep_kernel_mode" not in applied


def _plan(how, util=0.9):
    c = cfg()
    c.deployment.memory.fraction_of = how
    c.deployment.memory.gpu_memory_utilization = util
    from cosim.model.spec import ModelSpec

    spec = ModelSpec.from_config(c.model)
    return plan_memory(spec, c.deployment.layout.to_layout(), c.hardware, c.deployment.memory,
                       c.deployment.scheduler, 2048)


def test_memory_fraction_readings():
    tot, free, static = _plan("total"), _plan("free"), _plan("static")
    hbm, w, a, r, st = tot.hbm_bytes, tot.weight_bytes, tot.activation_bytes, tot.reserve_bytes, \
        tot.state_bytes
    assert tot.kv_bytes == pytest.approx(0.9 * hbm - w - a - r - st)
    assert free.kv_bytes == pytest.approx(0.9 * (hbm - w - a - r - st))
    assert static.kv_bytes == pytest.approx(0.9 * hbm - w - st)
    assert free.kv_bytes > tot.kv_bytes and static.kv_bytes > tot.kv_bytes
    assert all(p.feasible for p in (tot, free, static))
    assert not _plan("static", util=0.999).feasible  # no room left for activations


def test_profile_run_records_what_it_set():
    import cosim

    s = cosim.simulate(BASE + ["compute.framework=vllm", "compute.profile=framework",
                               "workload=fixed", "workload.num_requests=4",
                               "workload.input_tokens.mean=128", "workload.output_tokens.mean=4",
                               "output.progress=false"]).summary
    assert s["profile"]["deployment.scheduler.max_running_requests"] == 1024
