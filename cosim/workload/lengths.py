"""Token-length draws: a mean and a coefficient of variation, as integer arrays."""

from __future__ import annotations

import math

import numpy as np

from cosim.config.workload import LengthConfig


def sample_lengths(cfg: LengthConfig, n: int, rng: np.random.Generator, floor: int = 0) -> np.ndarray:
    """`n` integer lengths from `cfg` (mean, cv, dist), clipped to [max(min, floor), max]."""
    m, cv = float(cfg.mean), float(cfg.cv)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    if m == 0 or cv == 0 or cfg.dist == "constant":
        x = np.full(n, m)
    elif cfg.dist == "lognormal":
        sigma2 = math.log1p(cv * cv)  # moments of a lognormal with mean m and std cv*m
        x = rng.lognormal(math.log(m) - sigma2 / 2, math.sqrt(sigma2), n)
    elif cfg.dist == "gamma":
        x = rng.gamma(1.0 / (cv * cv), m * cv * cv, n)
    elif cfg.dist == "uniform":
        half = math.sqrt(3.0) * cv * m  # a uniform on [m-h, m+h] has std h/sqrt(3)
        x = rng.uniform(m - half, m + half, n)
    else:  # validated earlier; keep the error explicit for direct callers
        raise ValueError(f"unknown length distribution {cfg.dist!r}")
    out = np.rint(x).astype(np.int64)
    lo = max(int(cfg.min), floor)
    np.maximum(out, lo, out=out)
    if cfg.max:
        np.minimum(out, int(cfg.max), out=out)
    return out


def uniform_integers(low: int, high: int) -> dict[str, float | int | str]:
    """The `LengthConfig` fields whose draws are integers uniform on [low, high].

    Each integer gets probability 1 / (high - low + 1): a continuous uniform on
    [low - 1/2, high + 1/2] (mean (low + high) / 2, half-width (high - low + 1) / 2) rounded to
    the nearest integer, clipped to [low, high] against float error. This is how serving
    benchmark clients draw `--random-range-ratio` lengths: vLLM's and SemiAnalysis InferenceX's
    `benchmark_serving.py` take numpy `randint(int(L * ratio), L + 1)`.
    """
    if not 1 <= low <= high:
        raise ValueError(f"need 1 <= low <= high, got low={low}, high={high}")
    mean = (low + high) / 2
    return {"dist": "uniform", "mean": mean, "cv": (high - low + 1) / 2 / (math.sqrt(3.0) * mean),
            "min": int(low), "max": int(high)}
