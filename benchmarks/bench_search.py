"""Wall time of the 128-GPU design-space search (issue 8's headline scenario).

    python benchmarks/bench_search.py [--gpus 128] [extra cosim-search overrides ...]

DeepSeek-V3.2 on B200, DGX B200 + IB fabric, chat, the default SLO, analytical network, every
kind; a fresh output folder (no resumed evaluation). Prints candidates, one-user static runs,
simulations, DES events and the wall time on this machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gpus", type=int, default=128)
    ap.add_argument("overrides", nargs="*")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "search"
        cmd = [sys.executable, "-c", "from cosim.cli import search_main; search_main()",
               "model=deepseek_v32", "hardware=b200", "topology=dgx_b200_ib", "workload=chat",
               "slo=default", f"search.gpus={a.gpus}", f"hydra.run.dir={out}", *a.overrides]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        doc = json.loads((out / "best.json").read_text())
        cands = pd.read_parquet(out / "candidates.parquet")
        statics = len(list((out / "evals").glob("*.json"))) - doc["stats"]["simulations"]
    row = {"gpus": a.gpus, "candidates": len(cands), "one_user_static_runs": statics,
           "simulations": doc["stats"]["simulations"], "des_events": doc["stats"]["des_events"],
           "wall_s": round(wall, 1),
           "feasible_kinds": [k for k, e in doc["by_kind"].items() if e["answer"] == "feasible"]}
    print(json.dumps(row, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
