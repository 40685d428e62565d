"""Expert placement over an EP group of any size, with EPLB-style redundant experts.

Without redundancy, E experts over N GPUs: GPU g holds experts [g*E//N ...] contiguous,
E mod N GPUs hold one more (uneven placement; N need not divide E). With R redundant slots
the greedy of DeepSeek's EPLB (github.com/deepseek-ai/EPLB, ``replicate_experts``; the
DeepSeek-V3 report, sec. 3.4: 32 redundant experts in EP32 prefill) gives each extra
replica to the expert with the highest load per replica, then packs the E+R replicas onto
GPUs heaviest-first, each to the least loaded GPU that still has a free slot
(``balanced_packing``). A token of expert e is split evenly over e's replicas.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cosim.errors import require


@dataclass(frozen=True)
class Placement:
    num_experts: int
    num_gpus: int
    gpu_experts: tuple[tuple[int, ...], ...]  # experts (replicas) held per GPU
    replicas: tuple[int, ...]  # replica count per expert
    gpu_load: tuple[float, ...]  # fraction of token-expert pairs per GPU (sums to 1)

    @property
    def experts_per_gpu_max(self) -> int:
        return max(len(x) for x in self.gpu_experts)

    @property
    def imbalance(self) -> float:
        """Most loaded GPU's load over the mean (1.0 = balanced)."""
        return max(self.gpu_load) * self.num_gpus

    def holders(self, expert: int) -> list[int]:
        return [g for g, ex in enumerate(self.gpu_experts) if expert in ex]


def place_experts(num_experts: int, num_gpus: int, load: np.ndarray | None = None,
                  num_redundant: int = 0, field: str = "num_redundant_experts") -> Placement:
    """Place E experts (+ num_redundant replicas) on num_gpus GPUs under popularity `load`.

    `load`: per-expert popularity (any scale, 1-D or [layers, experts]; layers are summed,
    as EPLB does for a static placement). None means balanced.
    """
    E, N, R = num_experts, num_gpus, num_redundant
    require(N >= 1, "ep", f"must be >= 1, got {N}")
    require(R >= 0, field, f"must be >= 0, got {R}")
    require(R <= E * (N - 1), field,
            f"{R} redundant experts: an EP group of {N} GPUs holds at most {E * (N - 1)} "
            f"replicas beyond the {E} experts (one copy of each expert per GPU)")
    w = np.full(E, 1.0) if load is None else np.asarray(load, dtype=float)
    if w.ndim == 2:
        w = w.sum(axis=0)
    require(w.shape == (E,), "expert_load_profile",
            f"{w.shape[-1]} experts in the load, the model has {E}")
    w = w / w.sum()
    if R == 0:
        # contiguous uneven split: the first E mod N GPUs hold one more expert
        bounds = [g * E // N for g in range(N + 1)]
        gpu_experts = tuple(tuple(range(bounds[g], bounds[g + 1])) for g in range(N))
        reps = (1,) * E
        gl = tuple(float(w[list(ex)].sum()) if ex else 0.0 for ex in gpu_experts)
        return Placement(E, N, gpu_experts, reps, gl)
    reps = np.ones(E, dtype=int)
    for _ in range(R):  # EPLB replicate_experts: replicate the highest load per replica
        cand = np.where(reps < N, w / reps, -1.0)
        reps[int(np.argmax(cand))] += 1
    slots = E + R
    cap = [slots // N + (1 if g < slots % N else 0) for g in range(N)]
    items = sorted(((w[e] / reps[e], e) for e in range(E) for _ in range(reps[e])),
                   key=lambda t: (-t[0], t[1]))
    held: list[list[int]] = [[] for _ in range(N)]
    gl = [0.0] * N
    for share, e in items:  # EPLB balanced_packing: least loaded GPU with a free slot
        free = [g for g in range(N) if len(held[g]) < cap[g] and e not in held[g]]
        g = min(free, key=lambda g: (gl[g], g))
        held[g].append(e)
        gl[g] += share
    return Placement(E, N, tuple(tuple(sorted(h)) for h in held), tuple(int(r) for r in reps),
                     tuple(gl))
