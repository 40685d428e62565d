"""Console entry points. Each is a Hydra app over hydra_configs/; the work lives elsewhere."""

from __future__ import annotations

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
        from cosim.network.flows import InvalidResult
        from cosim.network.ns3.client import Ns3Error

        try:
            return task(cfg)
        except ConfigError as exc:
            print(f"cosim: configuration error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except (Ns3Error, InvalidResult) as exc:  # the fabric backend is unavailable: say so in one line
            print(f"cosim: network backend error: {exc}", file=sys.stderr)
            raise SystemExit(3) from None

    guarded.__name__ = getattr(task, "__name__", "task")
    guarded.__module__ = getattr(task, "__module__", __name__)
    hydra.main(config_path=hydra_config_dir(), config_name=config_name, version_base="1.3")(guarded)()


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
