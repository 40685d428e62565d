"""One EP group's expert layout under a load: what the compute and the traffic read of it.

`expert_group(E, N, load, num_redundant)` places the experts of every layer of the load
(one row for balanced / zipf, one per profile layer) with `place_experts` (DeepSeek's EPLB
places each layer on its own: `rebalance_experts` takes a [layers, experts] weight). The
compute model prices a MoE layer at its **hottest GPU** (the one holding the largest share
of the layer's token-expert pairs: the others wait for it at the combine); since every
layer runs the same operator, a run uses the mean over layers of the hottest GPU's pair
share and expert count (exact where the MoE time is linear in the pairs, as it is once the
experts' weights are all read). The traffic routes every layer as the representative
layer (the one whose hottest share is the median of the layers').
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np

from cosim.experts.placement import Placement, place_experts


@dataclass(frozen=True, eq=False, repr=False)
class ExpertGroup:
    """Placements of one EP group (per load layer) and the popularity they were made for."""

    num_experts: int
    num_gpus: int
    num_redundant: int
    load: str  # balanced | zipf | profile (for the report)
    layers: tuple[Placement, ...]
    popularity: tuple[tuple[float, ...], ...]  # per layer, share of pairs per expert (sum 1)

    def __repr__(self) -> str:
        return (f"ExpertGroup(E={self.num_experts}, ep={self.num_gpus}, "
                f"redundant={self.num_redundant}, load={self.load}, {self.digest})")

    @functools.cached_property
    def digest(self) -> str:
        h = hashlib.sha1(repr((self.num_experts, self.num_gpus, self.num_redundant, self.load,
                               [p.gpu_experts for p in self.layers],
                               self.popularity)).encode())
        return h.hexdigest()[:16]

    def _hot(self, p: Placement) -> int:
        # the most loaded GPU; among equal loads the one holding more experts
        return max(range(p.num_gpus), key=lambda g: (p.gpu_load[g], len(p.gpu_experts[g]), -g))

    @functools.cached_property
    def hot_share(self) -> float:
        """Mean over layers of the hottest GPU's share of the layer's token-expert pairs."""
        return float(np.mean([p.gpu_load[self._hot(p)] for p in self.layers]))

    @functools.cached_property
    def hot_experts(self) -> float:
        """Mean over layers of the expert replicas the hottest GPU holds."""
        return float(np.mean([len(p.gpu_experts[self._hot(p)]) for p in self.layers]))

    @property
    def imbalance(self) -> float:
        """Mean over layers of max / mean GPU load (1.0 = balanced)."""
        return float(np.mean([p.imbalance for p in self.layers]))

    @property
    def imbalance_max(self) -> float:
        return float(max(p.imbalance for p in self.layers))

    @functools.cached_property
    def _hot_rates(self) -> tuple[np.ndarray, ...]:
        """Per layer: the share of pairs each replica on the hottest GPU receives."""
        out = []
        for p, w in zip(self.layers, self.popularity, strict=True):
            ex = p.gpu_experts[self._hot(p)]
            out.append(np.array([w[e] / p.replicas[e] for e in ex]))
        return tuple(out)

    def touched(self, tokens: int, topk: int) -> float:
        """Expected distinct expert replicas the hottest GPU reads weights of for `tokens`
        tokens (mean over layers; cosim.experts.touched's formula per replica)."""
        vals = []
        for rates in self._hot_rates:
            q = np.clip(topk * rates, 0.0, 1.0)
            s = float((1.0 - (1.0 - q) ** tokens).sum())
            vals.append(min(s, float(rates.size), float(tokens * topk)))
        return float(np.mean(vals))

    @functools.cached_property
    def representative(self) -> int:
        """Index of the layer whose hottest share is the median (the traffic's layer)."""
        shares = [p.gpu_load[self._hot(p)] for p in self.layers]
        return int(np.argsort(shares, kind="stable")[(len(shares) - 1) // 2])

    def summary(self) -> dict:
        """Facts for summary.json: placement and per-GPU imbalance (max / mean load)."""
        sizes = [len(x) for p in self.layers for x in p.gpu_experts]
        return {"num_experts": self.num_experts, "ep_gpus": self.num_gpus,
                "num_redundant": self.num_redundant, "load": self.load,
                "layers": len(self.layers),
                "experts_per_gpu_min": min(sizes), "experts_per_gpu_max": max(sizes),
                "hottest_gpu_experts": round(self.hot_experts, 4),
                "hottest_gpu_pair_share": round(self.hot_share, 6),
                "imbalance": round(self.imbalance, 4),
                "imbalance_max_layer": round(self.imbalance_max, 4)}


def is_trivial(num_experts: int, num_gpus: int, load: str, num_redundant: int) -> bool:
    """Balanced, no redundancy and N | E: the even contiguous split cosim always priced."""
    return load == "balanced" and num_redundant == 0 and num_experts % num_gpus == 0


def expert_group(num_experts: int, num_gpus: int, popularity: np.ndarray, *, load: str,
                 num_redundant: int = 0,
                 field: str = "deployment.experts.num_redundant") -> ExpertGroup:
    """Place every layer of `popularity` ([layers, experts], rows summing to 1)."""
    pop = np.atleast_2d(np.asarray(popularity, dtype=float))
    balanced = load == "balanced"
    layers = tuple(place_experts(num_experts, num_gpus, None if balanced else row,
                                 num_redundant, field=field) for row in pop)
    return ExpertGroup(num_experts, num_gpus, num_redundant, load, layers,
                       tuple(tuple(float(x) for x in row) for row in pop))
