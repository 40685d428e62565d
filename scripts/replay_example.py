"""Regenerate the worked examples of docs/replay.md (between their markers):

- replay-example: a small DeepSeek-V3.2 AFD run on dgx_b200_ib recorded with
  output.flows=true, re-timed onto gb200_nvl72 by cosim-replay's core (GPU map `first`);
- flow-size: rows and MB of flows.parquet per 1,000 requests of the default workload for the
  chunked (the default run), afd and pd deployments.

Usage: python scripts/replay_example.py [--check] [--quick]
  --quick: the replay example only (the size table takes 1,000-request runs)
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from cosim.api import compose_config
from cosim.apps.replay import replay
from cosim.apps.run import write_outputs
from cosim.config import to_object
from cosim.files import update_generated
from cosim.network.flow_trace import read_flow_trace
from cosim.serving.simulation import run_simulation

DOC = Path(__file__).resolve().parents[1] / "docs" / "replay.md"
TRACES_DOC = DOC.with_name("traces.md")  # shows the same worked example
EXAMPLE = ("<!-- replay-example:start -->", "<!-- replay-example:end -->")
SIZE = ("<!-- flow-size:start -->", "<!-- flow-size:end -->")
# the network cache is off so that the page does not depend on what a local cache holds
RECORD = ["model=deepseek_v32", "hardware=b200", "topology=dgx_b200_ib", "deployment=afd",
          "workload=chat", "workload.num_requests=100", "network=analytical",
          "network.cache.enabled=false", "output.progress=false", "output.flows=true"]
TARGET = ["topology=gb200_nvl72", "network=analytical", "network.cache.enabled=false"]
SIZE_KINDS = ("chunked", "afd", "pd")


def _record(overrides: list[str], folder: Path) -> tuple[Path, dict]:
    res = run_simulation(compose_config(overrides))
    write_outputs(folder, res.summary, res.requests, res.iterations, False, {}, res.flows)
    return folder / "flows.parquet", res.summary


def example_table(folder: Path) -> str:
    path, summary = _record(RECORD, folder)
    cfg = to_object(compose_config([f"flows={path}", *TARGET], "replay"))
    doc = replay(str(path), cfg.topology, cfg.network, "first")
    rec = doc["recorded"]
    lines = [f"Recorded: `cosim {' '.join(RECORD[:6])} output.flows=true` ({rec['rows']:,} rows, "
             f"{rec['groups']:,} groups, {rec['patterns']} patterns, "
             f"{summary['requests_completed']} requests). Replayed: `cosim-replay "
             f"flows=.../flows.parquet topology=gb200_nvl72 network=analytical "
             f"replay.gpu_map=first` ({doc['replayed']['backend_calls']} backend calls; "
             "attention GPUs 0-7 and FFN GPUs 8-15 land in one NVLink domain):", "",
             "| class | layer transfers | before p50 (us) | before p99 (us) | after p50 (us) "
             "| after p99 (us) | slowdown | bottleneck before | bottleneck after |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in doc["classes"]:
        lines.append(f"| {r['traffic_class']} | {r['layer_transfers']:,.0f} | "
                     f"{r['before_p50_us']:.1f} | {r['before_p99_us']:.1f} | "
                     f"{r['after_p50_us']:.1f} | {r['after_p99_us']:.1f} | "
                     f"{r['slowdown']:.3f} | {r['bottleneck_before']} "
                     f"({r['bottleneck_before_share']:.0%}) | {r['bottleneck_after']} "
                     f"({r['bottleneck_after_share']:.0%}) |")
    it = doc["iteration_network"]
    lines += ["", f"Network time per iteration (sum of its transfers x layers): mean "
              f"{it['before_mean_ms']:.2f} ms before, {it['after_mean_ms']:.2f} ms after "
              f"({it['iterations']} iterations)."]
    return "\n".join(lines)


def size_table(folder: Path) -> str:
    lines = ["`cosim deployment=<kind> output.flows=true` with the default workload (chat, "
             "1,000 requests) on dgx_b200_ib, analytical backend:", "",
             "| deployment | rows | groups | patterns | rows per 1,000 requests | "
             "MB per 1,000 requests |", "|---|---|---|---|---|---|"]
    for kind in SIZE_KINDS:
        sub = folder / kind
        path, s = _record([f"deployment={kind}", "network.cache.enabled=false",
                           "output.progress=false", "output.flows=true"], sub)
        n = s["requests_completed"]
        meta = read_flow_trace(path).metadata
        mb = path.stat().st_size / 1e6
        lines.append(f"| {kind} | {meta['rows']:,} | {meta['groups']:,} | {meta['patterns']:,} | "
                     f"{meta['rows'] * 1000 / n:,.0f} | {mb * 1000 / n:.1f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    with tempfile.TemporaryDirectory() as tmp:
        table = example_table(Path(tmp) / "example")
        rc = update_generated(DOC, *EXAMPLE, table, check)
        rc |= update_generated(TRACES_DOC, *EXAMPLE, table, check)
        if "--quick" not in argv:
            rc |= update_generated(DOC, *SIZE, size_table(Path(tmp) / "size"), check)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
