"""Runs whose results pin "a balanced load with ep dividing the experts prices as before
deployment.experts" for the kinds tests/des_reference_cases.py does not cover (pd, pd_afd)
and for a 128-expert model (tests/test_experts_wiring.py).

tests/data/experts_reference.json holds their summaries as the code before the expert
placement was wired in (commit d64b0ba) produced them; `python tests/experts_reference_cases.py`
rewrites it (only when a change is meant to move a prediction: say so in the commit).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from des_reference_cases import BASE

REFERENCE = Path(__file__).parent / "data" / "experts_reference.json"

CASES: dict[str, list[str]] = {
    "pd_1+1": [*BASE, "deployment=pd", "topology.num_nodes=2"],
    "pd_afd_1+(8+8)": [*BASE, "deployment=pd_afd", "topology.num_nodes=3"],
    "chunked_qwen3_h200": ["model=qwen3_235b", "hardware=h200", "topology=dgx_h200_ib",
                           "workload=chat", "workload.num_requests=60",
                           "workload.arrival.rate_per_s=30", "network=analytical",
                           "network.cache.enabled=false", "output.progress=false",
                           "deployment=chunked", "compute.moe_weights=all"],
}


def summary_of(case: str, extra: tuple[str, ...] = ()) -> dict:
    from des_reference_cases import VOLATILE

    from cosim.api import compose_config
    from cosim.serving.simulation import run_simulation

    out = run_simulation(compose_config([*CASES[case], *extra]))
    s = {k: v for k, v in out.summary.items() if k not in VOLATILE}
    s["iterations.duration_s"] = out.iterations.duration_s.to_numpy().tolist()[:200]
    s["requests.ttft_s"] = out.requests.ttft_s.to_numpy().tolist()
    return json.loads(json.dumps(s, default=str))


if __name__ == "__main__":
    from des_reference_cases import write_reference

    write_reference(REFERENCE, summary_of, sys.argv[1:] or list(CASES))
