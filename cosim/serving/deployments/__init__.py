"""Deployments: how instances are arranged and how a request moves through them.

A deployment is a class registered under its `deployment.kind` name with
:func:`register_deployment`; the module `cosim/serving/deployments/<kind>.py` is imported on
first use, so adding `pd.py` with `@register_deployment("pd")` is all a new kind needs.
`kind` may also be a dotted path `package.module.ClassName` to a class outside cosim.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from cosim.errors import ConfigError

_REGISTRY: dict[str, type] = {}
_HERE = Path(__file__).resolve().parent


def register_deployment(name: str):
    """Class decorator: make a Deployment subclass available as `deployment.kind=<name>`."""

    def deco(cls: type) -> type:
        _REGISTRY[name] = cls
        cls.kind = name
        return cls

    return deco


def known_deployments() -> set[str]:
    """Registered kinds plus the modules of this package that define one."""
    mods = {p.stem for p in _HERE.glob("*.py") if not p.stem.startswith("_") and p.stem != "base"}
    return mods | set(_REGISTRY)


def get_deployment(kind: str) -> type:
    """The class of deployment `kind` (imports its module on first use)."""
    if kind in _REGISTRY:
        return _REGISTRY[kind]
    if "." in kind:  # a user's class: package.module.ClassName
        mod, _, cls = kind.rpartition(".")
        return getattr(importlib.import_module(mod), cls)
    if (_HERE / f"{kind}.py").is_file():
        importlib.import_module(f"cosim.serving.deployments.{kind}")
    if kind not in _REGISTRY:
        raise ConfigError("deployment.kind", f"unknown deployment {kind!r}; available: "
                                             f"{', '.join(sorted(known_deployments()))}")
    return _REGISTRY[kind]
