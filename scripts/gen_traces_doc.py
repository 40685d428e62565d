"""Regenerate the numbers of docs/traces.md (between its GENERATED markers): the shipped
samples as cosim reads them, their prefix reuse against an independent count of repeated
blocks (short real runs), and the shared options on the Mooncake sample.

Usage: python scripts/gen_traces_doc.py [--check]
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np

import cosim
from cosim.config.workload import ArrivalConfig, TraceConfig, WorkloadConfig
from cosim.files import update_generated
from cosim.paths import data_dir
from cosim.workload.build import build_workload
from cosim.workload.traces import detect_format

DOC = Path(__file__).resolve().parents[1] / "docs" / "traces.md"
TRACES = data_dir("traces")
TEST = Path(__file__).resolve().parents[1] / "tests" / "test_trace_samples.py"
# workload config, sample file, block_tokens of its hash ids (0: none)
SAMPLES = (("mooncake_sample", "mooncake_sample.jsonl", 512),
           ("bailian_sample", "bailian_sample.jsonl", 16),
           ("azure_sample", "azure_sample.csv", 0),
           ("burstgpt_sample", "burstgpt_sample.csv", 0),
           ("cosim_sample", "cosim_sample.parquet", 0))
# the prefix check: KV blocks dividing each trace's hash block, or spanning several
PREFIX_RUNS = (("mooncake_sample", "mooncake_sample.jsonl", 512, 64),
               ("bailian_sample", "bailian_sample.jsonl", 16, 16),
               ("bailian_sample", "bailian_sample.jsonl", 16, 64))
RUN = ["output.progress=false", "output.write_parquet=false", "deployment.router=prefix_aware"]
OPTIONS = (("none", {}, 100000),
           ("window_start_s=60 window_end_s=180", {"window_start_s": 60, "window_end_s": 180},
            100000),
           ("sample_fraction=0.5 (sample_seed=0)", {"sample_fraction": 0.5}, 100000),
           ("num_requests=50", {}, 50),
           ("time_scale=0.5", {"time_scale": 0.5}, 100000),
           ("rate_per_s=4", {"rate_per_s": 4.0}, 100000))


def section(name: str) -> tuple[str, str]:
    return (f"<!-- GENERATED: scripts/gen_traces_doc.py {name} -->",
            f"<!-- END GENERATED: gen_traces_doc {name} -->")


def load(file: str, num_requests: int = 100000, block: int = 512, **trace):
    cfg = WorkloadConfig(name="doc", kind="trace", num_requests=num_requests,
                         arrival=ArrivalConfig(process="trace"),
                         trace=TraceConfig(path=str(TRACES / file), block_tokens=block or 512,
                                           **trace))
    cfg.validate()
    return build_workload(cfg, 163840, seed=0)


def render_samples() -> str:
    lines = ["| sample (`workload=`) | file | detected format | requests | sessions "
             "(conversations) | mean input tokens | mean output tokens | mean rate (req/s) | "
             "skipped (failed) |", "|---|---|---|---|---|---|---|---|---|"]
    for wl, file, block in SAMPLES:
        t = load(file, block=block)
        n = t.notes
        conv = n.get("conversations", t.num_sessions)
        lines.append(f"| `{wl}` | `{file}` | {detect_format(TRACES / file)} | {len(t)} | "
                     f"{conv} | {t.prompt_tokens.mean():.0f} | {t.output_tokens.mean():.0f} | "
                     f"{n['rate_per_s']:.2f} | {n.get('skipped_failed', 0)} |")
    return "\n".join(lines)


def _test_module():
    """tests/test_trace_samples.py holds the one independent count and its tolerance."""
    spec = importlib.util.spec_from_file_location("test_trace_samples", TEST)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def tolerance() -> float:
    return float(_test_module().HIT_RATE_TOLERANCE)


def repeated_block_fraction(path: Path, block: int, kv: int) -> float:
    """The test's count: prompt tokens in full KV blocks seen in an earlier request."""
    return float(_test_module().repeated_block_fraction(path, block, kv))


def render_prefix() -> str:
    lines = ["| sample | hash block | KV block | repeated-block share (counted) | "
             "prefix_hit_rate (run) | counted - run |", "|---|---|---|---|---|---|"]
    for wl, file, block, kv in PREFIX_RUNS:
        s = cosim.simulate([f"workload={wl}", *RUN,
                            f"deployment.scheduler.kv_block_tokens={kv}"]).summary
        want = repeated_block_fraction(TRACES / file, block, kv)
        got = s["prefix_hit_rate"]
        lines.append(f"| `{wl}` | {block} | {kv} | {want:.4f} | {got:.4f} | {want - got:.4f} |")
    lines += ["", f"The test allows the run to fall short of the count by up to {tolerance():g} "
              "and never to exceed it."]
    return "\n".join(lines)


def render_options() -> str:
    lines = ["| options (`workload.trace.*`, or `workload.num_requests`) | requests replayed | "
             "first to last arrival (s) | mean rate (req/s) |", "|---|---|---|---|"]
    for label, opts, cap in OPTIONS:
        t = load("mooncake_sample.jsonl", num_requests=cap, **opts)
        span = float(np.nanmax(t.start_s))
        lines.append(f"| {label} | {len(t)} | {span:.1f} | {t.notes['rate_per_s']:.2f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = 0
    for name, render in (("samples", render_samples), ("prefix", render_prefix),
                         ("options", render_options)):
        begin, end = section(name)
        stale |= update_generated(DOC, begin, end, render(), check)
    return stale


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
