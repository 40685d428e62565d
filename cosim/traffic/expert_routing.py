"""Top-k expert routing of a token batch with configurable popularity skew (seeded).

Expert popularity follows a power law (Zipf): the expert of popularity rank r (a seeded
random permutation of experts) is chosen with weight (r + 1)^-imbalance; imbalance = 0 is
uniform. Each token draws top-k distinct experts proportionally to those weights, i.e.
sampling without replacement (the Plackett-Luce order that Gumbel-top-k gives).
Optionally group-limited as DeepSeek-V3 routes (experts in num_groups equal groups, a token
keeps the topk_groups groups holding its best candidates: "a token reaches at most 4 nodes"
when groups map to nodes).

Sampling (O(tokens x k), no tokens x experts array): pick j of every token is one
inverse-CDF draw from the weights for the whole batch; a draw that repeats one of the
token's earlier picks, or (group limit) falls outside its groups once it has topk_groups of
them, is redrawn - a rejected draw redrawn is a draw from the weights restricted to the
allowed experts, so pick j has exactly the conditional law of sampling without
replacement. Tokens still rejected after a few rounds draw from their masked weights
directly. The group limit needs no group scores: with Gumbel keys the groups' maxima are
independent Gumbels located at log(group weight), so "the topk_groups groups of the best
keys, then the best k experts among them" is the order of experts drawn without
replacement in which a token's first topk_groups distinct groups are kept and later draws
from other groups are discarded - which is what the rejection does.
"""

from __future__ import annotations

import numpy as np

_REJECTION_ROUNDS = 8  # then the few tokens left draw from their masked weights directly


def expert_popularity(num_experts: int, imbalance: float, rng: np.random.Generator) -> np.ndarray:
    """Selection weights of experts (sum 1): Zipf with exponent `imbalance` over a random order."""
    if imbalance < 0:
        raise ValueError(f"imbalance must be >= 0, got {imbalance}")
    rank = rng.permutation(num_experts)
    w = (rank + 1.0) ** -float(imbalance)
    return w / w.sum()


def route_tokens(num_tokens: int, num_experts: int, topk: int, *, imbalance: float = 0.0,
                 seed: int = 0, num_groups: int = 1, topk_groups: int | None = None,
                 stream: int = 0, popularity: np.ndarray | None = None) -> np.ndarray:
    """Expert ids chosen by each token: int32 array (num_tokens, topk), distinct per row,
    in the order they were drawn (most probable first in expectation).

    `seed` fixes the experts' popularity order and the draws; `stream` > 0 draws other,
    independent tokens under the same popularity (stream s: numpy generator [seed, s]).
    `popularity` (num_experts weights, e.g. a deployment.experts load) replaces the Zipf
    weights of `imbalance`.
    """
    if not 1 <= topk <= num_experts:
        raise ValueError(f"topk must be in [1, num_experts={num_experts}], got {topk}")
    if num_groups < 1 or num_experts % num_groups:
        raise ValueError(f"num_groups={num_groups} must divide num_experts={num_experts}")
    per_group = num_experts // num_groups
    topk_groups = num_groups if topk_groups is None else topk_groups
    if not 1 <= topk_groups <= num_groups or topk_groups * per_group < topk:
        raise ValueError(f"topk_groups={topk_groups} must be in [1, {num_groups}] and hold "
                         f">= topk={topk} experts")
    if stream < 0:
        raise ValueError(f"stream must be >= 0, got {stream}")
    rng = np.random.default_rng(seed)
    if popularity is not None:
        w = np.asarray(popularity, dtype=float)
        if w.shape != (num_experts,) or not (w >= 0).all() or not w.sum() > 0:
            raise ValueError(f"popularity must be {num_experts} weights >= 0 with a positive sum")
        w = w / w.sum()
    else:
        w = expert_popularity(num_experts, imbalance, rng)
    if stream:
        rng = np.random.default_rng([seed, stream])
    cdf = np.cumsum(w)
    cdf /= cdf[-1]
    n = int(num_tokens)
    out = np.empty((n, topk), dtype=np.int32)
    limited = topk_groups < num_groups
    group_of = np.arange(num_experts) // per_group
    if limited:
        chosen_groups = np.zeros((n, num_groups), dtype=bool)
        n_groups = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    for j in range(topk):
        col = np.empty(n, dtype=np.int32)
        todo = rows
        for _ in range(_REJECTION_ROUNDS):
            x = np.searchsorted(cdf, rng.random(todo.size), side="right").astype(np.int32)
            bad = (out[todo, :j] == x[:, None]).any(axis=1)
            if limited:
                bad |= (n_groups[todo] >= topk_groups) & ~chosen_groups[todo, group_of[x]]
            col[todo[~bad]] = x[~bad]
            todo = todo[bad]
            if todo.size == 0:
                break
        if todo.size:
            col[todo] = _masked_draw(w, out[todo, :j], group_of,
                                     chosen_groups[todo] if limited else None,
                                     n_groups[todo] >= topk_groups if limited else None, rng)
        out[:, j] = col
        if limited:
            g = group_of[col]
            n_groups += ~chosen_groups[rows, g]
            chosen_groups[rows, g] = True
    return out


def _masked_draw(w: np.ndarray, taken: np.ndarray, group_of: np.ndarray,
                 chosen_groups: np.ndarray | None, full: np.ndarray | None,
                 rng: np.random.Generator) -> np.ndarray:
    """One draw per row from `w` without the row's `taken` experts (and, for rows whose
    groups are `full`, without experts outside its chosen groups)."""
    m = np.broadcast_to(w, (taken.shape[0], w.size)).copy()
    if taken.shape[1]:
        np.put_along_axis(m, taken.astype(np.int64), 0.0, axis=1)
    if chosen_groups is not None:
        m[full[:, None] & ~chosen_groups[:, group_of]] = 0.0
    c = np.cumsum(m, axis=1)
    u = rng.random(taken.shape[0]) * c[:, -1]
    # first expert whose cumulative weight exceeds u (experts of weight 0 never do)
    return (c <= u[:, None]).sum(axis=1).astype(np.int32)
