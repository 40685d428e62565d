"""Topology files (topologies/*.yaml): loading, validation, Hydra registration, and the
compilation of a TopologyConfig into a FabricGraph (nodes, directed links, routing).

A user adds a fabric by dropping `<name>.yaml` into topologies/ (or a folder named in
COSIM_TOPOLOGY_PATH) and selects it with `topology=<name>`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from hydra.core.config_store import ConfigStore
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cosim.config.topology import TopologyConfig
from cosim.errors import ConfigError
from cosim.network.fabric import (
    FABRIC,
    GPU,
    LEAF,
    NIC,
    NVLINK,
    NVSWITCH,
    SPINE,
    FabricGraph,
    RailRouter,
)


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
    from cosim.paths import topology_dirs

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


def build_fabric(topo: TopologyConfig) -> FabricGraph:
    """Compile a topology into a FabricGraph: nodes, directed links (integer bit/s), routing."""
    if not isinstance(topo, TopologyConfig):
        topo = OmegaConf.to_object(topo) if OmegaConf.is_config(topo) else topo
    topo.validate()
    g = topo.gpus_per_node
    n_gpu = topo.total_gpus
    n_srv = n_gpu // g
    k = topo.nic.per_gpu
    router = RailRouter(num_gpus=n_gpu, gpus_per_node=g, nics_per_gpu=k,
                        servers_per_leaf=topo.fabric.servers_per_leaf,
                        spines=topo.fabric.spines, cross_rail=topo.fabric.cross_rail)
    multi = n_srv > 1
    n_leaf = router.num_leaves
    n_spine = topo.fabric.spines if multi else 0

    nvsw0 = n_gpu
    leaf0 = nvsw0 + n_srv
    spine0 = leaf0 + n_leaf
    node_kind = np.concatenate([
        np.full(n_gpu, GPU), np.full(n_srv, NVSWITCH), np.full(n_leaf, LEAF),
        np.full(n_spine, SPINE)]).astype(np.int8)

    gpus = np.arange(n_gpu)
    nvsw = nvsw0 + gpus // g
    nv_bps = round(topo.nvlink.gb_s * 8e9)
    nic_bps = round(topo.nic.gbps * 1e9)
    srcs, dsts, bps, lat, cls, eff = [], [], [], [], [], []

    def add(s, d, rate, latency_ns, klass, efficiency):
        s = np.asarray(s)
        srcs.append(s)
        dsts.append(np.asarray(d))
        bps.append(np.full(s.shape, float(rate)))
        lat.append(np.full(s.shape, latency_ns * 1e-9))
        cls.append(np.full(s.shape, klass))
        eff.append(np.full(s.shape, efficiency))

    add(gpus, nvsw, nv_bps, topo.nvlink.latency_ns, NVLINK, topo.nvlink.efficiency)
    add(nvsw, gpus, nv_bps, topo.nvlink.latency_ns, NVLINK, topo.nvlink.efficiency)
    if multi:
        gk = np.repeat(gpus, k)  # GPU of NIC g*k + j
        rail = (gk % g) * k + np.tile(np.arange(k), n_gpu)
        leaf = leaf0 + (gk // g // topo.fabric.servers_per_leaf) * router.rails + rail
        add(gk, leaf, nic_bps, topo.nic.latency_ns, NIC, topo.nic.efficiency)
        add(leaf, gk, nic_bps, topo.nic.latency_ns, NIC, topo.nic.efficiency)
        # A rail leaf serves servers_per_leaf NICs; its uplinks carry that over the
        # oversubscription ratio, split evenly over the spines.
        up_bps = round(topo.fabric.servers_per_leaf * nic_bps
                       / (topo.fabric.oversubscription * n_spine))
        lf = np.repeat(np.arange(n_leaf), n_spine) + leaf0
        sp = np.tile(np.arange(n_spine), n_leaf) + spine0
        add(lf, sp, up_bps, topo.fabric.latency_ns, FABRIC, topo.fabric.efficiency)
        add(sp, lf, up_bps, topo.fabric.latency_ns, FABRIC, topo.fabric.efficiency)

    return FabricGraph(
        name=f"{topo.name}:{n_gpu}gpu",
        num_gpus=n_gpu,
        node_kind=node_kind,
        link_src=np.concatenate(srcs).astype(np.int32),
        link_dst=np.concatenate(dsts).astype(np.int32),
        link_bps=np.concatenate(bps).astype(np.float64),
        link_latency_s=np.concatenate(lat).astype(np.float64),
        link_class=np.concatenate(cls).astype(np.int8),
        link_efficiency=np.concatenate(eff).astype(np.float64),
        router=router,
        gpus_per_node=g,
        routing=router.describe(),
    )
