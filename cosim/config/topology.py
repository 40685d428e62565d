"""Config group `topology`: a fabric description (topologies/*.yaml). Owned by cosim.network.

A topology is N servers ("nodes"), each an NVLink domain of G GPUs behind one NVSwitch;
every GPU has `nic.per_gpu` NICs, rail-optimised (NIC r of every server sits on rail r's
leaf), and leaves connect to every spine. Units are in the key names: `gb_s` is gigabytes per
second (1e9 B/s), `gbps` gigabits per second (1e9 b/s), `latency_ns` nanoseconds. Rates are
per direction. Efficiencies are the achievable fraction of line rate (protocol overhead).

A mixed-kind fabric lists `server_groups`: consecutive runs of servers, each group with its
GPU kind (`gpu`, a hardware config name) and its own NVLink and NIC figures, joined by the one
leaf/spine fabric (docs/heterogeneous_roles.md). Every group keeps the topology's
gpus_per_node and nic.per_gpu: GPU g sits on server g // gpus_per_node and NIC rail r on every
server, the layout routing, placement and the traffic generators rely on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from omegaconf import MISSING

from cosim.errors import require

CROSS_RAIL = ("spine", "pxn")


def _check_rate(value: float, field_name: str) -> None:
    require(isinstance(value, (int, float)) and math.isfinite(value) and value > 0,
            field_name, f"must be a positive finite number, got {value!r}")


def _check_latency(value: float, field_name: str) -> None:
    require(isinstance(value, (int, float)) and math.isfinite(value) and value >= 0,
            field_name, f"must be >= 0 (nanoseconds), got {value!r}")


def _check_efficiency(value: float, field_name: str) -> None:
    require(isinstance(value, (int, float)) and 0 < value <= 1, field_name,
            f"must be in (0, 1] (fraction of line rate), got {value!r}")


@dataclass
class NVLinkConfig:
    """One server's NVLink domain: each GPU to the NVSwitch and back."""

    gb_s: float = MISSING  # per GPU per direction, GB/s
    latency_ns: float = 250.0  # one hop (GPU->NVSwitch or NVSwitch->GPU), switch included
    efficiency: float = 0.8  # NCCL busBw ~365-370 of 450 GB/s (nccl-tests #212, #290)

    def validate(self, prefix: str) -> None:
        _check_rate(self.gb_s, f"{prefix}.gb_s")
        _check_latency(self.latency_ns, f"{prefix}.latency_ns")
        _check_efficiency(self.efficiency, f"{prefix}.efficiency")


@dataclass
class NicConfig:
    """Scale-out NICs (InfiniBand / RoCE), one hop GPU->leaf and leaf->GPU."""

    gbps: float = MISSING  # per NIC per direction, Gb/s
    per_gpu: int = 1
    latency_ns: float = 600.0  # NIC + PCIe + cable + leaf switch, one direction
    efficiency: float = 0.94  # ~47 of 50 GB/s reached by NCCL on CX-7 (nccl-tests #267, #290)

    def validate(self, prefix: str) -> None:
        _check_rate(self.gbps, f"{prefix}.gbps")
        require(isinstance(self.per_gpu, int) and self.per_gpu >= 1, f"{prefix}.per_gpu",
                f"must be an integer >= 1, got {self.per_gpu!r}")
        _check_latency(self.latency_ns, f"{prefix}.latency_ns")
        _check_efficiency(self.efficiency, f"{prefix}.efficiency")


@dataclass
class LeafSpineConfig:
    """Two-tier rail-optimised fabric. Leaf-to-spine capacity follows the oversubscription."""

    servers_per_leaf: int = 32  # host ports of one rail leaf (QM9700: 64 ports, half down)
    spines: int = 8  # ECMP fan-out of each leaf; uplink capacity is split evenly over spines
    oversubscription: float = 1.0  # leaf downlink capacity / uplink capacity
    latency_ns: float = 300.0  # one leaf<->spine hop: cable + switch
    efficiency: float = 0.94  # same IB protocol overhead as the NICs
    # Traffic between different rails: "spine" goes NIC -> leaf -> spine -> other leaf;
    # "pxn" first crosses NVLink to the local GPU on the destination's rail (NCCL PXN).
    cross_rail: str = "spine"

    def validate(self, prefix: str) -> None:
        require(isinstance(self.servers_per_leaf, int) and self.servers_per_leaf >= 1,
                f"{prefix}.servers_per_leaf", f"must be an integer >= 1, got {self.servers_per_leaf!r}")
        require(isinstance(self.spines, int) and self.spines >= 1, f"{prefix}.spines",
                f"must be an integer >= 1, got {self.spines!r}")
        require(isinstance(self.oversubscription, (int, float)) and self.oversubscription >= 1,
                f"{prefix}.oversubscription", f"must be >= 1 (1 = non-blocking), got {self.oversubscription!r}")
        _check_latency(self.latency_ns, f"{prefix}.latency_ns")
        _check_efficiency(self.efficiency, f"{prefix}.efficiency")
        require(self.cross_rail in CROSS_RAIL, f"{prefix}.cross_rail",
                f"unknown {self.cross_rail!r}; use one of {', '.join(CROSS_RAIL)}")


@dataclass
class ServerGroupConfig:
    """A run of consecutive servers of one kind inside a mixed-kind topology."""

    gpu: str = MISSING  # GPU kind of these servers: a hardware config name (h200, b200, ...)
    count: int | None = None  # servers in the group; None: the servers no other group takes
    nvlink: NVLinkConfig | None = None  # None: the topology's nvlink
    nic: NicConfig | None = None  # None: the topology's nic

    def validate(self, prefix: str) -> None:
        require(isinstance(self.gpu, str) and self.gpu != "", f"{prefix}.gpu",
                "must name the servers' GPU kind (a hardware config, e.g. h200)")
        require(self.count is None or (isinstance(self.count, int) and self.count >= 1),
                f"{prefix}.count", f"must be an integer >= 1 or null (the rest), got {self.count!r}")
        if self.nvlink is not None:
            self.nvlink.validate(f"{prefix}.nvlink")
        if self.nic is not None:
            self.nic.validate(f"{prefix}.nic")


@dataclass
class TopologyConfig:
    name: str = MISSING
    description: str = ""
    num_nodes: int = 1  # servers (NVLink domains)
    num_gpus: int | None = None  # alternative size: total GPUs, a multiple of gpus_per_node
    gpus_per_node: int = 8  # GPUs per NVLink domain
    nvlink: NVLinkConfig = field(default_factory=NVLinkConfig)
    nic: NicConfig = field(default_factory=NicConfig)
    fabric: LeafSpineConfig = field(default_factory=LeafSpineConfig)
    sources: list[str] = field(default_factory=list)  # where the figures come from
    # Mixed-kind fabric: server groups in GPU order (empty: every server alike, of no kind)
    server_groups: list[ServerGroupConfig] = field(default_factory=list)

    @property
    def total_gpus(self) -> int:
        """GPUs in the fabric: num_gpus when given, else num_nodes * gpus_per_node."""
        return self.num_gpus if self.num_gpus is not None else self.num_nodes * self.gpus_per_node

    @property
    def total_nodes(self) -> int:
        return self.total_gpus // self.gpus_per_node

    @property
    def mixed(self) -> bool:
        """True when the servers are listed in server_groups (each of a named GPU kind)."""
        return bool(self.server_groups)

    def group_counts(self) -> list[int]:
        """Servers of each server group (a group of count None takes the rest)."""
        fixed = sum(g.count for g in self.server_groups if g.count is not None)
        return [g.count if g.count is not None else self.total_nodes - fixed
                for g in self.server_groups]

    def server_group(self) -> list[int]:
        """Index of the server group of every server ([] when not mixed)."""
        out: list[int] = []
        for i, c in enumerate(self.group_counts()):
            out.extend([i] * c)
        return out

    def server_figures(self) -> list[tuple[str, NVLinkConfig, NicConfig]]:
        """(GPU kind or "", NVLink figures, NIC figures) of every server, in order."""
        if not self.mixed:
            return [("", self.nvlink, self.nic)] * self.total_nodes
        groups = [(g.gpu, g.nvlink or self.nvlink, g.nic or self.nic) for g in self.server_groups]
        return [groups[i] for i in self.server_group()]

    def validate(self, prefix: str = "topology") -> None:
        require(isinstance(self.gpus_per_node, int) and self.gpus_per_node >= 1,
                f"{prefix}.gpus_per_node", f"must be an integer >= 1, got {self.gpus_per_node!r}")
        require(isinstance(self.num_nodes, int) and self.num_nodes >= 1, f"{prefix}.num_nodes",
                f"must be an integer >= 1, got {self.num_nodes!r}")
        if self.num_gpus is not None:
            require(isinstance(self.num_gpus, int) and self.num_gpus >= 1, f"{prefix}.num_gpus",
                    f"must be an integer >= 1, got {self.num_gpus!r}")
            require(self.num_gpus % self.gpus_per_node == 0, f"{prefix}.num_gpus",
                    f"{self.num_gpus} is not a multiple of gpus_per_node={self.gpus_per_node}")
        self.nvlink.validate(f"{prefix}.nvlink")
        self.nic.validate(f"{prefix}.nic")
        self.fabric.validate(f"{prefix}.fabric")
        if self.server_groups:
            self._validate_groups(f"{prefix}.server_groups")

    def _validate_groups(self, prefix: str) -> None:
        for i, g in enumerate(self.server_groups):
            g.validate(f"{prefix}[{i}]")
            k = (g.nic or self.nic).per_gpu
            require(k == self.nic.per_gpu, f"{prefix}[{i}].nic.per_gpu",
                    f"{k} differs from topology.nic.per_gpu={self.nic.per_gpu}: every server "
                    f"has the same NIC rails")
        rest = [i for i, g in enumerate(self.server_groups) if g.count is None]
        require(len(rest) <= 1, f"{prefix}[{rest[-1] if rest else 0}].count",
                "only one server group may leave count null (the rest)")
        fixed = sum(g.count for g in self.server_groups if g.count is not None)
        n = self.total_nodes
        if rest:
            require(fixed < n, f"{prefix}[{rest[0]}].count",
                    f"the other groups take {fixed} servers, the topology has {n}: none left")
        else:
            require(fixed == n, prefix, f"the groups' counts sum to {fixed} servers, the "
                    f"topology has {n} (topology.num_nodes / num_gpus); leave one count null "
                    f"for the rest")
