"""cosim against the H200 rows of aiconfigurator-core 0.12's silicon_sample.csv.

    python scripts/validate_silicon.py                  # every H200 DeepSeek aggregated row -> docs/validation_silicon.md
    python scripts/validate_silicon.py --check          # the page is what the rows give today
    python scripts/validate_silicon.py --quick          # the quick subset's section only
    python scripts/validate_silicon.py --quick --check  # staleness test of that section (CI)
    python scripts/validate_silicon.py --check --section deepseek   # the bar's section

HELD-OUT DATA: the Blackwell rows (B200, GB200, B300, GB300) of that file are checked from
outside the project. This script keeps only rows whose `system` is `h200_sxm` right after
reading, before any other column is looked at, and never runs cosim on another system.

Each row is a measured aggregated deployment (framework, version, tp / attention dp / moe tp /
moe ep on one 8-GPU H200 server, ISL x OSL, concurrency) with its measured mean TTFT and
TPOT. cosim runs the same layout as a `chunked` replica, closed loop at the row's concurrency
(`silicon_concurrency=` of `silicon_data_source`, which is batch_size x attention_dp_size;
no think time, four requests per user, the first wave left out as warm-up), fixed ISL/OSL without shared prefixes, on its tables of
the same framework (the versions aiconfigurator-core ships for H200, newer than the measured
ones), twice: `compute.profile=none` and `compute.profile=framework` (DeepSeek rows a third
time: `compute.profile=none compute.moe_weights=all`, the MoE pricing before `touched`). Rows in the "tp N^2"
encoding (tp_size x attention_dp_size > 8 on one server) are not run: they duplicate rows
written with the real layout. Rows measured twice (same layout, lengths, concurrency and
figures) are run once.
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
QBEGIN = "<!-- GENERATED: scripts/validate_silicon.py --quick -->"
QEND = "<!-- END GENERATED: quick -->"
SAMPLE = Path(aiconfigurator_core.__file__).parent / "systems" / "silicon_sample.csv"
SYSTEM = "h200_sxm"
# model_path -> (cosim model config, its precision overrides for the measured checkpoint)
DEEPSEEK = {"deepseek-ai/DeepSeek-V3": ("deepseek_v3", []),
            "deepseek-ai/DeepSeek-R1": ("deepseek_r1", [])}
# The dense reference (its rows are FP8 per-tensor: nvidia's ModelOpt checkpoint, see the
# model config): the only other H200 model whose rows give a clean layout and that cosim
# holds, and the only H200 rows measured with vLLM.
DENSE = {"meta-llama/Llama-3.1-70B": ("llama31_70b", ["model.weight_dtype=fp8"])}
MODELS = {**DEEPSEEK, **DENSE}
DBEGIN = "<!-- GENERATED: scripts/validate_silicon.py --dense -->"
DEND = "<!-- END GENERATED: dense -->"
PROFILES = ("none", "framework")
# Runs of each row: the two profiles, and (DeepSeek section) the MoE priced by every local
# expert's weights as the balanced table rows were measured (compute.moe_weights=all, the
# default before `touched`: issue 10 cause 1) on the `none` profile.
VARIANTS = {"none": ["compute.profile=none"], "framework": ["compute.profile=framework"],
            "all_weights": ["compute.profile=none", "compute.moe_weights=all"]}
LABEL = {"none": "compute.profile=none", "framework": "compute.profile=framework",
         "all_weights": "compute.profile=none compute.moe_weights=all"}
# The bar: median |error| of TPOT <= 10 % and of TTFT <= 20 %.
BAR = {"tpot": 0.10, "ttft": 0.20}
LAYOUT = ["tp_size", "attention_dp_size", "moe_tp_size", "moe_ep_size"]
# Steady state: every user starts at t = 0, so the first wave of requests (one per user)
# queues its prompts behind each other, a start-up artefact the measured means do not show
# (e.g. 8192-token prompts at 32 users: a synchronized first wave alone averages seconds
# where the measured mean TTFT is ~1 s). Each user sends REQUESTS_PER_USER requests and the
# first `users` requests by arrival are left out of the figures (metrics.warmup_requests).
REQUESTS_PER_USER = 4


def h200_sample() -> pd.DataFrame:
    """Every H200 row of the sample (the only rows this script ever keeps)."""
    df = pd.read_csv(SAMPLE)
    return df[df["system"] == SYSTEM].copy()  # held-out Blackwell rows dropped first


def h200_rows() -> pd.DataFrame:
    """The H200 DeepSeek aggregated rows cosim runs (deduplicated, real layouts)."""
    df, _ = _split(h200_sample())
    return df


def _split(df: pd.DataFrame, models: dict = DEEPSEEK) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows to run, rows not expressible with a `why` column) of the H200 agg rows of `models`."""
    df = df[(df["mode"] == "agg") & df["model_path"].isin(list(models))].copy()
    for c in (*LAYOUT, "batch_size", "isl", "osl", "pp_size"):
        df[c] = df[c].astype(int)
    df["users"] = df["silicon_data_source"].str.extract(r"silicon_concurrency=(\d+)")[0] \
        .astype(float).fillna(df["batch_size"] * df["attention_dp_size"]).astype(int)
    df["backend_version"] = df["backend_version"].fillna("(no version)")
    gpus = df["tp_size"] * df["attention_dp_size"] * df["pp_size"]
    bad = df[gpus > 8].assign(why="tp x attention dp > 8 GPUs: the 'tp N^2' encoding of a row "
                                  "also written with its real layout")
    df = df[gpus <= 8]
    df["_t"] = df["silicon_ttft_ms"].round(1)
    df["_p"] = df["silicon_tpot_ms"].round(2)
    df = df.drop_duplicates(["backend", *LAYOUT, "isl", "osl", "users", "_t", "_p"])
    df = df.drop(columns=["_t", "_p"])
    df = df.sort_values(["backend", *LAYOUT, "isl", "osl", "users"]).reset_index(drop=True)
    return df, bad


def overrides(r: pd.Series, variant: str) -> list[str]:
    users = int(r["users"])
    per_rank = -(-users // int(r["attention_dp_size"]))
    name, extra = MODELS[r["model_path"]]
    ov = [f"model={name}", *extra, "hardware=h200", "topology=dgx_h200_ib",
          "topology.num_nodes=1", "deployment=chunked", f"deployment.layout.tp={r['tp_size']}",
          f"deployment.layout.dp={r['attention_dp_size']}", f"deployment.layout.ep={r['moe_ep_size']}",
          f"deployment.layout.moe_tp={r['moe_tp_size']}",
          # the benchmark's concurrency never waits on a request limit (frameworks' limits:
          # 1024-2048), so the per-rank limit is raised to the users a rank can hold
          f"deployment.scheduler.max_running_requests={max(64, per_rank)}",
          f"compute.framework={r['backend']}", *VARIANTS[variant], "workload=fixed",
          f"workload.input_tokens.mean={r['isl']}", f"workload.output_tokens.mean={r['osl']}",
          f"workload.arrival.users={users}", f"workload.num_requests={REQUESTS_PER_USER * users}",
          f"metrics.warmup_requests={users}", "output.progress=false"]
    return ov


def run_row(r: pd.Series, variant: str) -> dict:
    s = cosim.simulate(overrides(r, variant)).summary
    src = s.get("compute_sources") or {}
    return {"ttft_ms": s["ttft_ms_mean"], "tpot_ms": s["tpot_ms_mean"],
            "feasible": s["feasible"], "preemptions": s.get("preemptions", 0),
            "roofline_share": float(src.get("roofline", 0.0)),
            "comm_fraction": float(s.get("comm_fraction") or 0.0),
            "decode_batch": float(s.get("decode_batch_mean") or 0.0),
            "reason": s.get("infeasible_reason", "")}


def layout(r: pd.Series) -> str:
    return (f"tp{r['tp_size']} dp{r['attention_dp_size']} moe_tp{r['moe_tp_size']} "
            f"ep{r['moe_ep_size']}")


def evaluate(df: pd.DataFrame, variants: tuple[str, ...] = PROFILES) -> pd.DataFrame:
    rows = []
    for _, r in df.iterrows():
        for prof in variants:
            c = run_row(r, prof)
            rows.append({"id": r["id"], "framework": r["backend"],
                         "version": r["backend_version"],
                         "precision": f"{r['gemm_quant_mode']}/{r['moe_quant_mode']}",
                         "layout": layout(r), "isl_osl": f"{r['isl']}x{r['osl']}",
                         "users": int(r["users"]), "profile": prof,
                         "ttft_ms": c["ttft_ms"], "tpot_ms": c["tpot_ms"],
                         "silicon_ttft_ms": r["silicon_ttft_ms"],
                         "silicon_tpot_ms": r["silicon_tpot_ms"],
                         "ttft_err": c["ttft_ms"] / r["silicon_ttft_ms"] - 1,
                         "tpot_err": c["tpot_ms"] / r["silicon_tpot_ms"] - 1,
                         **{k: c[k] for k in ("feasible", "preemptions", "roofline_share",
                                              "comm_fraction", "decode_batch", "reason")}})
    return pd.DataFrame(rows)


def _pct(x: float) -> str:
    return f"{100 * x:+.0f} %" if np.isfinite(x) else "-"


def _abs(x: float) -> str:
    return f"{100 * x:.0f} %" if np.isfinite(x) else "-"


def diagnose(r: pd.Series) -> str:
    """What the run shows about a row's error (facts from its summary, no tuning)."""
    out = []
    if r["ttft_err"] < -0.5:
        out.append("measured TTFT holds queueing/start-up that cosim's admission does not")
    elif r["ttft_err"] > 0.5:
        out.append("cosim queues prompts longer than measured")
    if r["roofline_share"] > 0.2:
        out.append(f"{100 * r['roofline_share']:.0f} % of compute time off-table (roofline)")
    if r["comm_fraction"] > 0.2:
        out.append(f"{100 * r['comm_fraction']:.0f} % of iteration time exposed communication")
    if r["preemptions"]:
        out.append(f"{int(r['preemptions'])} preemptions")
    if abs(r["tpot_err"]) > 0.2:
        out.append(f"decode batch {r['decode_batch']:.0f}: step cost "
                   f"{'above' if r['tpot_err'] > 0 else 'below'} measured")
    return "; ".join(out) or "-"


def summary_table(res: pd.DataFrame) -> list[str]:
    out = ["| framework (measured) | precision | profile | rows | TTFT median abs err | TTFT p90 | "
           "TTFT signed median | TPOT median abs err | TPOT p90 | TPOT signed median |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    groups = list(res.groupby(["framework", "version", "precision", "profile"], sort=True))
    groups += [(("all", "", "", p), g) for p, g in res.groupby("profile", sort=True)]
    for (fw, ver, prec, prof), g in groups:
        g = g[g["feasible"].astype(bool)]
        te, pe = g["ttft_err"].to_numpy(float), g["tpot_err"].to_numpy(float)
        name = f"{fw} {ver}".strip() if fw != "all" else "**all rows**"
        out.append(f"| {name} | {prec} | {prof} | {len(g)} | {_abs(np.median(np.abs(te)))} | "
                   f"{_abs(np.percentile(np.abs(te), 90))} | {_pct(np.median(te))} | "
                   f"{_abs(np.median(np.abs(pe)))} | {_abs(np.percentile(np.abs(pe), 90))} | "
                   f"{_pct(np.median(pe))} |")
    return out


def verdict(res: pd.DataFrame) -> list[str]:
    out = []
    for prof, g in res.groupby("profile", sort=True):
        t = float(np.median(np.abs(g["ttft_err"])))
        p = float(np.median(np.abs(g["tpot_err"])))
        ok = p <= BAR["tpot"] and t <= BAR["ttft"]
        out.append(f"- `{LABEL[prof]}`: median |error| TPOT {_abs(p)}, TTFT {_abs(t)} "
                   f"over {len(g)} rows: the bar (TPOT <= 10 %, TTFT <= 20 %) is "
                   f"{'met' if ok else 'not met'}.")
    return out


def render(res: pd.DataFrame, bad: pd.DataFrame) -> str:
    out = ["Error = cosim / silicon - 1 of mean TTFT and mean TPOT; median and p90 of |error| "
           "per framework x precision and profile.", ""]
    out += summary_table(res)
    out += ["", *verdict(res), "", "Worst rows (largest |TTFT error| + |TPOT error|, "
            "compute.profile=framework):", "",
            "| id | framework | layout | ISL x OSL | users | TTFT cosim / measured (ms) | "
            "TPOT cosim / measured (ms) | diagnosis |", "|---|---|---|---|---|---|---|---|"]
    fw = res[res["profile"] == "framework"].copy()
    fw["score"] = fw["ttft_err"].abs() + fw["tpot_err"].abs()
    for _, r in fw.sort_values("score", ascending=False).head(8).iterrows():
        out.append(f"| {r['id']} | {r['framework']} {r['version']} | {r['layout']} | "
                   f"{r['isl_osl']} | {r['users']} | {r['ttft_ms']:.0f} / "
                   f"{r['silicon_ttft_ms']:.0f} | {r['tpot_ms']:.1f} / {r['silicon_tpot_ms']:.1f} "
                   f"| {diagnose(r)} |")
    all_weights = "all_weights" in set(res["profile"])
    out += ["", "Every row (error with compute.profile none -> framework"
            + ("; TPOT with the `none` profile and compute.moe_weights=all" if all_weights else "")
            + "):", "",
            "| id | framework | layout | ISL x OSL | users | measured TTFT / TPOT (ms) | "
            "TTFT error | TPOT error |" + (" TPOT error (moe_weights=all) |" if all_weights else ""),
            "|---|---|---|---|---|---|---|---|" + ("---|" if all_weights else "")]
    for rid, g in res.groupby("id", sort=False):
        a = g[g["profile"] == "none"].iloc[0]
        b = g[g["profile"] == "framework"].iloc[0]
        row = (f"| {rid} | {a['framework']} {a['version']} | {a['layout']} | {a['isl_osl']} "
               f"| {a['users']} | {a['silicon_ttft_ms']:.0f} / {a['silicon_tpot_ms']:.1f} | "
               f"{_pct(a['ttft_err'])} -> {_pct(b['ttft_err'])} | "
               f"{_pct(a['tpot_err'])} -> {_pct(b['tpot_err'])} |")
        if all_weights:
            row += f" {_pct(g[g['profile'] == 'all_weights'].iloc[0]['tpot_err'])} |"
        out.append(row)
    out += ["", "Rows not run, and why:", "", "| rows | framework | layout | why |",
            "|---|---|---|---|"]
    if len(bad):
        for (fw_, *lay, why), g in bad.groupby(["backend", *LAYOUT, "why"], sort=True):
            out.append(f"| {len(g)} | {fw_} | tp{lay[0]} dp{lay[1]} moe_tp{lay[2]} ep{lay[3]} "
                       f"| {why} |")
    return "\n".join(out)


def quick(df: pd.DataFrame) -> pd.DataFrame:
    """The CI subset: the first row (lowest ISL, OSL, concurrency) of each framework and layout."""
    return df.groupby(["backend", *LAYOUT], sort=True).head(1).reset_index(drop=True)


def render_quick(res: pd.DataFrame) -> str:
    out = ["Quick subset (`--quick`, checked by the test suite): one row per model, framework "
           "and layout.", "", "| id | framework | layout | ISL x OSL | users | profile | TTFT error "
           "| TPOT error |", "|---|---|---|---|---|---|---|---|"]
    for _, r in res.iterrows():
        out.append(f"| {r['id']} | {r['framework']} {r['version']} | {r['layout']} | "
                   f"{r['isl_osl']} | {r['users']} | {r['profile']} | {_pct(r['ttft_err'])} | "
                   f"{_pct(r['tpot_err'])} |")
    return "\n".join(out)


def render_dense(res: pd.DataFrame) -> str:
    out = ["Llama-3.1-70B FP8 rows (same harness; not part of the issue's DeepSeek bar):", ""]
    out += summary_table(res)
    out += ["", *verdict(res)]
    return "\n".join(out)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--quick", action="store_true", help="the quick section only")
    ap.add_argument("--section", choices=["all", "deepseek", "dense"], default="all",
                    help="without --quick: which full sections to regenerate or check")
    a = ap.parse_args(argv)
    df, bad = _split(h200_sample())
    dense, _ = _split(h200_sample(), DENSE)
    sub = pd.concat([quick(df), quick(dense)], ignore_index=True)
    rc = update_generated(DOC, QBEGIN, QEND, render_quick(evaluate(sub)), a.check)
    if a.quick:
        return rc
    if a.section in ("all", "deepseek"):
        rc = max(rc, update_generated(DOC, BEGIN, END, render(evaluate(df, tuple(VARIANTS)), bad),
                                      a.check))
    if a.section in ("all", "dense"):
        rc = max(rc, update_generated(DOC, DBEGIN, DEND, render_dense(evaluate(dense)), a.check))
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
