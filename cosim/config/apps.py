"""Schemas of the inspection apps (cosim-info, cosim-estimate, cosim-microbench, cosim-replay)."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

_APPS: list[tuple[str, type]] = []


def app_schema(name: str):
    """Class decorator: register a dataclass as the schema `name` of an app's root config."""

    def deco(cls: type) -> type:
        _APPS.append((name, cls))
        return cls

    return deco


def register(cs: ConfigStore) -> None:
    # Import the modules that declare app schemas so their decorators run.
    import importlib

    for mod in ("cosim.apps.info", "cosim.apps.estimate", "cosim.apps.microbench",
                "cosim.config.search", "cosim.apps.replay"):
        importlib.import_module(mod)
    for name, cls in _APPS:
        cs.store(name=name, node=cls)
