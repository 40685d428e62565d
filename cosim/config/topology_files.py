"""Topology files: topologies/*.yaml (and the user's folders) read into validated
TopologyConfig values and registered as Hydra group `topology`. Compiling one into a fabric
graph is cosim.network.topology.build_fabric."""

from __future__ import annotations

from pathlib import Path

import yaml
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cosim.config.topology import TopologyConfig
from cosim.errors import ConfigError
from cosim.paths import topology_dirs


class TopologyFileError(ConfigError):
    """A topology YAML file is malformed; the message names the file, the key and the reason."""

    def __init__(self, path: Path | str, key: str, reason: str):
        self.path = str(path)
        super().__init__(key, reason)
        self.args = (f"{path}: {key}: {reason}",)

    def __str__(self) -> str:
        return self.args[0]


def load_topology(path: Path | str) -> TopologyConfig:
    """Read and validate one topology file; raise TopologyFileError naming file, key, reason."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        line = getattr(getattr(e, "problem_mark", None), "line", None)
        where = f"line {line + 1}" if line is not None else "(yaml)"
        raise TopologyFileError(path, where, f"not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise TopologyFileError(path, "(top level)", "expected a mapping of keys to values")
    raw.setdefault("name", path.stem)
    if raw["name"] != path.stem:
        raise TopologyFileError(path, "name", f"{raw['name']!r} differs from the file name "
                                f"{path.stem!r}; the Hydra option is the file name")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(TopologyConfig), raw)
        cfg: TopologyConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "(unknown)"
        reason = str(e).splitlines()[0]
        if "Key '" in reason and "not in" in reason:
            reason = f"unknown key (allowed here: {_allowed_keys(key)})"
        elif "could not be converted" in reason or "Value '" in reason:
            reason += "; write a plain number, the unit is in the key name (gbps, gb_s, latency_ns)"
        raise TopologyFileError(path, key, reason) from None
    try:
        cfg.validate(prefix="topology")
    except ConfigError as e:
        raise TopologyFileError(path, e.field.removeprefix("topology."), e.reason) from None
    return cfg


def _allowed_keys(full_key: str) -> str:
    """Field names valid at the parent of `full_key` in the TopologyConfig schema."""
    node = OmegaConf.structured(TopologyConfig)
    for part in full_key.split(".")[:-1]:
        node = node[part]
    return ", ".join(node.keys())


def topology_files() -> dict[str, Path]:
    """Topology name -> file, earlier folders of cosim.paths.topology_dirs() winning."""
    found: dict[str, Path] = {}
    for folder in topology_dirs():
        if not folder.is_dir():
            continue
        for f in sorted(folder.glob("*.yaml")):
            found.setdefault(f.stem, f)
    return found


def register_topologies(cs: ConfigStore) -> None:
    """Store every topology file as option `<stem>` of Hydra group `topology` (validated)."""
    for name, path in topology_files().items():
        cs.store(group="topology", name=name, node=load_topology(path))


def get_topology(name: str, **overrides) -> TopologyConfig:
    """The validated topology `name` with fields overridden (e.g. num_nodes=4)."""
    files = topology_files()
    if name not in files:
        raise ConfigError("topology", f"unknown topology {name!r}; known: {', '.join(sorted(files))}")
    cfg = load_topology(files[name])
    merged = OmegaConf.merge(OmegaConf.structured(cfg), overrides)
    cfg = OmegaConf.to_object(merged)  # type: ignore[assignment]
    cfg.validate()
    return cfg
