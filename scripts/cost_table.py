"""Regenerate the price table of docs/cost.md from hydra_configs/hardware/*.yaml.

    python scripts/cost_table.py          # rewrite the table in docs/cost.md
    python scripts/cost_table.py --check  # exit 1 when the page is stale

tests/test_cost.py runs the check, so the page follows the configs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "cost.md"
HARDWARE = ROOT / "hydra_configs" / "hardware"
BEGIN = "<!-- BEGIN price table: scripts/cost_table.py -->"
END = "<!-- END price table -->"
EXAMPLE_TOK_S_PER_GPU = 1000.0  # the worked example's output tokens/s per GPU


def render() -> str:
    rows = ["| config | $ per GPU-hour | $ per 8-GPU server-hour | $ per million output tokens "
            f"at {EXAMPLE_TOK_S_PER_GPU:,.0f} output tok/s/GPU | source |",
            "|---|---|---|---|---|"]
    for path in sorted(HARDWARE.glob("*.yaml")):
        cfg = yaml.safe_load(path.read_text())
        price = cfg.get("usd_per_gpu_hour")
        src = " ".join(str(cfg.get("price_source", "")).split())
        if price is None:
            rows.append(f"| `{path.stem}` | – | – | – | {src} |")
            continue
        per_mtok = price / (EXAMPLE_TOK_S_PER_GPU * 3600.0) * 1e6
        rows.append(f"| `{path.stem}` | {price:.2f} | {8 * price:.2f} | {per_mtok:.3f} | {src} |")
    return "\n".join(rows)


def page_with_table(text: str) -> str:
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n{render()}\n{END}{tail}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 when docs/cost.md is stale")
    args = ap.parse_args()
    text = PAGE.read_text()
    new = page_with_table(text)
    if args.check:
        if new != text:
            print(f"{PAGE}: price table is stale; run python scripts/cost_table.py", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(new)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
