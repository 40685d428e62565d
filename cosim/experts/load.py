"""Expert-load popularity: balanced, Zipf (power law with exponent s), or a profile file.

Profile file format (CSV, the per-layer per-expert token counts that EPLB tools dump, e.g.
SGLang's expert-distribution recorder or DeepSeek's EPLB ``weight`` tensor
[layers, experts]): one row per MoE layer, one comma-separated count per routed expert,
optional ``#`` comment lines. See docs/experts.md.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cosim.errors import ConfigError, require

EXPERT_LOADS = ("balanced", "zipf", "profile")


def zipf_load(num_experts: int, s: float) -> np.ndarray:
    """Popularity of expert rank r proportional to 1/r**s (s=0: balanced); sums to 1."""
    require(s >= 0, "expert_load_zipf_s", f"must be >= 0, got {s}")
    w = 1.0 / np.arange(1, num_experts + 1, dtype=float) ** s
    return w / w.sum()


def read_profile(path: str | Path, num_experts: int,
                 field: str = "expert_load_profile") -> np.ndarray:
    """Per-layer per-expert counts [layers, experts] from a profile file."""
    p = Path(path)
    require(p.is_file(), field, f"profile file {str(p)!r} not found")
    rows = []
    for lineno, line in enumerate(p.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            vals = [float(x) for x in line.split(",")]
        except ValueError:
            raise ConfigError(field, f"{p}:{lineno}: counts must be numbers") from None
        require(len(vals) == num_experts, field,
                f"{p}:{lineno}: {len(vals)} expert counts, the model has {num_experts} "
                "routed experts")
        require(all(v >= 0 and np.isfinite(v) for v in vals), field,
                f"{p}:{lineno}: counts must be finite and >= 0")
        rows.append(vals)
    require(bool(rows), field, f"{p}: no counts")
    arr = np.asarray(rows)
    require(bool((arr.sum(axis=1) > 0).all()), field, f"{p}: a layer has no tokens")
    return arr


def expert_load(kind: str, num_experts: int, zipf_s: float = 1.0,
                profile: str = "") -> np.ndarray:
    """Expert popularity [layers, experts], each row summing to 1 (one row unless profile)."""
    require(kind in EXPERT_LOADS, "expert_load",
            f"unknown {kind!r}; choose one of {', '.join(EXPERT_LOADS)}")
    if kind == "balanced":
        return np.full((1, num_experts), 1.0 / num_experts)
    if kind == "zipf":
        return zipf_load(num_experts, zipf_s)[None, :]
    counts = read_profile(profile, num_experts)
    return counts / counts.sum(axis=1, keepdims=True)
