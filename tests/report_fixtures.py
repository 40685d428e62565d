"""Synthetic Hydra multirun folders with realistic cosim summary.json files (report tests)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

GPUS = {"chunked": 8, "pd": 16, "afd": 16}


def summary(deployment: str = "chunked", workload: str = "chat", *, x: float = 30.0,
            y: float = 100.0, attainment: float = 0.95, feasible: bool = True,
            gpus: int | None = None, ttft_ms: float = 50.0, tpot_ms: float = 15.0) -> dict:
    """A summary.json as cosim writes it (issue 3 and 5 fields), with chosen headline values."""
    gpus = gpus or GPUS.get(deployment, 8)
    base: dict[str, Any] = {
        "feasible": feasible,
        "infeasible_reason": None if feasible else "weights 120.3 GB + minimum KV exceed 72 GB usable",
        "model": "deepseek_v32", "hardware": "b200", "topology": "dgx_b200_ib",
        "network": "analytical", "deployment_kind": deployment, "workload": workload,
        "seed": 0, "num_gpus": gpus, "requests_total": 100, "sim_wall_s": 1.7,
        "slo": {"ttft_ms": ttft_ms, "tpot_ms": tpot_ms, "e2e_ms": None},
        "deployment": {"kind": deployment, "instances": 1,
                       "gpus_by_role": {"replica": gpus} if deployment == "chunked"
                       else {"prefill": gpus // 2, "decode": gpus // 2}},
        "workload_notes": {"clipped_to_context": 0, "context_limit": 163840},
    }
    if not feasible:
        return base
    base.update({
        "requests_completed": 100, "simulated_s": 20.0,
        "input_tok_s": y * gpus * 17.0, "output_tok_s": y * gpus,
        "output_tok_s_per_gpu": y, "total_tok_s_per_gpu": y * 18.0,
        "tok_s_per_user_mean": x,
        "ttft_ms_p50": 40.0, "ttft_ms_p90": 48.0, "ttft_ms_p99": 60.0,
        "tpot_ms_p50": 1000.0 / x, "tpot_ms_p90": 1100.0 / x, "tpot_ms_p99": 1300.0 / x,
        "e2e_ms_p50": 9000.0, "e2e_ms_p99": 18000.0,
        "slo_attainment": attainment, "goodput_tok_s": y * gpus * attainment,
        "prefix_hit_rate": 0.4, "preemptions": 0,
        "compute_sources": {"interpolated": 0.8, "measured": 0.15, "roofline": 0.05},
        "iterations": 700, "comm": {"comm_model": "fabric:analytical"},
        "kv_transfer_ms_p50": 12.5 if deployment == "pd" else None,
        "kv_transfer_ms_p99": 34.5 if deployment == "pd" else None,
        "attention_busy": 0.83 if deployment == "afd" else None,
        "ffn_busy": 0.67 if deployment == "afd" else None,
        "comm_exposed_fraction": 0.03 if deployment == "afd" else None,
    })
    return base


def write_job(root: Path, name: str, overrides: list[str], summary_doc: dict | str | None
              ) -> Path:
    """One Hydra job folder: .hydra/overrides.yaml, .hydra/config.yaml and summary.json
    (a str is written verbatim, None writes no summary.json)."""
    job = root / name
    (job / ".hydra").mkdir(parents=True, exist_ok=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    cfg = {"seed": 0, "workload": {"name": "chat", "num_requests": 100,
                                   "arrival": {"process": "closed_loop", "users": 16}},
           "deployment": {"kind": "chunked", "replicas": 1}}
    for o in overrides:  # mirror dotted overrides into the resolved config, as Hydra does
        key, _, val = o.lstrip("+").partition("=")
        if "." not in key:
            continue
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = int(val) if val.isdigit() else val
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    if summary_doc is not None:
        text = summary_doc if isinstance(summary_doc, str) else json.dumps(summary_doc, indent=2)
        (job / "summary.json").write_text(text)
    return job


def sweep(root: Path, runs: list[tuple[list[str], dict | str | None]]) -> Path:
    """A multirun folder (multirun.yaml + numbered job folders) holding `runs`."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "multirun.yaml").write_text("hydra:\n  mode: MULTIRUN\n")
    for i, (ov, doc) in enumerate(runs):
        write_job(root, str(i), ov, doc)
    return root
