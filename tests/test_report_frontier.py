"""Pareto frontier (both metrics maximised): dominated points out, ties in, NaN out."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cosim.report.frontier import frontier_curve, frontier_flags, pareto_mask


def brute_force(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x) & np.isfinite(y)
    out = np.zeros(x.size, dtype=bool)
    for i in np.flatnonzero(ok):
        dominated = ok & (x >= x[i]) & (y >= y[i]) & ((x > x[i]) | (y > y[i]))
        out[i] = not dominated.any()
    return out


def test_dominated_points_are_excluded():
    # (1, 10) and (10, 1) trade off; (5, 5) is on the front; (4, 4) and (1, 1) are dominated
    x = [1, 10, 5, 4, 1]
    y = [10, 1, 5, 4, 1]
    assert pareto_mask(x, y).tolist() == [True, True, True, False, False]


def test_identical_points_are_both_on_the_front():
    assert pareto_mask([3, 3, 1], [2, 2, 5]).tolist() == [True, True, True]


def test_equal_x_lower_y_and_equal_y_lower_x_are_dominated():
    # same x, lower y: dominated; same y, lower x: dominated
    assert pareto_mask([5, 5, 4], [7, 6, 7]).tolist() == [True, False, False]


def test_missing_values_are_never_on_the_front():
    m = pareto_mask([np.nan, 1.0, 2.0, np.inf], [100.0, 1.0, np.nan, 5.0])
    assert m.tolist() == [False, True, False, False]
    assert not pareto_mask([], []).any()


@pytest.mark.parametrize("seed", range(5))
def test_matches_the_definition_on_random_points_with_ties(seed):
    rng = np.random.default_rng(seed)
    # a coarse integer grid forces many ties in x, in y and in both
    x = rng.integers(0, 8, 200).astype(float)
    y = rng.integers(0, 8, 200).astype(float)
    x[rng.random(200) < 0.05] = np.nan
    np.testing.assert_array_equal(pareto_mask(x, y), brute_force(x, y))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="one length"):
        pareto_mask([1, 2], [1])


def test_frontier_flags_per_group_and_only_among_eligible_rows():
    df = pd.DataFrame({"g": ["a", "a", "a", "b", "b"],
                       "x": [1.0, 2.0, 3.0, 1.0, 0.5],
                       "y": [3.0, 2.0, 9.0, 1.0, 0.5]})
    # within a: (3, 9) dominates both others; within b: (1, 1) dominates (0.5, 0.5)
    assert frontier_flags(df, "x", "y", ["g"]).tolist() == [False, False, True, True, False]
    # without the dominating row of a, its two remaining rows trade off
    eligible = pd.Series([True, True, False, True, True])
    assert frontier_flags(df, "x", "y", ["g"], eligible).tolist() == [True, True, False, True, False]
    # one frontier over all rows: b's rows are dominated by a's (3, 9)
    assert frontier_flags(df, "x", "y").tolist() == [False, False, True, False, False]


def test_frontier_curve_is_sorted_by_x_with_falling_y():
    fx, fy = frontier_curve([5, 1, 3, 2], [1, 9, 4, 3])
    assert fx.tolist() == [1, 3, 5] and fy.tolist() == [9, 4, 1]
