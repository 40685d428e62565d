"""Top-k expert routing of a token batch with configurable popularity skew (seeded).

Expert popularity follows a power law (Zipf): the expert of popularity rank r (a seeded
random permutation of experts) is chosen with weight (r + 1)^-imbalance; imbalance = 0 is
uniform. Each token draws top-k distinct experts proportionally to those weights
(Gumbel-top-k, i.e. sampling without replacement). Optionally group-limited as
DeepSeek-V3 routes (experts in num_groups equal groups, a token keeps the topk_groups groups
holding its best candidates: "a token reaches at most 4 nodes" when groups map to nodes).
"""

from __future__ import annotations

import numpy as np

_CHUNK_ELEMENTS = 1 << 22  # bound memory: tokens x experts keys per chunk


def expert_popularity(num_experts: int, imbalance: float, rng: np.random.Generator) -> np.ndarray:
    """Selection weights of experts (sum 1): Zipf with exponent `imbalance` over a random order."""
    if imbalance < 0:
        raise ValueError(f"imbalance must be >= 0, got {imbalance}")
    rank = rng.permutation(num_experts)
    w = (rank + 1.0) ** -float(imbalance)
    return w / w.sum()


def route_tokens(num_tokens: int, num_experts: int, topk: int, *, imbalance: float = 0.0,
                 seed: int = 0, num_groups: int = 1, topk_groups: int | None = None) -> np.ndarray:
    """Expert ids chosen by each token: int32 array (num_tokens, topk), distinct per row."""
    if not 1 <= topk <= num_experts:
        raise ValueError(f"topk must be in [1, num_experts={num_experts}], got {topk}")
    if num_groups < 1 or num_experts % num_groups:
        raise ValueError(f"num_groups={num_groups} must divide num_experts={num_experts}")
    per_group = num_experts // num_groups
    topk_groups = num_groups if topk_groups is None else topk_groups
    if not 1 <= topk_groups <= num_groups or topk_groups * per_group < topk:
        raise ValueError(f"topk_groups={topk_groups} must be in [1, {num_groups}] and hold "
                         f">= topk={topk} experts")
    rng = np.random.default_rng(seed)
    logw = np.log(expert_popularity(num_experts, imbalance, rng))
    out = np.empty((num_tokens, topk), dtype=np.int32)
    chunk = max(1, _CHUNK_ELEMENTS // num_experts)
    for lo in range(0, num_tokens, chunk):
        hi = min(num_tokens, lo + chunk)
        keys = logw + rng.gumbel(size=(hi - lo, num_experts))
        if topk_groups < num_groups:
            best = keys.reshape(hi - lo, num_groups, per_group).max(axis=2)
            drop = np.argpartition(-best, topk_groups - 1, axis=1)[:, topk_groups:]
            g = keys.reshape(hi - lo, num_groups, per_group)
            np.put_along_axis(g, drop[:, :, None], -np.inf, axis=1)
        out[lo:hi] = np.argpartition(-keys, topk - 1, axis=1)[:, :topk]
    return out
