"""The issue's command: `cosim deployment=afd ... network=ns3` writes a timeline.json that
Perfetto opens, with at least one full AFD iteration (every layer, stage and micro-batch)."""

import json
import subprocess
import sys
from collections import defaultdict

import pytest

pytestmark = pytest.mark.ns3


def test_afd_on_ns3_writes_a_full_iteration_timeline(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", "from cosim.cli import main; main()",
           "deployment=afd", "model=deepseek_v32", "hardware=b200", "topology=dgx_b200_ib",
           "workload=chat", "network=ns3", "workload.num_requests=12", "network.cache.enabled=false",
           f"hydra.run.dir={out}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "timeline.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["comm"]["comm_model"] == "fabric:ns3"
    m = summary["deployment"]["afd"]["micro_batches"]
    ev = doc["traceEvents"]
    threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in ev
               if e["ph"] == "M" and e["name"] == "thread_name"}
    seen = defaultdict(set)  # (iteration, stage) -> {(layer, micro_batch)}
    for e in ev:
        if e["ph"] == "X" and "layer" in e.get("args", {}):
            stage = threads[(e["pid"], e["tid"])].split(" #")[0]
            seen[(e["args"]["iteration"], stage)].add((e["args"]["layer"], e["args"]["micro_batch"]))
    layers = 61  # DeepSeek-V3.2
    full = [it for it in {k[0] for k in seen}
            if all(len(seen[(it, s)]) == layers * m for s in ("attention", "a2f", "ffn", "f2a"))]
    assert full, {k: len(v) for k, v in seen.items()}
    # flows of the fabric's link classes are on their own tracks
    assert any(name.startswith("fabric: ") for name in threads.values())
