"""`deployment.micro_batch_cost` reaches a search's AFD runs through kind_overrides."""

from __future__ import annotations

from disagg_toy_cost import config

from cosim.config import apply_kind_overrides
from cosim.search.evaluate import run_overrides
from cosim.search.space import Candidate


def test_kind_override_of_the_pricing_survives_the_search_overrides_and_applies_to_afd_only():
    base = ["model=deepseek_v32", "+kind_overrides.afd.micro_batch_cost=linear_split",
            "deployment.micro_batch_cost=per_microbatch"]  # a deployment.* key the search drops
    cand = Candidate(kind="afd", gpus=16, settings={"deployment.micro_batches": 3})
    ov = run_overrides(base, cand, users=2, requests=10)
    assert "+kind_overrides.afd.micro_batch_cost=linear_split" in ov
    assert "deployment.micro_batch_cost=per_microbatch" not in ov
    cfg = apply_kind_overrides(config([o for o in ov if o != "model=deepseek_v32"]))
    assert cfg.deployment.micro_batch_cost == "linear_split"
    chunked = apply_kind_overrides(config(["+kind_overrides.afd.micro_batch_cost=linear_split"]))
    assert chunked.deployment.kind == "chunked"
    assert chunked.deployment.micro_batch_cost == "per_microbatch"
