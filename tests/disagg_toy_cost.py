"""Helpers for the disaggregation tests: composed configs and a toy compute model.

The toy step cost is linear in tokens and independent of the context, so expected iteration
times follow from closed forms exactly (it stands in for B's measured tables, not for any
process or library in the main path).
"""

from __future__ import annotations

from hydra import compose, initialize_config_dir

from cosim.compute.step_cost import StepCost
from cosim.config import register_configs, to_object
from cosim.paths import hydra_config_dir


def config(overrides: list[str]):
    """The root Config for `overrides` (composed by Hydra from hydra_configs/)."""
    register_configs()
    with initialize_config_dir(config_dir=hydra_config_dir(), version_base="1.3"):
        return to_object(compose("config", overrides=overrides))


class ToyStepCost:
    """Per-rank iteration cost: attention a0 + a1 * tokens, FFN f0 + f1 * tokens (whole stack)."""

    def __init__(self, a0: float, a1: float, f0: float, f1: float):
        self.a0, self.a1, self.f0, self.f1 = a0, a1, f0, f1

    def attention_cost(self, decode_batch, decode_kv_len, prefill_tokens=0, prefill_kv_len=0,
                       prefill_requests=0):
        t = self.a0 + self.a1 * (decode_batch + prefill_tokens)
        return StepCost(t, t, 0.0, 0.0, {"toy": t})

    def ffn_cost(self, tokens):
        t = self.f0 + self.f1 * tokens
        return StepCost(t, 0.0, t, 0.0, {"toy": t})

    def cost(self, decode_batch, decode_kv_len, prefill_tokens=0, prefill_kv_len=0,
             prefill_requests=0):
        return (self.attention_cost(decode_batch, decode_kv_len, prefill_tokens, prefill_kv_len,
                                    prefill_requests)
                + self.ffn_cost(decode_batch + prefill_tokens))


def toy_factory(toy: ToyStepCost):
    """A step_cost_factory for run_simulation that prices every layout with `toy`."""
    return lambda spec, layout: toy


FIXED = ["workload=fixed", "workload.prefix_tokens.mean=0", "workload.input_tokens.mean=256",
         "workload.output_tokens.mean=16"]
