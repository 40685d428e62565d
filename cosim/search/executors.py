"""Where a search's evaluations run: joblib on this machine, submitit (Slurm), or Ray.

Each stage of the search is a list of independent calls (module-level functions with
picklable arguments, each an ordinary cosim run that writes its record into the run
folder's evals/). They are handed to an existing engine, never to a runner of our own:

- `joblib` (default): `search.jobs` worker processes on this machine (loky);
- `submitit`: one Slurm array task per call through submitit's AutoExecutor
  (`search.cluster.cluster=slurm`; `local` runs each call in a subprocess of this machine
  through the same executor, which is how the tests exercise it). The run folder must be on
  a file system the nodes share;
- `ray`: joblib's Ray backend (`ray.util.joblib.register_ray`) on the cluster at
  `search.cluster.ray_address` (`auto`: the running cluster; null: a local one).

submitit and Ray are optional dependencies, imported only when selected (`pip install
'cosim[cluster]'` for submitit, `pip install ray` for Ray).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from joblib import Parallel, delayed, parallel_config

from cosim.config.search import SearchConfig
from cosim.errors import ConfigError

Task = tuple[Callable[..., Any], tuple]


class Progress(Protocol):
    """What the stages report to (rich.progress.Progress has these)."""

    def add_task(self, description: str, total: float | None = ...) -> Any: ...

    def advance(self, task_id: Any, advance: float = ...) -> None: ...


def _indexed(i: int, fn: Callable[..., Any], args: tuple) -> tuple[int, Any]:
    return i, fn(*args)


INSTALL = {"submitit": "pip install 'cosim[cluster]'", "ray": "pip install ray"}


def _optional(module: str) -> Any:
    top = module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ConfigError("search.executor", f"{top} needs the {top} package "
                          f"({INSTALL[top]}): {e}") from None


def check_executor(s: SearchConfig) -> None:
    """A one-line ConfigError now, not after the candidates, when the executor's package is
    missing."""
    if s.executor in INSTALL:
        _optional(s.executor)


def _joblib(s: SearchConfig, tasks: list[Task], backend: str | None) -> Iterable[tuple[int, Any]]:
    calls = (delayed(_indexed)(i, fn, args) for i, (fn, args) in enumerate(tasks))
    if backend is None:
        yield from Parallel(n_jobs=s.jobs, return_as="generator_unordered")(calls)
        return
    with parallel_config(backend=backend, n_jobs=s.jobs):
        yield from Parallel(return_as="generator_unordered")(calls)


def _submitit(s: SearchConfig, tasks: list[Task], out_dir: Path) -> Iterable[tuple[int, Any]]:
    submitit = _optional("submitit")
    c = s.cluster
    folder = Path(c.folder) if c.folder else out_dir / "submitit"
    ex = submitit.AutoExecutor(folder=str(folder / "%j"), cluster=c.cluster)
    params: dict[str, Any] = {"timeout_min": c.timeout_min, "cpus_per_task": c.cpus_per_task,
                              "mem_gb": c.mem_gb, "name": "cosim-search",
                              "slurm_array_parallelism": c.array_parallelism}
    if c.partition:
        params["slurm_partition"] = c.partition
    ex.update_parameters(**params)
    jobs = ex.map_array(_indexed, list(range(len(tasks))), [fn for fn, _ in tasks],
                        [args for _, args in tasks])
    poll = 10.0 if c.cluster == "slurm" else 0.5  # seconds between looks at the jobs' state
    for job in submitit.helpers.as_completed(jobs, poll_frequency=poll):
        yield job.result()


def run_tasks(s: SearchConfig, tasks: list[Task], label: str, progress: Progress | None,
              out_dir: Path) -> list[Any]:
    """The results of `tasks` (in order) from the configured executor, advancing `progress`."""
    if not tasks:
        return []
    task_id = progress.add_task(label, total=len(tasks)) if progress is not None else None
    if s.executor == "submitit":
        gen = _submitit(s, tasks, out_dir)
    elif s.executor == "ray":
        ray = _optional("ray")
        joblib_ray = _optional("ray.util.joblib")
        ray.init(address=s.cluster.ray_address, ignore_reinit_error=True)
        joblib_ray.register_ray()
        gen = _joblib(s, tasks, "ray")
    else:
        gen = _joblib(s, tasks, None)
    out: list[Any] = [None] * len(tasks)
    for i, res in gen:
        out[i] = res
        if progress is not None:
            progress.advance(task_id)
    return out
