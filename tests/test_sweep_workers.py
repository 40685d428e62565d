"""Stopping a parallel (joblib/loky) sweep leaves no worker behind (cosim.apps.sweep_workers).

A real 2-job sweep with `hydra/launcher=parallel` runs in its own session; once a worker has
started its job, the sweep's process is sent SIGTERM (its handler ends the workers) or
SIGKILL (no handler runs: the workers' PR_SET_PDEATHSIG ends them). Every process that
descended from the sweep must then be gone (bounded poll, no timing asserted).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def _descendants(root: int) -> set[int]:
    parent = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit() and (st := _stat(int(d.name))) is not None:
            parent[int(d.name)] = st[1]
    out, frontier = set(), {root}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - out
        out |= frontier
    return out


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")  # a zombie has ended


def _poll(cond, limit_s: float) -> bool:
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.2)
    return cond()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_stopped_parallel_sweep_leaves_no_process(tmp_path, sig):
    out = tmp_path / "mr"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COSIM_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "cosim.cli", "-m",
                             "hydra/launcher=parallel", "hydra.launcher.n_jobs=2",
                             "workload.num_requests=2000", "output.progress=false", "seed=0,1",
                             f"hydra.sweep.dir={out}"],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        # a worker exists and has started a job (Hydra wrote the job's .hydra/ folder)
        started = _poll(lambda: any((out / j / ".hydra" / "overrides.yaml").is_file()
                                    for j in ("0", "1")) and _descendants(proc.pid), 240)
        assert started and proc.poll() is None, proc.stderr.read().decode()[-3000:] \
            if proc.poll() is not None else "the sweep did not start a job"
        _poll(lambda: False, 1.0)  # let the worker reach the job's first callback
        family = _descendants(proc.pid)
        assert family, "no worker process"
        os.kill(proc.pid, sig)
        proc.wait(timeout=120)
        assert _poll(lambda: not any(_alive(p) for p in family), 120), \
            f"left running: {sorted(p for p in family if _alive(p))}"
        if sig == signal.SIGTERM:
            err = proc.stderr.read().decode()
            assert "cosim: sweep stopped by SIGTERM" in err and f"hydra.sweep.dir={out}" in err
            assert proc.returncode == -signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in _descendants(proc.pid):
            os.kill(p, signal.SIGKILL)
