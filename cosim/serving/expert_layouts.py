"""Attach the configured expert placement (`deployment.experts`) to a deployment's layouts.

Deployments build plain ParallelLayouts; the simulation context passes each through
`ExpertLayouts` before the memory plan, the step cost model and the comm model see it, so
every kind (chunked, pd, afd, pd_afd) gets the same placement of its EP groups. A balanced
load with no redundant experts and ep dividing the experts returns the layout unchanged (the
even split every GPU of which has its mean share: today's pricing, bit for bit).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from cosim.errors import require
from cosim.experts.group import ExpertGroup, expert_group, is_trivial
from cosim.experts.load import read_profile, zipf_load
from cosim.model.layout import ParallelLayout

ZIPF_ORDER_SEED = 0  # zipf popularity ranks are given to experts in this seeded random order


def cap_shares(share: np.ndarray, topk: int) -> np.ndarray:
    """Pair shares with none above 1/topk: a token picks an expert at most once, so one
    expert carries at most 1/k of a layer's pairs. The excess of the capped experts is spread
    over the others in proportion to their shares (water-filling; a no-op for real profiles,
    which never exceed it)."""
    p = np.asarray(share, dtype=float) / np.sum(share)
    cap = 1.0 / topk
    if topk <= 1 or p.max() <= cap:
        return p
    fixed = np.zeros(p.size, dtype=bool)
    for _ in range(p.size):
        over = (p > cap * (1 + 1e-12)) & ~fixed
        if not over.any():
            break
        fixed |= over
        free = ~fixed
        p[fixed] = cap
        rest = 1.0 - cap * fixed.sum()
        p[free] = p[free] / p[free].sum() * rest
    return p


def popularity_of(cfg: Any, num_experts: int, topk: int = 1,
                  prefix: str = "deployment.experts") -> np.ndarray:
    """Per-layer share of token-expert pairs per expert ([layers, experts], rows sum to 1,
    none above 1/topk: `cap_shares`)."""
    if cfg.load == "balanced":
        return np.full((1, num_experts), 1.0 / num_experts)
    if cfg.load == "zipf":
        # expert popularity is unrelated to expert ids: ranks in a seeded random order, as
        # the traffic's routing (cosim.traffic.expert_routing.expert_popularity) does
        w = zipf_load(num_experts, float(cfg.zipf_exponent))
        order = np.random.default_rng(ZIPF_ORDER_SEED).permutation(num_experts)
        rows = w[order][None, :]
    else:
        rows = read_profile(cfg.profile, num_experts, field=f"{prefix}.profile")
    return np.stack([cap_shares(r, topk) for r in rows])


class ExpertLayouts:
    """layout -> the same layout with its EP group's ExpertGroup (memoised per layout)."""

    def __init__(self, spec: Any, experts_cfg: Any, prefix: str = "deployment.experts"):
        self.cfg = experts_cfg
        self.prefix = prefix
        moe = getattr(spec, "moe", None)
        self.num_experts = int(moe.num_experts) if moe is not None and spec.num_moe_layers else 0
        self.topk = int(moe.topk) if self.num_experts else 1
        self._pop: np.ndarray | None = None
        self._memo: dict[ParallelLayout, ParallelLayout] = {}
        self.groups: dict[int, ExpertGroup] = {}  # ep size -> group (for summary.json)
        self.even: dict[int, dict] = {}  # ep sizes priced as the even split (summary.json)

    def __call__(self, layout: ParallelLayout) -> ParallelLayout:
        if layout.experts is not None or not self.num_experts:
            return layout
        hit = self._memo.get(layout)
        if hit is not None:
            return hit
        E, N = self.num_experts, int(layout.ep)
        R = int(self.cfg.num_redundant) if N > 1 else 0  # one GPU holds every expert already
        out = layout
        if N <= E and is_trivial(E, N, self.cfg.load, R):
            self.even[N] = {"num_experts": E, "ep_gpus": N, "num_redundant": 0,
                            "load": "balanced", "layers": 1, "experts_per_gpu_min": E // N,
                            "experts_per_gpu_max": E // N, "hottest_gpu_experts": E // N,
                            "hottest_gpu_pair_share": round(1.0 / N, 6), "imbalance": 1.0,
                            "imbalance_max_layer": 1.0}
        elif N <= E:
            group = self.groups.get(N)
            if group is None:
                require(R <= E * (N - 1), f"{self.prefix}.num_redundant",
                        f"{R} redundant experts: an EP group of {N} GPUs holds at most "
                        f"{E * (N - 1)} replicas beyond the {E} experts (one copy of an expert "
                        "per GPU)")
                if self._pop is None:
                    self._pop = popularity_of(self.cfg, E, self.topk, self.prefix)
                group = self.groups[N] = expert_group(
                    E, N, self._pop, load=self.cfg.load, num_redundant=R,
                    field=f"{self.prefix}.num_redundant")
            out = dataclasses.replace(layout, experts=group)
        self._memo[layout] = out
        return out

    def summary(self) -> dict[str, dict]:
        """summary.json `experts`: per EP size (> 1), the placement and its per-GPU
        imbalance (max / mean load)."""
        rows = {n: g.summary() for n, g in self.groups.items()}
        rows.update({n: r for n, r in self.even.items() if n not in rows})
        return {f"ep{n}": r for n, r in sorted(rows.items()) if n > 1}
