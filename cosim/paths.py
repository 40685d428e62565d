"""Where cosim finds its data folders (Hydra configs, topologies, traces)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_DIR = PACKAGE_DIR.parent


def data_dir(name: str) -> Path:
    """The folder `name` (hydra_configs, topologies, traces) of this checkout."""
    path = PROJECT_DIR / name
    if not path.is_dir():
        raise FileNotFoundError(
            f"cosim data folder {name!r} not found at {path}; install cosim from a source "
            "checkout (pip install -e .) so that its hydra_configs/, topologies/ and traces/ "
            "folders are available"
        )
    return path


def hydra_config_dir() -> str:
    return str(data_dir("hydra_configs"))


def topology_dirs() -> list[Path]:
    """Folders searched for topology YAML files: COSIM_TOPOLOGY_PATH (os.pathsep list) first."""
    extra = [Path(p) for p in os.environ.get("COSIM_TOPOLOGY_PATH", "").split(os.pathsep) if p]
    return extra + [data_dir("topologies")]


def cache_dir() -> Path:
    """Default on-disk cache folder (network results); COSIM_CACHE_DIR overrides."""
    return Path(os.environ.get("COSIM_CACHE_DIR", Path.home() / ".cache" / "cosim"))
