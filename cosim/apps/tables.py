"""`cosim-tables check [SYSTEM ...]`: list suspicious GEMM kernel-table rows per file and row.

Issue 10 cause 7: in vLLM 0.24.0's GB200 tables the fp8_block GEMM rows are flat at
0.24-0.83 ms across orders of magnitude of work. A GEMM's latency cannot fall when m grows
at fixed (n, k) and cannot stay flat over a >=100x range of work (roofline: work scales
with m*n*k). Two checks per (kernel_source, gemm_dtype, n, k) series sorted by m:
- ``flat``: m spans >= FLAT_WORK_RATIO x yet max/min latency < FLAT_LATENCY_RATIO;
- ``non-monotone``: a row at larger m is < NONMONO_RATIO x the preceding row's latency.
Thresholds are deliberately loose (a factor, not noise) so that measurement jitter passes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from cosim.compute.tables import systems_dir

FLAT_WORK_RATIO = 100.0
FLAT_LATENCY_RATIO = 1.5
NONMONO_RATIO = 0.5
_KEYS = ["kernel_source", "gemm_dtype", "n", "k"]


def check_gemm(df: pd.DataFrame) -> list[tuple[int, str]]:
    """(row index, reason) for every suspicious row of one gemm_perf table."""
    found: list[tuple[int, str]] = []
    keys = [c for c in _KEYS if c in df.columns]
    for key, g in df.groupby(keys, sort=False):
        g = g.sort_values("m", kind="stable")
        lat = g["latency"].to_numpy(dtype=float)
        m = g["m"].to_numpy(dtype=float)
        if len(g) >= 2 and m[-1] / max(m[0], 1.0) >= FLAT_WORK_RATIO \
                and lat.max() / max(lat.min(), 1e-12) < FLAT_LATENCY_RATIO:
            found.append((int(g.index[0]), f"flat: {key} latency {lat.min():.3g}-"
                          f"{lat.max():.3g} ms over m {m[0]:.0f}-{m[-1]:.0f}"))
            continue
        for i in range(1, len(lat)):
            if m[i] > m[i - 1] and lat[i] < NONMONO_RATIO * lat[i - 1]:
                found.append((int(g.index[i]), f"non-monotone: {key} m {m[i - 1]:.0f}->"
                              f"{m[i]:.0f} latency {lat[i - 1]:.3g}->{lat[i]:.3g} ms"))
    return found


def check_system(system: str) -> dict[Path, list[tuple[int, str]]]:
    out: dict[Path, list[tuple[int, str]]] = {}
    for path in sorted((systems_dir() / "data" / system / "gemm").glob("*/*/gemm_perf.parquet")):
        out[path] = check_gemm(pd.read_parquet(path))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="cosim-tables")
    p.add_argument("command", choices=["check"])
    p.add_argument("systems", nargs="*", default=["h200_sxm"])
    a = p.parse_args(argv)
    known = {d.name for d in (systems_dir() / "data").iterdir() if d.is_dir()}
    for s in a.systems:
        if s not in known:
            print(f"cosim-tables: unknown system {s!r} (known: {', '.join(sorted(known))})",
                  file=sys.stderr)
            return 2
    for s in a.systems:
        for path, rows in check_system(s).items():
            rel = path.relative_to(systems_dir() / "data")
            print(f"{rel}: {len(rows)} flagged")
            for row, why in rows[:50]:
                print(f"  row {row}: {why}")
            if len(rows) > 50:
                print(f"  ... {len(rows) - 50} more")
    return 0


if __name__ == "__main__":
    sys.exit(main())
