"""`cosim`: run one serving simulation and write its results into the Hydra run directory.

A run whose folder already holds the complete outputs of the same config (summary.json with
its `config_sha256`, readable parquet files: cosim.report.outputs) is not run again unless
`output.resume=false`: re-running a sweep into its folder (`hydra.sweep.dir=...`) runs only
the jobs that are missing, failed or of another config.

Files (written to temporary names and renamed, so a failed run leaves none half-written):
summary.json, requests.parquet, iterations.parquet (and flows.parquet with output.flows=true,
docs/replay.md). A short table goes to stdout; runs longer
than a couple of seconds show a progress bar (rich) on stderr.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from hydra.types import RunMode
from omegaconf import DictConfig

from cosim.files import StagedFiles

log = logging.getLogger(__name__)

EXIT_INFEASIBLE = 4  # 2: bad input, 3: network backend unavailable, 4: infeasible configuration

SUMMARY_ROWS = (
    ("feasible", "feasible", "{}"),
    ("num_gpus", "GPUs", "{}"),
    ("requests_completed", "requests completed", "{}"),
    ("warmup_excluded_requests", "left out as warm-up (metrics.warmup_*)", "{}"),
    ("simulated_s", "simulated time (s)", "{:.2f}"),
    ("output_tok_s", "output tokens/s", "{:,.0f}"),
    ("output_tok_s_per_gpu", "output tokens/s per GPU", "{:,.1f}"),
    ("total_tok_s_per_gpu", "total tokens/s per GPU", "{:,.1f}"),
    ("tok_s_per_user_mean", "tokens/s per user (mean)", "{:.1f}"),
    ("ttft_ms_p50", "TTFT p50 (ms)", "{:.1f}"),
    ("ttft_ms_p99", "TTFT p99 (ms)", "{:.1f}"),
    ("tpot_ms_p50", "TPOT p50 (ms)", "{:.2f}"),
    ("tpot_ms_p99", "TPOT p99 (ms)", "{:.2f}"),
    ("slo_attainment", "SLO attainment", "{:.1%}"),
    ("goodput_tok_s", "goodput (output tokens/s)", "{:,.0f}"),
    ("usd_per_hour", "GPU cost ($/hour)", "{:,.2f}"),
    ("usd_per_mtok", "$ per million output tokens", "{:,.3f}"),
    ("prefix_hit_rate", "prefix hit rate", "{:.1%}"),
    ("preemptions", "preemptions", "{}"),
    ("comm_exposed_fraction", "communication exposed", "{:.1%}"),
    ("attention_busy", "attention GPUs busy", "{:.1%}"),
    ("ffn_busy", "FFN GPUs busy", "{:.1%}"),
    ("kv_transfer_ms_p50", "KV transfer p50 (ms)", "{:.2f}"),
    ("network", "network backend", "{}"),
    ("network_cache_hit_rate", "network cache hit rate", "{:.1%}"),
    ("sim_wall_s", "wall time (s)", "{:.2f}"),
)


class _Progress:
    """A rich progress bar that appears only once a run has taken `delay_s` of wall time."""

    def __init__(self, total: int, delay_s: float = 2.0):
        self.total = total
        self.t0 = time.perf_counter()
        self.delay_s = delay_s
        self.bar = None
        self.task = None

    def __call__(self, now: float, completed: int) -> None:
        if self.bar is None:
            if time.perf_counter() - self.t0 < self.delay_s:
                return
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.bar = Progress(TextColumn("simulating"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("requests, t_sim={task.fields[t]:.1f}s"),
                                TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("sim", total=self.total, t=0.0)
        self.bar.update(self.task, completed=completed, t=now)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def write_outputs(out_dir: Path, summary: dict, requests: Any, iterations: Any,
                  parquet: bool = True, artifacts: dict | None = None,
                  flows: Any = None) -> list[Path]:
    """Write the run's files atomically (temporary name in the same folder, then rename).

    flows: the run's flow trace (output.flows=true) for flows.parquet.
    """
    with StagedFiles(out_dir) as files:
        if flows is not None:
            from cosim.network.flow_trace import write_flow_trace

            write_flow_trace(flows, files.stage("flows.parquet"))
        if parquet:
            requests.to_parquet(files.stage("requests.parquet"), index=False)
            iterations.to_parquet(files.stage("iterations.parquet"), index=False)
        for name, obj in (artifacts or {}).items():
            files.stage(name).write_text(json.dumps(obj))
        files.stage("summary.json").write_text(json.dumps(summary, indent=2, sort_keys=False)
                                               + "\n")
    return [out_dir / name for name in files.names()]


def print_summary(summary: dict, out_dir: Path | None = None) -> None:
    """A short table of the headline figures on stdout (and where the files went)."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"cosim: {summary.get('model')} on {summary.get('hardware')}, "
                    f"{summary.get('deployment_kind')}, workload {summary.get('workload')}",
              show_header=False)
    t.add_column("metric")
    t.add_column("value", justify="right")
    for key, label, fmt in SUMMARY_ROWS:
        v = summary.get(key)
        if v is None or (key == "warmup_excluded_requests" and not v):
            continue
        t.add_row(label, fmt.format(v))
    if not summary.get("feasible"):
        t.add_row("infeasible", str(summary.get("infeasible_reason")))
    console = Console()
    console.print(t)
    if out_dir is not None:
        console.print(f"results: {out_dir}")


def run_task(cfg: DictConfig) -> dict:
    """Task function of the `cosim` Hydra app: simulate `cfg`, write results, return the summary."""
    from hydra.core.hydra_config import HydraConfig

    from cosim.config import check_unknown_keys
    from cosim.report.outputs import FINGERPRINT, config_fingerprint, incomplete_reason
    from cosim.serving.simulation import run_simulation

    check_unknown_keys(cfg)
    out_dir = Path(HydraConfig.get().runtime.output_dir)
    fingerprint = config_fingerprint(cfg)
    if cfg.output.resume and not incomplete_reason(out_dir, fingerprint,
                                                  bool(cfg.output.write_parquet)):
        summary = json.loads((out_dir / "summary.json").read_text())
        log.info("resume: %s holds the complete outputs of this config; not run again "
                 "(output.resume=false runs it)", out_dir)
        _exit_if_infeasible(summary)
        return summary
    prog = _Progress(int(cfg.workload.num_requests)) if cfg.output.progress else None
    try:
        out = run_simulation(cfg, progress=prog)
    finally:
        if prog is not None:
            prog.close()
    out.summary[FINGERPRINT] = fingerprint
    write_outputs(out_dir, out.summary, out.requests, out.iterations,
                  bool(cfg.output.write_parquet), out.artifacts, out.flows)
    print_summary(out.summary, out_dir)
    _exit_if_infeasible(out.summary)
    return out.summary


def _exit_if_infeasible(summary: dict) -> None:
    from hydra.core.hydra_config import HydraConfig

    if not summary.get("feasible", True) and HydraConfig.get().mode == RunMode.RUN:
        # Not an error in the input, but no answer either: a distinct code once the summary
        # is written (in a -m sweep the job stays a result, and the sweep goes on).
        print(f"cosim: infeasible: {summary.get('infeasible_reason')}", file=sys.stderr)
        raise SystemExit(EXIT_INFEASIBLE)
