"""A Hydra callback that lets no launcher worker outlive an interrupted sweep.

`hydra/launcher=parallel` is hydra-joblib-launcher, whose loky workers are processes of the
sweep's own: when the sweep is stopped (SIGTERM, SIGINT, SIGHUP) loky leaves them running
until its idle timeout (300 s), each still holding its run's memory. This callback
(hydra_configs/config.yaml, `hydra.callbacks.stop_workers`) closes that from both sides:

- in the sweep's process (`on_multirun_start`): a handler for those signals terminates
  the process's children that multiprocessing knows (loky's workers are), says so in one
  line on stderr (with how to resume: cosim.apps.run) and ends the process by the same
  signal (its default action: the usual exit status, 130 for Ctrl-C, and no traceback);
- in each worker (`on_job_start`, which Hydra runs in the worker): Linux's
  PR_SET_PDEATHSIG makes the worker receive SIGTERM when the sweep's process dies, even
  by SIGKILL, which no handler sees.

With the basic launcher the jobs run in the sweep's process and both sides do nothing
harmful (there are no children; the job is not a worker). A local ns-3 server started by a
job dies with that job (cosim.network.ns3.client).
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

SWEEP_PID_ENV = "COSIM_SWEEP_PID"  # the sweep's process id, inherited by its workers
SIGNALS = tuple(s for s in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None))
                if s is not None)
_PR_SET_PDEATHSIG = 1


def stop_children(grace_s: float = 3.0) -> list[int]:
    """Terminate (then kill, after `grace_s`) this process's multiprocessing children;
    returns their pids."""
    children = multiprocessing.active_children()
    for p in children:
        p.terminate()
    for p in children:
        p.join(grace_s)
        if p.is_alive():
            p.kill()
            p.join(grace_s)
    return [p.pid for p in children if p.pid is not None]


def die_with_parent(parent_pid: int, sig: int = signal.SIGTERM) -> bool:
    """Ask Linux to send `sig` to this process when its parent dies; True when armed. If
    the parent is already gone (it died before the call), exit at once."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except OSError:
        return False
    if os.getppid() != parent_pid:  # reparented already: the sweep is gone
        os._exit(128 + int(sig))
    return True


class StopWorkersOnExit(Callback):
    """See the module docstring."""

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}
        self._sweep_dir = ""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ[SWEEP_PID_ENV] = str(os.getpid())
        try:
            self._sweep_dir = str(config.hydra.sweep.dir)
        except Exception:  # a config without hydra.sweep.dir: say less
            self._sweep_dir = ""
        for sig in SIGNALS:
            try:
                self._previous[sig] = signal.signal(sig, self._on_signal)
            except (ValueError, OSError):  # not the main thread: leave signals alone
                pass

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        os.environ.pop(SWEEP_PID_ENV, None)

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_pid = os.environ.get(SWEEP_PID_ENV, "")
        if sweep_pid.isdigit() and int(sweep_pid) != os.getpid() \
                and os.getppid() == int(sweep_pid):
            die_with_parent(int(sweep_pid))

    def _on_signal(self, signum: int, frame: Any) -> None:
        stopped = stop_children()
        self.on_multirun_end(None)  # type: ignore[arg-type]
        where = f" hydra.sweep.dir={self._sweep_dir}" if self._sweep_dir else " into its folder"
        print(f"cosim: sweep stopped by {signal.Signals(signum).name}; {len(stopped)} worker "
              f"process(es) ended; run the same command{where} to run only the jobs not "
              "done", file=sys.stderr, flush=True)
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)  # the usual end, with the usual exit status


__all__ = ["SWEEP_PID_ENV", "StopWorkersOnExit", "die_with_parent", "stop_children"]
