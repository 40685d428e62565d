"""Where the GPUs of the AFD roles sit (`deployment.placement`), and the bytes each traffic
class puts on NVLink and on the scale-out network.

`place_afd_units` turns `deployment.placement.{attention,ffn}` into the global GPU ids of each
unit's attention and FFN groups (docs/placement.md):

- `contiguous` (default): the assignment before placement existed, unit u at
  [base + u(M+N), +M) for attention and the next N for FFN;
- `packed`: the role's groups fill NVLink domains in order, first fit: a group goes to the
  first domain that still holds it whole, and only a group larger than any domain's free GPUs
  takes the lowest free GPUs across domains. With both roles packed the group is the whole
  AFD unit (M + N GPUs), so A2F/F2A stay inside one domain wherever the unit fits;
- `spread`: the role's GPUs dealt round-robin over the servers (GPU k to server k mod S, its
  lowest free GPU; full servers skipped), so a group spans as many servers as it can;
- a list of GPU ids: unit by unit (attention: count x M ids, FFN: count x N).

Order: contiguous and listed GPUs are fixed first, then packed / spread roles (attention
before FFN) take GPUs from what is left of the pool (the topology's GPUs from `base` on:
under pd_afd the prefill instances keep their contiguous block in front).

`TrafficBytes` accumulates, per traffic class (cosim.traffic.tags), the bytes of the flows a
run sent whose endpoints share an NVLink domain (GPU // gpus_per_node) and of those that
cross the scale-out network. (A flow that PXN relays over NVLink before its NIC counts once,
as scale-out: the count is by endpoints, the same for every comm model.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cosim.errors import ConfigError
from cosim.network.fabric import domain_bytes
from cosim.traffic.tags import FlowTag

# summary.json's names of the traffic classes (FlowTag -> name)
TRAFFIC_CLASS = {FlowTag.A2F: "a2f", FlowTag.F2A: "f2a", FlowTag.EP_DIRECT: "ep_dispatch_combine",
                 FlowTag.EP_RDMA: "ep_dispatch_combine", FlowTag.EP_FORWARD: "ep_dispatch_combine",
                 FlowTag.ALL_TO_ALL: "all_to_all", FlowTag.ALLREDUCE: "allreduce",
                 FlowTag.KV: "kv_transfer"}


@dataclass(frozen=True)
class UnitGPUs:
    """Global GPU ids of one AFD unit's attention group and FFN group."""

    attention: np.ndarray
    ffn: np.ndarray


def _first_fit(free: list[np.ndarray], size: int) -> np.ndarray:
    """`size` GPUs from the per-domain free lists: the first domain holding them whole, else
    the lowest free GPUs in order. Removes them from `free`."""
    for d, f in enumerate(free):
        if f.size >= size:
            take, free[d] = f[:size], f[size:]
            return take
    allf = np.concatenate(free) if free else np.zeros(0, dtype=np.int64)
    take = allf[:size]
    for d, f in enumerate(free):
        free[d] = f[~np.isin(f, take)]
    return take


def _spread(free: list[np.ndarray], size: int) -> np.ndarray:
    """`size` GPUs dealt round-robin over the domains (servers), skipping full ones."""
    out = []
    d = 0
    n = len(free)
    while len(out) < size:
        for _ in range(n):
            if free[d].size:
                break
            d = (d + 1) % n
        out.append(int(free[d][0]))
        free[d] = free[d][1:]
        d = (d + 1) % n
    return np.array(out, dtype=np.int64)


def place_afd_units(attention: object, ffn: object, count: int, M: int, N: int, base: int,
                    total_gpus: int, gpus_per_node: int,
                    prefix: str = "deployment.placement") -> list[UnitGPUs]:
    """The GPUs of `count` AFD units of M attention + N FFN GPUs (see the module docstring).

    `attention` / `ffn`: "contiguous" | "packed" | "spread" | a list of GPU ids; `base`: first
    GPU of the AFD pool (GPUs below it belong to other roles). Raises ConfigError naming
    `prefix.<role>` for a list of the wrong length, with a GPU outside the topology or taken
    twice, and `topology.num_nodes` when the pool is too small.
    """
    specs = {"attention": attention, "ffn": ffn}
    size = {"attention": M, "ffn": N}
    need = base + count * (M + N)
    if need > total_gpus:
        raise ConfigError("topology.num_nodes",
                          f"the AFD units need {count * (M + N)} GPUs from GPU {base} on, the "
                          f"topology has {total_gpus}")
    gpus: dict[str, np.ndarray] = {}
    taken: dict[int, str] = {}

    def claim(role: str, ids: np.ndarray) -> None:
        for g in ids.tolist():
            other = taken.get(g)
            if other is not None:
                raise ConfigError(f"{prefix}.{role}", f"GPU {g} is also placed for {other}")
            taken[g] = f"{prefix}.{role}"

    for g in range(base):
        taken[g] = "the prefill instances"
    for role, spec in specs.items():
        if isinstance(spec, str) and spec == "contiguous":
            off = 0 if role == "attention" else M
            ids = np.concatenate([base + u * (M + N) + off + np.arange(size[role])
                                  for u in range(count)]).astype(np.int64)
        elif isinstance(spec, str):
            continue
        else:
            ids = np.asarray(list(spec), dtype=np.int64)
            want = count * size[role]
            if ids.size != want:
                raise ConfigError(f"{prefix}.{role}",
                                  f"lists {ids.size} GPUs, the role has {want} ({count} unit(s) "
                                  f"x {size[role]})")
            out = ids[(ids < 0) | (ids >= total_gpus)]
            if out.size:
                raise ConfigError(f"{prefix}.{role}",
                                  f"GPU {int(out[0])} is outside the topology (GPUs 0..{total_gpus - 1})")
            u, c = np.unique(ids, return_counts=True)
            if (c > 1).any():
                raise ConfigError(f"{prefix}.{role}", f"GPU {int(u[c > 1][0])} appears twice")
        claim(role, ids)
        gpus[role] = ids

    g = max(int(gpus_per_node), 1)
    pool = np.array([x for x in range(total_gpus) if x not in taken], dtype=np.int64)
    free = [pool[pool // g == d] for d in range(-(-total_gpus // g))]
    if specs["attention"] == "packed" and specs["ffn"] == "packed":
        att, ff = [], []
        for _ in range(count):
            block = _first_fit(free, M + N)
            att.append(block[:M])
            ff.append(block[M:])
        gpus["attention"], gpus["ffn"] = np.concatenate(att), np.concatenate(ff)
    else:
        for role in ("attention", "ffn"):
            spec = specs[role]
            if spec == "packed":
                gpus[role] = np.concatenate([_first_fit(free, size[role]) for _ in range(count)])
            elif spec == "spread":
                gpus[role] = _spread(free, count * size[role])
            elif isinstance(spec, str) and role not in gpus:
                raise ConfigError(f"{prefix}.{role}",
                                  f"must be contiguous, packed, spread or a list of GPU ids, got {spec!r}")
    return [UnitGPUs(gpus["attention"][u * M:(u + 1) * M], gpus["ffn"][u * N:(u + 1) * N])
            for u in range(count)]


def locality_key(unit: UnitGPUs, gpus_per_node: int) -> tuple:
    """Units with equal keys see the same fabric (servers renumbered in order of first use,
    local ranks kept, so rails match): they may share one set of transfer times."""
    g = max(int(gpus_per_node), 1)
    ids = np.concatenate([unit.attention, unit.ffn])
    servers = ids // g
    _, first = np.unique(servers, return_index=True)
    order = {int(s): k for k, s in enumerate(servers[np.sort(first)].tolist())}
    return tuple((order[int(s)], int(x % g)) for s, x in zip(servers.tolist(), ids.tolist(),
                                                                strict=True)) + (unit.attention.size,)


class TrafficBytes:
    """Bytes per traffic class on NVLink (both endpoints in one domain) and scale-out."""

    def __init__(self, gpus_per_node: int):
        self.g = max(int(gpus_per_node), 1)
        self.totals: dict[str, list[float]] = {}

    def split(self, src: np.ndarray, dst: np.ndarray, size: np.ndarray) -> tuple[float, float]:
        """(NVLink bytes, scale-out bytes) of flows (src, dst, size)."""
        return domain_bytes(src, dst, size, self.g)

    def add(self, cls: str, nvlink: float, scale_out: float, times: float = 1.0) -> None:
        t = self.totals.setdefault(cls, [0.0, 0.0])
        t[0] += nvlink * times
        t[1] += scale_out * times

    def add_flows(self, src: np.ndarray, dst: np.ndarray, size: np.ndarray, tag: np.ndarray,
                  times: float = 1.0) -> None:
        """Add flows, each counted `times` times, by the class of its tag."""
        tag = np.asarray(tag)
        for t in np.unique(tag).tolist():
            sel = tag == t
            nv, so = self.split(np.asarray(src)[sel], np.asarray(dst)[sel], np.asarray(size)[sel])
            self.add(TRAFFIC_CLASS.get(t, f"tag{t}"), nv, so, times)

    def to_dict(self) -> dict[str, dict[str, float]]:
        """{class: {"nvlink_bytes", "scale_out_bytes"}} (classes with traffic, sorted)."""
        return {k: {"nvlink_bytes": v[0], "scale_out_bytes": v[1]}
                for k, v in sorted(self.totals.items())}
