"""Write traces/cosim_sample.parquet: the requests.parquet of a short real cosim run.

The run is the default experiment (DeepSeek-V3.2, chunked serving on dgx_b200_ib, measured
kernel tables, analytical network) on a chat workload of 120 requests in sessions of about
two turns with 2 s think time, so the file carries sessions, shared-prefix pool ids and think
times for `workload=cosim_sample` (workload.trace.format=cosim) to replay.
Seeded; re-run to regenerate: python scripts/make_cosim_sample.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import cosim

OUT = Path(__file__).resolve().parents[1] / "traces" / "cosim_sample.parquet"
OVERRIDES = ["workload=chat", "workload.num_requests=120", "workload.arrival.rate_per_s=8",
             "workload.turns.mean=2", "workload.turns.cv=0.5", "workload.arrival.think_time_s=2",
             "output.progress=false", "seed=0"]


def main(argv: list[str] | None = None) -> int:
    out = Path(argv[0]) if argv else OUT
    res = cosim.simulate(OVERRIDES)
    out.parent.mkdir(parents=True, exist_ok=True)
    res.requests.to_parquet(out, index=False)
    print(f"{out}: {len(res.requests)} requests, "
          f"{res.requests['session'].nunique()} sessions")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
