"""Distinct experts a batch touches (issue 10, cause 1).

With T tokens each picking k of E experts, expert e is missed by one token with probability
(1 - k p_e) under popularity p (sum p = 1, k p_e <= 1; the top-k without replacement
approximation used for the balanced closed form), so the expected number touched is
sum_e 1 - (1 - k p_e)^T; balanced: E (1 - (1 - k/E)^T). It never exceeds E nor T k.
"""

from __future__ import annotations

import numpy as np

from cosim.experts.placement import Placement


def expected_touched(num_tokens: int, top_k: int, popularity: np.ndarray) -> float:
    p = np.asarray(popularity, dtype=float)
    p = p / p.sum()
    q = np.clip(top_k * p, 0.0, 1.0)
    val = float((1.0 - (1.0 - q) ** num_tokens).sum())
    return min(val, float(len(p)), float(num_tokens * top_k))


def expected_touched_per_gpu(num_tokens: int, top_k: int, popularity: np.ndarray,
                             placement: Placement) -> list[float]:
    """Expected distinct expert replicas each GPU reads weights of in one step."""
    p = np.asarray(popularity, dtype=float)
    p = p / p.sum()
    out = []
    for ex in placement.gpu_experts:
        s = 0.0
        for e in ex:
            q = min(1.0, top_k * p[e] / placement.replicas[e])  # token split over replicas
            s += 1.0 - (1.0 - q) ** num_tokens
        out.append(min(s, float(len(ex)), float(num_tokens * top_k)))
    return out
