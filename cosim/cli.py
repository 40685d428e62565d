"""Console entry points. Each is a Hydra app over hydra_configs/; the work lives elsewhere."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable

from omegaconf import DictConfig


def _run_hydra(task: Callable[[DictConfig], object], config_name: str) -> None:
    import hydra

    from cosim.config import register_configs
    from cosim.paths import hydra_config_dir

    register_configs()

    def guarded(cfg: DictConfig) -> object:
        # A bad value is the user's to fix: one line naming the field, no traceback.
        from cosim.config import ConfigError
        from cosim.config.topology_files import check_selected_topology
        from cosim.network.flows import InvalidResult
        from cosim.network.ns3.client import Ns3Error

        try:
            check_selected_topology(cfg)
            return task(cfg)
        except ConfigError as exc:
            print(f"cosim: configuration error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except (Ns3Error, InvalidResult) as exc:  # the fabric backend is unavailable: say so in one line
            print(f"cosim: network backend error: {exc}", file=sys.stderr)
            raise SystemExit(3) from None

    guarded.__name__ = getattr(task, "__name__", "task")
    guarded.__module__ = getattr(task, "__module__", __name__)
    app = hydra.main(config_path=hydra_config_dir(), config_name=config_name,
                     version_base="1.3")(guarded)
    if os.environ.get(_FULL_ERROR) == "1":  # the user asked for Hydra's full traces
        app()
        return
    # Hydra prints a bad override (an unknown key without `+`, a wrong type, an option that
    # does not exist) in several lines and exits 1. Let it raise instead (HYDRA_FULL_ERROR)
    # and say it in one line with the input-error code; other errors stay tracebacks.
    from hydra.errors import CompactHydraException

    os.environ[_FULL_ERROR] = "1"
    try:
        app()
    except CompactHydraException as exc:
        print(f"cosim: configuration error: {_one_line(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        os.environ.pop(_FULL_ERROR, None)


_FULL_ERROR = "HYDRA_FULL_ERROR"


def _one_line(exc: BaseException) -> str:
    """A Hydra composition error and its OmegaConf cause in one line, the field first."""
    text = " ".join(f"{exc} {exc.__cause__ or ''}".split())
    m = re.search(r"full_key: ([\w.\[\]]+)", text)
    for noise in (r"full_key: \S+", r"(?:reference|object)_type=\S+",
                  r"Config search path:.*$", r"Set the environment variable HYDRA_FULL_ERROR.*$"):
        text = re.sub(noise, "", text)
    text = " ".join(text.split())
    return f"{m.group(1)}: {text}" if m and not text.startswith(m.group(1)) else text


def main() -> None:
    """`cosim`: run one serving simulation (or a multirun sweep with -m)."""
    from cosim.apps.run import run_task

    _run_hydra(run_task, "config")


def info_main() -> None:
    """`cosim-info model=<m> [hardware=<h>]`: model and GPU facts as JSON."""
    from cosim.apps.info import info_task

    _run_hydra(info_task, "info")


def estimate_main() -> None:
    """`cosim-estimate ...`: per-operator latency of one forward pass as JSON."""
    from cosim.apps.estimate import estimate_task

    _run_hydra(estimate_task, "estimate")


def search_main() -> None:
    """`cosim-search ...`: the best layout of each deployment kind for a GPU budget."""
    from cosim.apps.search import search_task

    _run_hydra(search_task, "search")


def microbench_main() -> None:
    """`cosim-microbench ...`: time one communication pattern on a backend, JSON out."""
    from cosim.apps.microbench import microbench_task

    _run_hydra(microbench_task, "microbench")


def replay_main() -> None:
    """`cosim-replay flows=<flows.parquet> topology=<t> network=<b>`: re-time recorded flows."""
    from cosim.apps.replay import replay_task

    _run_hydra(replay_task, "replay")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
