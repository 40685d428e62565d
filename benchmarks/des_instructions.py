"""Instruction count of the serving DES's event loop (a load-independent speed measure).

Wall times on a shared machine move by ±10 %; callgrind's instruction count of the same run
does not. The case (one of bench_des's) runs twice in this process; the first run warms the
network cache, the compute tables and the process-shared memos (bench_des's "warm" row), and
callgrind counts only the second run's `Engine.run()`:

    valgrind --tool=callgrind --instr-atstart=no \
        python benchmarks/des_instructions.py --case "afd 8x(8+8)" --requests 300

and read "Collected : N" in valgrind's output. Without valgrind it prints the CPU seconds.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_des import CASES, overrides  # noqa: E402


def _callgrind(on: bool) -> None:
    """Switch callgrind's instrumentation (a no-op outside valgrind)."""
    try:
        subprocess.run(["callgrind_control", "-i", "on" if on else "off", str(os.getpid())],
                       capture_output=True, check=False)
    except FileNotFoundError:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", default="afd 8x(8+8)", choices=list(CASES))
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--rate", type=float, default=200.0)
    args = ap.parse_args()

    from cosim.api import compose_config
    from cosim.serving.engine import Engine
    from cosim.serving.events import RequestArrival
    from cosim.serving.simulation import prepare

    with tempfile.TemporaryDirectory() as tmp:
        cache = str(Path(tmp) / "net.sqlite")
        for measured in (False, True):
            dep, ctx, shared = prepare(compose_config(overrides(args.case, args.requests,
                                                                args.rate, cache)))
            try:
                eng = Engine()
                times, rids = ctx.driver.initial()
                for t, rid in zip(times.tolist(), rids.tolist(), strict=True):
                    eng.schedule(t, RequestArrival(dep, rid))
                if measured:
                    _callgrind(True)
                t0 = time.process_time()
                eng.run()
                cpu = time.process_time() - t0
                if measured:
                    _callgrind(False)
            finally:
                dep.close()
                if shared.get("backend") is not None:
                    shared["backend"].close()
    iters = sum(len(i.rows) for i in dep.instances)
    print(f"{args.case}: simulated {eng.now:.3f} s, {iters} iterations, "
          f"{eng.events_handled} events, cpu {cpu:.3f} s (the counted run)")


if __name__ == "__main__":
    main()
