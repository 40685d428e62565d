"""Small serving runs whose summaries pin the DES's results (tests/test_des_fast_paths.py).

tests/data/des_reference.json holds their summaries as the code before the DES speed-ups
(issue 8) produced them; `python tests/des_reference_cases.py` rewrites it (only when a
change is meant to move a prediction: say so in the commit).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path

REFERENCE = Path(__file__).parent / "data" / "des_reference.json"
# Keys that are wall-clock or host facts, not results.
VOLATILE = {"sim_wall_s"}

BASE = ["model=deepseek_v32", "hardware=b200", "topology=dgx_b200_ib", "workload=chat",
        "workload.num_requests=120", "workload.arrival.rate_per_s=60", "network=analytical",
        "network.cache.enabled=false", "output.progress=false",
        # the reference predates compute.moe_weights=touched (the default since): these
        # cases pin that the DES speed-ups change nothing, on the pricing they were made with
        "compute.moe_weights=all"]
CASES: dict[str, list[str]] = {
    # 2 units, 3 micro-batches: uneven micro-batches go through the layer pipeline
    "afd_2x(8+8)": ["deployment=afd", "deployment.roles.attention.count=2",
                    "deployment.roles.ffn.count=2", "topology.num_nodes=4"],
    "afd_iteration_mode": ["deployment=afd", "network.mode=iteration", "topology.num_nodes=2"],
    "afd_tp2_m2": ["deployment=afd", "deployment.roles.attention.layout.tp=2",
                   "deployment.roles.attention.layout.dp=4", "deployment.micro_batches=2",
                   "topology.num_nodes=2"],
    "chunked_2": ["deployment=chunked", "deployment.replicas=2", "topology.num_nodes=2"],
}


def summary_of(case: str) -> dict:
    from cosim.api import compose_config
    from cosim.serving.simulation import run_simulation

    out = run_simulation(compose_config([*BASE, *CASES[case]]))
    s = {k: v for k, v in out.summary.items() if k not in VOLATILE}
    # every iteration's duration and every request's first-token / finish time, bit for bit
    for name, col in (("iterations.duration_s", out.iterations.duration_s),
                      ("requests.ttft_s", out.requests.ttft_s),
                      ("requests.e2e_s", out.requests.e2e_s)):
        s["sha256:" + name] = hashlib.sha256(col.to_numpy().tobytes()).hexdigest()
    return json.loads(json.dumps(s, default=str))


def write_reference(path: Path, summary: Callable[[str], dict], names: list[str]) -> None:
    """Record `summary(name)` for `names` into `path`, keeping the cases not named."""
    ref = json.loads(path.read_text()) if path.exists() else {}
    ref.update({name: summary(name) for name in names})
    path.write_text(json.dumps(ref, indent=1, sort_keys=True) + "\n")
    print(f"wrote {', '.join(names)} into {path}")


if __name__ == "__main__":
    write_reference(REFERENCE, summary_of, sys.argv[1:] or list(CASES))
