"""Pareto frontier of two metrics that are both maximised (tokens/s per GPU vs per user).

A run *dominates* another when it is at least as good on both metrics and strictly better
on one. The frontier is the set of runs no other run dominates. Ties: runs with identical
(x, y) do not dominate each other, so all of them are on the frontier; a run with the same
x as another but lower y is dominated. Runs with a missing (NaN) metric are never on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike


def pareto_mask(x: ArrayLike, y: ArrayLike) -> np.ndarray:
    """Boolean mask of the non-dominated points of (x, y), both maximised. O(n log n)."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"x and y must be 1-D of one length, got {x.shape} and {y.shape}")
    mask = np.zeros(x.size, dtype=bool)
    valid = np.flatnonzero(np.isfinite(x) & np.isfinite(y))
    if valid.size == 0:
        return mask
    # sweep from the largest x down; within one x value the largest y first
    order = valid[np.lexsort((-y[valid], -x[valid]))]
    best_y = -np.inf  # highest y among points with strictly larger x
    i = 0
    n = order.size
    while i < n:
        j = i
        xv = x[order[i]]
        while j < n and x[order[j]] == xv:
            j += 1
        group = order[i:j]
        top = y[group[0]]
        if top > best_y:
            mask[group[y[group] == top]] = True
            best_y = top
        i = j
    return mask


def frontier_flags(df: pd.DataFrame, x: str, y: str, by: Sequence[str] = (),
                   eligible: pd.Series | None = None) -> pd.Series:
    """Per row: on the frontier of its `by` group, among rows where `eligible` is True."""
    out = pd.Series(False, index=df.index)
    if df.empty:
        return out
    pool = df if eligible is None else df[eligible.reindex(df.index, fill_value=False)]
    if pool.empty:
        return out
    groups = pool.groupby(list(by), dropna=False, sort=False) if by else [((), pool)]
    for _, g in groups:
        m = pareto_mask(g[x].to_numpy(dtype=float), g[y].to_numpy(dtype=float))
        out.loc[g.index[m]] = True
    return out


def frontier_curve(xs: ArrayLike, ys: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """The frontier points sorted by x, for drawing (x increasing, y non-increasing)."""
    xs = np.asarray(xs, dtype=float)
    ys = np.asarray(ys, dtype=float)
    m = pareto_mask(xs, ys)
    order = np.lexsort((-ys[m], xs[m]))
    return xs[m][order], ys[m][order]
