"""deployment.speculative (MTP): tokens per step from the acceptance, steps per request, the
acceptance-0 run = the plain run plus the draft module's cost, lower TPOT at low load."""

from __future__ import annotations

import numpy as np
import pytest
from disagg_toy_cost import FIXED, ToyStepCost, config, toy_factory

from cosim.config.deployment import SpeculativeConfig
from cosim.errors import ConfigError
from cosim.model.spec import ModelSpec
from cosim.serving.simulation import prepare, run_simulation
from cosim.serving.speculative import SpeculativeIterationCost

MS = 1e-3
ONE_RANK = ["deployment.layout.tp=8", "deployment.layout.dp=1", "deployment.comm.model=none"]
LOAD = [*FIXED, "workload.num_requests=12", "workload.arrival.users=3",
        "workload.output_tokens.mean=41", *ONE_RANK]


def mtp(k: int, a: float) -> list[str]:
    return ["deployment.speculative.method=mtp", f"deployment.speculative.draft_tokens={k}",
            f"deployment.speculative.acceptance={a}"]


def run(toy: ToyStepCost, extra: list[str]):
    return run_simulation(config([*LOAD, *extra]), step_cost_factory=toy_factory(toy))


def test_tokens_per_step_is_the_geometric_sum_of_the_acceptance():
    assert SpeculativeConfig().tokens_per_step == 1.0  # off
    assert SpeculativeConfig("mtp", 3, 0.0).tokens_per_step == 1.0
    assert SpeculativeConfig("mtp", 3, 0.5).tokens_per_step == 1 + 0.5 + 0.25 + 0.125
    assert SpeculativeConfig("mtp", 2, 1.0).tokens_per_step == 3.0


def test_acceptance_zero_is_the_plain_run_plus_the_draft_cost():
    # A toy whose step cost does not depend on the token count, so verifying k + 1 positions
    # costs what one does. "Equals" then means: the same iterations (same batches, in the
    # same order: E = 1, every request decodes in as many steps), each longer by exactly
    # the draft module's cost - k MTP forwards of the decode requests, each one layer's share
    # of the plain step ((a0 + f0) / L; the toy has no embedding / LM-head stage), plus one
    # MTP pass over a prefill chunk - and every TPOT longer by k (a0 + f0) / L per step.
    toy = ToyStepCost(a0=2 * MS, a1=0.0, f0=4 * MS, f1=0.0)
    plain = run(toy, [])
    spec_run = run(toy, mtp(3, 0.0))
    cfg = config(LOAD)
    L = ModelSpec.from_config(cfg.model).num_layers
    p, s = plain.iterations, spec_run.iterations
    cols = ["decode_requests", "prefill_tokens", "prefill_requests"]
    assert p[cols].equals(s[cols])
    layer = (toy.a0 + toy.f0) / L
    draft = 3 * layer * (p.decode_requests > 0) + layer * (p.prefill_tokens > 0)
    assert np.allclose(s.duration_s, p.duration_s + draft, rtol=1e-12, atol=0)
    r0, r1 = plain.requests, spec_run.requests
    assert (r1.generated_tokens == r0.generated_tokens).all()
    assert (r1.tpot_s > r0.tpot_s).all()


def test_a_request_decodes_in_ceil_of_remaining_over_e_steps():
    toy = ToyStepCost(a0=2 * MS, a1=0.01 * MS, f0=4 * MS, f1=0.02 * MS)
    one = [*FIXED, "workload.num_requests=1", "workload.arrival.users=1",
           "workload.output_tokens.mean=41", *ONE_RANK]
    out = run_simulation(config([*one, *mtp(2, 0.5)]), step_cost_factory=toy_factory(toy))
    it = out.iterations
    e = 1 + 0.5 + 0.25
    assert int((it.decode_requests > 0).sum()) == int(np.ceil(40 / e))  # 40 after the first
    assert int(out.requests.generated_tokens[0]) == 41


def test_acceptance_lowers_tpot_at_low_load():
    toy = ToyStepCost(a0=2 * MS, a1=0.01 * MS, f0=4 * MS, f1=0.02 * MS)
    low = [*FIXED, "workload.num_requests=4", "workload.arrival.users=1",
           "workload.output_tokens.mean=64", *ONE_RANK]
    plain = run_simulation(config(low), step_cost_factory=toy_factory(toy))
    tpot = {}
    for a in (0.0, 0.6, 0.9):
        out = run_simulation(config([*low, *mtp(2, a)]), step_cost_factory=toy_factory(toy))
        assert (out.requests.generated_tokens == plain.requests.generated_tokens).all()
        tpot[a] = float(out.requests.tpot_s.mean())
    base = float(plain.requests.tpot_s.mean())
    assert tpot[0.0] > base > tpot[0.6] > tpot[0.9]


def test_speculative_kv_context_grows_by_e_per_step():
    toy = ToyStepCost(a0=2 * MS, a1=0.01 * MS, f0=4 * MS, f1=0.02 * MS)
    dep, _, _ = prepare(config([*LOAD, *mtp(3, 0.8)]), toy_factory(toy))
    assert isinstance(dep.instances[0].cost, SpeculativeIterationCost)
    sch = dep.instances[0].ranks[0]
    assert sch.kv_rate == pytest.approx(1 + 0.8 + 0.64 + 0.512)
    # a request joining at iteration 10 with 100 tokens of KV (blocks of 64): after step s its
    # KV holds 100 + E (s - 9) tokens; the blocks it crosses into are the iterations where
    # that first exceeds 128, 192, ...
    e = sch.kv_rate
    want, s, blocks = [], 10, 128
    while len(want) < 4:
        if 100 + e * (s - 9) > blocks:
            want.append(s)
            blocks += 64
            continue
        s += 1
    got = [sch._next_block(9, 10, 100)]
    while len(got) < 4:
        got.append(sch._next_block(got[-1], 10, 100))
    assert got == want


def test_speculative_needs_an_mtp_module_and_no_afd():
    toy = ToyStepCost(a0=2 * MS, a1=0.0, f0=4 * MS, f1=0.0)
    with pytest.raises(ConfigError, match="deployment.speculative.method"):
        run_simulation(config([*LOAD, *mtp(1, 0.5), "model=llama31_70b"]),
                       step_cost_factory=toy_factory(toy))
    with pytest.raises(ConfigError, match="deployment.speculative.method"):
        run_simulation(config([*LOAD, *mtp(1, 0.5), "deployment=afd"]),
                       step_cost_factory=toy_factory(toy))
    with pytest.raises(ConfigError, match="deployment.speculative.acceptance"):
        run_simulation(config([*LOAD, *mtp(1, 1.5)]), step_cost_factory=toy_factory(toy))
