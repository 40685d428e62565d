"""Topology files: topologies/*.yaml (and the user's folders) read into validated
TopologyConfig values and registered as Hydra group `topology`. Compiling one into a fabric
graph is cosim.network.topology.build_fabric."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml
from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from cosim.config.topology import ServerGroupConfig, TopologyConfig
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
        data = path.read_bytes()
    except OSError as e:
        raise TopologyFileError(path, "(file)", f"cannot read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise TopologyFileError(path, f"line {line}", f"not UTF-8 (byte 0x{data[e.start]:02x})"
                                ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "(yaml)"
        what = " ".join(str(getattr(e, "problem", None) or e).split())
        if mark is not None:
            what += f" (column {mark.column + 1})"
        raise TopologyFileError(path, where, f"not valid YAML: {what}") from None
    if not isinstance(raw, dict):
        raise TopologyFileError(path, "(top level)", "expected a mapping of keys to values")
    raw.setdefault("name", path.stem)
    if raw["name"] != path.stem:
        raise TopologyFileError(path, "name", f"{raw['name']!r} differs from the file name "
                                f"{path.stem!r}; the Hydra option is the file name")
    _check_sections(path, raw, TopologyConfig, "")
    _fill_groups(path, raw)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(TopologyConfig), raw)
        cfg: TopologyConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None) or "(unknown)"
        reason = " ".join(str(e).split("\n    full_key")[0].split())
        if isinstance(e, MissingMandatoryValue):
            reason = "required, and not given"
        elif "Key '" in reason and "not in" in reason:
            reason = f"unknown key (allowed here: {_allowed_keys(key)})"
        elif "could not be converted" in reason or "Value '" in reason:
            reason += "; write a plain number, the unit is in the key name (gbps, gb_s, latency_ns)"
        raise TopologyFileError(path, key, reason) from None
    try:
        cfg.validate(prefix="topology")
    except ConfigError as e:
        raise TopologyFileError(path, e.field.removeprefix("topology."), e.reason) from None
    return cfg


def _check_sections(path: Path, raw: dict, schema: type, prefix: str) -> None:
    """A key whose schema is a section (nvlink, nic, fabric) must hold a mapping: OmegaConf's
    own merge error for `nvlink: 5` names no key."""
    for f in dataclasses.fields(schema):
        if f.name not in raw or not isinstance(f.default_factory, type) \
                or not dataclasses.is_dataclass(f.default_factory):
            continue
        value, key = raw[f.name], f"{prefix}{f.name}"
        if not isinstance(value, dict):
            raise TopologyFileError(path, key, f"expected a mapping of keys "
                                    f"({', '.join(x.name for x in dataclasses.fields(f.default_factory))}), "
                                    f"got {type(value).__name__} {value!r}")
        _check_sections(path, value, f.default_factory, key + ".")


def _fill_groups(path: Path, raw: dict) -> None:
    """server_groups: each entry a mapping; a group's nvlink / nic keys override the
    topology's (the keys it leaves out are the topology's, not the schema defaults)."""
    groups = raw.get("server_groups")
    if groups is None:
        return
    if not isinstance(groups, list):
        raise TopologyFileError(path, "server_groups", "expected a list of server groups "
                                "(gpu, count, nvlink, nic)")
    for i, g in enumerate(groups):
        key = f"server_groups[{i}]"
        if not isinstance(g, dict):
            raise TopologyFileError(path, key, f"expected a mapping (gpu, count, nvlink, nic), "
                                    f"got {type(g).__name__} {g!r}")
        for sec in ("nvlink", "nic"):
            if sec not in g:
                continue
            if not isinstance(g[sec], dict):
                raise TopologyFileError(path, f"{key}.{sec}", f"expected a mapping, got "
                                        f"{type(g[sec]).__name__} {g[sec]!r}")
            base = raw.get(sec)
            g[sec] = {**(base if isinstance(base, dict) else {}), **g[sec]}


def _allowed_keys(full_key: str) -> str:
    """Field names valid at the parent of `full_key` in the TopologyConfig schema."""
    node = OmegaConf.structured(TopologyConfig)
    try:
        for part in full_key.split(".")[:-1]:
            if "[" in part:  # server_groups[0]
                node = OmegaConf.structured(ServerGroupConfig)
                continue
            node = node[part]
    except (KeyError, OmegaConfBaseException):
        return "(see cosim/config/topology.py)"
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


# The description of the stand-in stored for a topology file that does not load: the run
# that selects it stops with the file's error (check_selected_topology); others never see it.
_UNREADABLE = "unreadable topology file: "


def register_topologies(cs: ConfigStore) -> None:
    """Store every topology file as option `<stem>` of Hydra group `topology` (validated).

    A file that does not load is stored as a stand-in carrying its error, so that one broken
    file on COSIM_TOPOLOGY_PATH stops only the runs that select it (with that error, one
    line, exit code 2: check_selected_topology), not every command.
    """
    for name, path in topology_files().items():
        try:
            node = load_topology(path)
        except TopologyFileError as e:
            node = TopologyConfig(name=name, description=_UNREADABLE + str(e))
        cs.store(group="topology", name=name, node=node)


def check_selected_topology(cfg: object) -> None:
    """Raise the file's error when `cfg` (a composed config) selected an unreadable
    topology file's stand-in (register_topologies)."""
    if not isinstance(cfg, DictConfig) or "topology" not in cfg:
        return
    desc = OmegaConf.select(cfg, "topology.description", default=None,
                            throw_on_missing=False, throw_on_resolution_failure=False)
    if isinstance(desc, str) and desc.startswith(_UNREADABLE):
        raise UnreadableTopologyFile(desc.removeprefix(_UNREADABLE))


class UnreadableTopologyFile(ConfigError):
    """The selected topology file did not load; the message is its TopologyFileError's."""

    def __init__(self, message: str):
        super().__init__("topology", message)
        self.args = (message,)

    def __str__(self) -> str:
        return self.args[0]


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
