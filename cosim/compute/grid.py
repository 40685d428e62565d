"""Interpolation over one measured grid: latency as a function of a few positive axes.

The measured points of one categorical key (e.g. one GEMM dtype, one MoE shape and layout)
lie on a rectilinear grid with holes (sweeps are capped, e.g. batch x isl <= 131072, and
some sweeps skip values). Interpolation is linear in log(axis) and log(latency), one axis
at a time, between the nearest grid values on either side at which the rest of the query
can be evaluated (holes are skipped): between two points a latency that grows like a power
of the axis is reproduced exactly, and one that scales with FLOPs (t proportional to n or
k) is scaled by the FLOP ratio. A query outside an axis' range, or with no usable
neighbours, is not interpolated: :meth:`LogGrid.anchor` finds the nearest usable point, and
the caller scales it (docs/compute.md, "Out of grid").

Monotone axes: more work never takes less time. Measured sweeps are noisy (power-law MoE
rows, isolated GEMM spikes), so the grid uses the *lower monotone envelope* along those
axes: a point is replaced by the smallest latency measured at any point with at least as
much work on every monotone axis. Points this lowers are reported as such (the spike was
not reproduced by its larger neighbours); all other measured points are returned exactly.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Sequence

import numpy as np


class LogGrid:
    """Latency on a rectilinear grid (NaN = not measured), interpolated in log-log space."""

    __slots__ = ("axes", "_t", "_zero", "raw", "env", "_logenv", "_lowered", "ndim")

    def __init__(self, axes: Sequence[Sequence[float]], values: np.ndarray,
                 monotone: Sequence[bool], zero_based: Sequence[bool] | None = None):
        self.ndim = len(axes)
        self.axes = [list(map(float, a)) for a in axes]
        self._zero = list(zero_based or [False] * self.ndim)
        self._t = [[self._tf(i, x) for x in a] for i, a in enumerate(self.axes)]
        self.raw = np.asarray(values, dtype=float)
        env = self.raw.copy()
        missing = np.isnan(env)
        for i, mono in enumerate(monotone):
            if mono and env.shape[i] > 1:
                # suffix minimum along axis i; fmin ignores NaN holes
                flipped = np.flip(env, axis=i)
                env = np.flip(np.fmin.accumulate(flipped, axis=i), axis=i)
        env[missing] = np.nan
        self.env = env
        with np.errstate(divide="ignore", invalid="ignore"):
            self._logenv = np.log(env)
        self._lowered = np.zeros(env.shape, dtype=bool)
        ok = ~missing
        self._lowered[ok] = env[ok] < self.raw[ok] * (1 - 1e-12)

    @classmethod
    def from_points(cls, coords: Sequence[np.ndarray], values: np.ndarray,
                    monotone: Sequence[bool], zero_based: Sequence[bool] | None = None
                    ) -> LogGrid:
        """Build from scattered points (one per grid cell; aggregate duplicates first)."""
        axes = [np.unique(c) for c in coords]
        idx = tuple(np.searchsorted(ax, c) for ax, c in zip(axes, coords, strict=True))
        grid = np.full([len(a) for a in axes], np.nan)
        grid[idx] = values
        return cls(axes, grid, monotone, zero_based)

    def _tf(self, i: int, x: float) -> float:
        return math.log1p(x) if self._zero[i] else math.log(x)

    def lookup(self, point: Sequence[float]) -> tuple[float, bool, bool] | None:
        """(latency, exact, lowered) at `point`, or None outside the grid or in a hole.

        Axis by axis, the query is bracketed by the nearest grid values on either side at
        which the remaining axes can be evaluated (holes are skipped), and interpolated
        linearly in log space. exact: `point` is a measured grid point; lowered: a point used
        was lowered by the monotone envelope (its raw measurement was not reproduced).
        """
        for x, ax in zip(point, self.axes, strict=True):
            if x < ax[0] or x > ax[-1]:
                return None
        res = self._interp(point, 0, ())
        if res is None:
            return None
        if res[1]:  # a grid point: its stored value, not exp(log(value))
            idx = tuple(bisect_left(ax, x) for x, ax in zip(point, self.axes, strict=True))
            return float(self.env[idx]), True, res[2]
        # An interpolation lies between the grid values it blends; clamping removes the
        # rounding of exp(log(v)) (1 ulp), which would break monotonicity at grid points.
        return min(max(math.exp(res[0]), res[3]), res[4]), False, res[2]

    def _interp(self, point: Sequence[float], a: int, prefix: tuple[int, ...]
                ) -> tuple[float, bool, bool, float, float] | None:
        if a == self.ndim:
            lv = self._logenv[prefix]
            if lv != lv:  # NaN: a hole in the sweep
                return None
            v = float(self.env[prefix])
            return float(lv), True, bool(self._lowered[prefix]), v, v
        ax = self.axes[a]
        x = point[a]
        j = bisect_left(ax, x)
        if j < len(ax) and ax[j] == x:
            hit = self._interp(point, a + 1, prefix + (j,))
            if hit is not None:
                return hit
            below, above = j - 1, j + 1
        else:
            below, above = j - 1, j
        lo = hi = None
        for i in range(below, -1, -1):
            lo = self._interp(point, a + 1, prefix + (i,))
            if lo is not None:
                break
        if lo is None:
            return None
        for k in range(above, len(ax)):
            hi = self._interp(point, a + 1, prefix + (k,))
            if hi is not None:
                break
        if hi is None:
            return None
        t = self._t[a]
        w = (self._tf(a, x) - t[i]) / (t[k] - t[i])
        # lo + w * (hi - lo): monotone in w under rounding, exact on flat stretches; the
        # smallest and largest grid values used travel along (see lookup)
        return (lo[0] + w * (hi[0] - lo[0]), False, lo[2] or hi[2], min(lo[3], hi[3]),
                max(lo[4], hi[4]))

    def anchor(self, point: Sequence[float], shrink: Sequence[int] = ()) -> tuple[float, ...] | None:
        """The usable point nearest `point`: clamp every axis into range, then walk the
        `shrink` axes down their grid values (e.g. fewer requests), then the nearest
        measured point in log distance. None only for an empty grid."""
        clamped = [min(max(float(x), ax[0]), ax[-1]) for x, ax in zip(point, self.axes, strict=True)]
        if self.lookup(clamped) is not None:
            return tuple(clamped)
        for i in shrink:
            below = [v for v in self.axes[i] if v < clamped[i]]
            for v in reversed(below):
                trial = list(clamped)
                trial[i] = v
                if self.lookup(trial) is not None:
                    return tuple(trial)
        cells = np.argwhere(~np.isnan(self.env))
        if not len(cells):
            return None
        tq = np.array([self._tf(i, x) for i, x in enumerate(clamped)])
        tc = np.stack([np.asarray(self._t[i])[cells[:, i]] for i in range(self.ndim)], axis=1)
        best = cells[int(np.argmin(np.abs(tc - tq).sum(axis=1)))]
        return tuple(self.axes[i][int(j)] for i, j in enumerate(best))

    def points(self) -> list[tuple[tuple[float, ...], float, bool]]:
        """Every measured point: (coordinates, raw latency, lowered by the envelope)."""
        out = []
        for idx in np.argwhere(~np.isnan(self.raw)):
            idx = tuple(int(j) for j in idx)
            out.append((tuple(self.axes[i][j] for i, j in enumerate(idx)), float(self.raw[idx]),
                        bool(self._lowered[idx])))
        return out

    @property
    def lowered_fraction(self) -> float:
        n = int(np.count_nonzero(~np.isnan(self.raw)))
        return float(self._lowered.sum()) / n if n else 0.0
