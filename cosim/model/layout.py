"""Parallel layout of one serving instance (how its GPUs split attention and experts)."""

from __future__ import annotations

from dataclasses import dataclass

from cosim.errors import require
from cosim.experts.group import ExpertGroup


@dataclass(frozen=True)
class ParallelLayout:
    """GPUs of one instance: attention runs as tp x dp, experts as ep x moe_tp.

    With DP attention (dp > 1) every attention rank serves its own requests and the MoE
    layer sees the tokens of all dp ranks. tp * dp must equal ep * moe_tp (one instance's
    GPUs), except in AFD where attention and FFN live on different GPUs.
    """

    tp: int = 1  # attention tensor parallel
    dp: int = 1  # attention data parallel
    ep: int = 1  # expert parallel
    moe_tp: int = 1  # expert tensor parallel
    # Where the routed experts sit on the ep GPUs and how loaded each is (cosim.experts).
    # None: the even split of a balanced load, ep dividing the experts (every GPU its mean
    # share); deployments attach one when the placement is uneven, redundant or skewed.
    experts: ExpertGroup | None = None

    @property
    def attention_gpus(self) -> int:
        return self.tp * self.dp

    @property
    def ffn_gpus(self) -> int:
        return self.ep * self.moe_tp

    def sizes(self) -> dict[str, int]:
        """tp, dp, ep and moe_tp (for reports; the expert placement is reported apart)."""
        return {"tp": self.tp, "dp": self.dp, "ep": self.ep, "moe_tp": self.moe_tp}

    def validate(self, prefix: str = "layout") -> None:
        for name in ("tp", "dp", "ep", "moe_tp"):
            v = getattr(self, name)
            require(isinstance(v, int) and v >= 1, f"{prefix}.{name}", f"must be an integer >= 1, got {v!r}")
