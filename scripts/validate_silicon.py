"""cosim against the H200 rows of aiconfigurator-core 0.12's silicon_sample.csv.

    python scripts/validate_silicon.py            # every H200 DeepSeek aggregated row -> docs/validation_silicon.md
    python scripts/validate_silicon.py --check    # the page is what the rows give today (staleness test)
    python scripts/validate_silicon.py --quick    # the first rows of each framework only, printed

HELD-OUT DATA: the Blackwell rows (B200, GB200, B300, GB300) of that file are checked from
outside the project. This script keeps only rows whose `system` is `h200_sxm` right after
reading, before any other column is looked at, and never runs cosim on another system.

Each row is a measured aggregated deployment (framework, version, tp / attention dp / moe tp /
moe ep on one 8-GPU H200 server, ISL x OSL, concurrency) with its measured mean TTFT and
TPOT. cosim runs the same layout as a `chunked` replica, closed loop at the row's concurrency
(no think time), fixed ISL/OSL without shared prefixes, its tables of the same framework
(the versions aiconfigurator-core ships for H200, which are newer than the measured ones:
see the table), and reports cosim / silicon ratios. Rows in the "tp N^2" encoding
(tp_size x attention_dp_size > 8 on one server) are skipped, as their layout is not what ran.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import aiconfigurator_core
import numpy as np
import pandas as pd

import cosim
from cosim.files import update_generated

DOC = Path(__file__).resolve().parents[1] / "docs" / "validation_silicon.md"
BEGIN, END = "<!-- GENERATED: scripts/validate_silicon.py -->", "<!-- END GENERATED -->"
SAMPLE = Path(aiconfigurator_core.__file__).parent / "systems" / "silicon_sample.csv"
SYSTEM = "h200_sxm"
MODELS = {"deepseek-ai/DeepSeek-V3": "deepseek_v3", "deepseek-ai/DeepSeek-R1": "deepseek_r1"}


def h200_rows() -> pd.DataFrame:
    """The H200 DeepSeek aggregated rows (the only rows this script ever keeps)."""
    df = pd.read_csv(SAMPLE)
    df = df[df["system"] == SYSTEM]  # held-out Blackwell rows dropped before anything else
    df = df[(df["mode"] == "agg") & df["model_path"].isin(list(MODELS))].copy()
    for c in ("tp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size", "batch_size",
              "isl", "osl"):
        df[c] = df[c].astype(int)
    df = df[df["tp_size"] * df["attention_dp_size"] <= 8]  # one server; skip the N^2 encoding
    return df.sort_values(["backend", "tp_size", "attention_dp_size", "moe_ep_size", "isl", "osl",
                           "batch_size"]).reset_index(drop=True)


def run_row(r: pd.Series) -> dict:
    users = int(r["batch_size"])
    gpus = int(r["tp_size"] * r["attention_dp_size"])
    ov = [f"model={MODELS[r['model_path']]}", "hardware=h200", "topology=dgx_h200_ib",
          "topology.num_nodes=1", "deployment=chunked", f"deployment.layout.tp={r['tp_size']}",
          f"deployment.layout.dp={r['attention_dp_size']}", f"deployment.layout.ep={r['moe_ep_size']}",
          f"deployment.layout.moe_tp={r['moe_tp_size']}",
          f"deployment.scheduler.max_running_requests={max(64, users)}",
          f"compute.framework={r['backend']}", "workload=fixed",
          f"workload.input_tokens.mean={r['isl']}", f"workload.output_tokens.mean={r['osl']}",
          f"workload.arrival.users={users}", f"workload.num_requests={2 * users}",
          "output.progress=false"]
    if gpus != 8:
        raise ValueError(f"row {r['id']}: {gpus} GPUs")
    s = cosim.simulate(ov).summary
    return {"ttft_ms": s["ttft_ms_mean"], "tpot_ms": s["tpot_ms_mean"], "feasible": s["feasible"]}


def layout(r: pd.Series) -> str:
    return (f"tp{r['tp_size']} dp{r['attention_dp_size']} moe_tp{r['moe_tp_size']} "
            f"ep{r['moe_ep_size']}")


def evaluate(df: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for _, r in df.iterrows():
        c = run_row(r)
        version = r["backend_version"] if isinstance(r["backend_version"], str) else "(no version)"
        rows.append({"framework": f"{r['backend']} {version}", "layout": layout(r),
                     "isl_osl": f"{r['isl']}x{r['osl']}", "users": int(r["batch_size"]),
                     "ttft_ratio": c["ttft_ms"] / r["silicon_ttft_ms"],
                     "tpot_ratio": c["tpot_ms"] / r["silicon_tpot_ms"],
                     "silicon_ttft_ms": r["silicon_ttft_ms"], "silicon_tpot_ms": r["silicon_tpot_ms"]})
    return pd.DataFrame(rows)


def render(res: pd.DataFrame) -> str:
    out = ["Ratio cosim / silicon (mean TTFT, mean TPOT) per framework and layout: median and "
           "range over the rows (ISL x OSL and concurrency).", "",
           "| framework (measured) | layout | rows | TTFT median | TTFT range | TPOT median | "
           "TPOT range |", "|---|---|---|---|---|---|---|"]
    for (fw, lay), g in res.groupby(["framework", "layout"], sort=True):
        out.append(f"| {fw} | {lay} | {len(g)} | {np.median(g['ttft_ratio']):.2f} | "
                   f"{g['ttft_ratio'].min():.2f}-{g['ttft_ratio'].max():.2f} | "
                   f"{np.median(g['tpot_ratio']):.2f} | "
                   f"{g['tpot_ratio'].min():.2f}-{g['tpot_ratio'].max():.2f} |")
    out += ["", "Per framework, all layouts:", "", "| framework | rows | TTFT median | "
            "TPOT median | TPOT within ±20 % |", "|---|---|---|---|---|"]
    for fw, g in res.groupby("framework", sort=True):
        within = float(np.mean(np.abs(g["tpot_ratio"] - 1) <= 0.2))
        out.append(f"| {fw} | {len(g)} | {np.median(g['ttft_ratio']):.2f} | "
                   f"{np.median(g['tpot_ratio']):.2f} | {within:.0%} |")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--quick", action="store_true")
    a = ap.parse_args(argv)
    df = h200_rows()
    if a.quick:
        res = evaluate(df.groupby("backend").head(2))
        print(res.to_string(index=False))
        return 0
    return update_generated(DOC, BEGIN, END, render(evaluate(df)), a.check)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
