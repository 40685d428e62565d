"""Re-running a sweep into its folder runs only the jobs whose outputs are not complete.

A real 4-job sweep (`cosim -m`, 4 requests per job, about a second each) is damaged as an
interrupted sweep leaves it: one job folder never written, one job without summary.json
(killed before its last rename), one with a truncated requests.parquet. cosim-report lists
them; the re-run runs exactly those three, leaves the complete job's files untouched (same
inode: not rewritten) and the report is then clean.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cosim.report.cli import report_main
from cosim.report.jobs import sweep_jobs
from cosim.report.outputs import config_fingerprint, incomplete_reason

ROOT = Path(__file__).resolve().parents[1]
GRID = ["workload.num_requests=4", "output.progress=false", "seed=0,1,2,3"]


def _sweep(out: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COSIM_CACHE_DIR": str(out.parent / "cache")}
    p = subprocess.run([sys.executable, "-m", "cosim.cli", "-m", *GRID, *extra,
                        f"hydra.sweep.dir={out}"],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    return p


def _stamps(out: Path) -> dict[str, tuple[int, int]]:
    """job folder -> (inode, mtime) of its summary.json: a run writes a new file (renamed
    into place), so a changed stamp is a job that ran."""
    return {p.parent.name: (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in out.glob("*/summary.json")}


def _ran(before: dict, out: Path) -> list[str]:
    return sorted(k for k, v in _stamps(out).items() if before.get(k) != v)


def _skipped(p: subprocess.CompletedProcess) -> int:
    return sum("not run again" in ln for ln in p.stdout.splitlines())


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    out = tmp_path_factory.mktemp("resume") / "mr"
    return out, _sweep(out)


def test_interrupted_sweep_is_reported_then_resumed_running_each_job_once(swept, tmp_path,
                                                                          capsys):
    out, first = swept
    assert sorted(_stamps(out)) == ["0", "1", "2", "3"] and _skipped(first) == 0
    # what an interrupted sweep leaves behind
    parquet = out / "1" / "requests.parquet"
    parquet.write_bytes(parquet.read_bytes()[:100])
    (out / "2" / "summary.json").unlink()
    shutil.rmtree(out / "3")

    assert report_main([str(out), "--out", str(tmp_path / "partial"), "--no-plot"]) == 0
    printed = capsys.readouterr().out
    assert "jobs: 4 (1 done, 2 failed, 1 missing)" in printed
    assert "note: 3 of 4 jobs are not done (2 failed, 1 missing)" in " ".join(printed.split())
    status = {j.run_dir: (j.status, j.reason) for j in sweep_jobs(out)}
    assert status["0"] == ("done", "")
    assert status["1"][0] == "failed" and "requests.parquet is not readable" in status["1"][1]
    assert status["2"][0] == "failed" and "no summary.json" in status["2"][1]
    assert status["3"][0] == "missing" and "seed=3" in " ".join(
        next(j for j in sweep_jobs(out) if j.run_dir == "3").overrides)

    before = _stamps(out)
    again = _sweep(out)
    assert _ran(before, out) == ["1", "2", "3"], again.stdout[-3000:]  # job 0 not re-run
    assert _skipped(again) == 1
    assert [j.status for j in sweep_jobs(out)] == ["done"] * 4

    before = _stamps(out)
    third = _sweep(out)  # nothing left to do
    assert _ran(before, out) == [] and _skipped(third) == 4


def test_another_config_or_resume_false_runs_again(swept):
    out, _ = swept
    if any(j.status != "done" for j in sweep_jobs(out)):
        _sweep(out)  # this test alone: complete the sweep first
    before = _stamps(out)
    other = _sweep(out, "slo=loose")  # same folders, another config: nothing is reused
    assert _ran(before, out) == ["0", "1", "2", "3"] and _skipped(other) == 0
    before = _stamps(out)
    forced = _sweep(out, "slo=loose", "output.resume=false")
    assert _ran(before, out) == ["0", "1", "2", "3"] and _skipped(forced) == 0


def test_incomplete_reason_checks_rather_than_assumes(swept, tmp_path):
    out, _ = swept
    run = tmp_path / "run"
    shutil.copytree(out / "0", run)
    doc = json.loads((run / "summary.json").read_text())
    fp = doc["config_sha256"]
    assert incomplete_reason(run, fp) == ""
    assert "another config" in incomplete_reason(run, "0" * 64)
    (run / "iterations.parquet").write_bytes(b"PAR1")
    assert "iterations.parquet is not readable" in incomplete_reason(run, fp)
    assert incomplete_reason(run, fp, parquet=False) == ""
    (run / "summary.json").write_text(json.dumps({k: v for k, v in doc.items()
                                                  if k != "num_gpus"}))
    assert "lacks num_gpus" in incomplete_reason(run, fp, parquet=False)
    (run / "summary.json").write_text(doc["model"][:3])
    assert "not readable JSON" in incomplete_reason(run, fp, parquet=False)


def test_fingerprint_ignores_display_keys_only():
    from omegaconf import OmegaConf

    base = {"seed": 0, "output": {"progress": True, "resume": True, "write_parquet": True}}
    same = {"seed": 0, "output": {"progress": False, "resume": False, "write_parquet": True}}
    other = {"seed": 1, "output": base["output"]}
    fp = config_fingerprint(OmegaConf.create(base))
    assert fp == config_fingerprint(OmegaConf.create(same))
    assert fp != config_fingerprint(OmegaConf.create(other))


def test_a_sweep_killed_after_its_first_job_resumes_running_each_job_once(tmp_path):
    """A real kill: SIGKILL as soon as job 0's summary.json exists (bounded poll). However far
    the sweep got, the re-run runs exactly the jobs that had not completed."""
    import signal
    import time

    out = tmp_path / "mr"
    grid = ["workload.num_requests=300", "output.progress=false", "seed=0,1,2,3"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COSIM_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "cosim.cli", "-m", *grid,
                             f"hydra.sweep.dir={out}"], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(6000):  # up to ~5 minutes on a loaded machine
            if (out / "0" / "summary.json").exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert (out / "0" / "summary.json").is_file()
    done_before = _stamps(out)
    statuses = {j.run_dir: j.status for j in sweep_jobs(out)}
    assert sorted(statuses) == ["0", "1", "2", "3"]  # the report lists every job, started or not
    assert all(statuses[k] == "done" for k in done_before)
    assert all(statuses[k] in ("failed", "missing") for k in statuses if k not in done_before)

    p = subprocess.run([sys.executable, "-m", "cosim.cli", "-m", *grid,
                        f"hydra.sweep.dir={out}"], env=env, cwd=ROOT, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    after = _stamps(out)
    assert sorted(after) == ["0", "1", "2", "3"]
    assert all(after[k] == v for k, v in done_before.items())  # not run again
    assert _skipped(p) == len(done_before)
    assert [j.status for j in sweep_jobs(out)] == ["done"] * 4
