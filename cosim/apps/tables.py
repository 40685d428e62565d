"""`cosim-tables check [SYSTEM ...]`: list suspicious GEMM kernel-table rows per file and row.

Issue 10 cause 7: in vLLM 0.24.0's GB200 tables the fp8_block GEMM rows are flat at
0.24-0.83 ms across orders of magnitude of work. Two checks per (kernel_source, gemm_dtype,
n, k) series sorted by m:
- ``flat`` (cosim.compute.tables.flag_gemm_rows): latency flat while the work grows >= 100x,
  and even the fastest row > 10x the roofline of its smallest shape plus a launch floor.
  These rows are NOT used when pricing (another lane, the neighbouring shapes or the
  roofline price those shapes; the op's provenance carries "flagged table rows not used").
  One line per series (its first row).
- ``non-monotone``: a row at larger m is < NONMONO_RATIO x the preceding row's latency
  (listed for inspection; the tables' monotone lower envelope already keeps such a spike
  from pricing anything: docs/compute.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from cosim.compute.tables import flag_gemm_rows, systems_dir

NONMONO_RATIO = 0.5
_KEYS = ["kernel_source", "gemm_dtype", "n", "k"]


def check_gemm(df: pd.DataFrame, system: str | None = None) -> list[tuple[int, str]]:
    """(row index, reason) for every suspicious row (flat: one per series) of a gemm table."""
    found: list[tuple[int, str]] = []
    flat = flag_gemm_rows(df, system)
    keys = [c for c in _KEYS if c in df.columns]
    for _, g in df.groupby(keys, sort=False):
        g = g.sort_values("m", kind="stable")
        first = int(g.index[0])
        if first in flat:
            found.append((first, flat[first] + " [not used when pricing]"))
            continue
        lat = g["latency"].to_numpy(dtype=float)
        m = g["m"].to_numpy(dtype=float)
        for i in range(1, len(lat)):
            if m[i] > m[i - 1] and lat[i] < NONMONO_RATIO * lat[i - 1]:
                found.append((int(g.index[i]), f"non-monotone: {tuple(g[keys].iloc[i])} m "
                              f"{m[i - 1]:.0f}->{m[i]:.0f} latency {lat[i - 1]:.3g}->"
                              f"{lat[i]:.3g} ms"))
    return found


def check_system(system: str) -> dict[Path, list[tuple[int, str]]]:
    out: dict[Path, list[tuple[int, str]]] = {}
    for path in sorted((systems_dir() / "data" / system / "gemm").glob("*/*/gemm_perf.parquet")):
        out[path] = check_gemm(pd.read_parquet(path), system)
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
