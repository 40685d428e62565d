"""Root-level `compute` settings: which measured tables to read and roofline efficiencies."""

from __future__ import annotations

from dataclasses import dataclass

from cosim.config.errors import require


@dataclass
class ComputeConfig:
    framework: str = "trtllm"  # trtllm | sglang | vllm (aiconfigurator-core table family)
    version: str = ""  # "" = the package's current version for that framework
    use_tables: bool = True  # False: roofline only
    # Roofline efficiency factors (fraction of peak reached by real kernels), used off-table.
    gemm_efficiency: float = 0.75
    attention_efficiency: float = 0.55
    memory_efficiency: float = 0.80

    def validate(self, prefix: str = "compute") -> None:
        require(self.framework in ("trtllm", "sglang", "vllm"), f"{prefix}.framework",
                f"unknown framework {self.framework!r}; choose trtllm, sglang or vllm")
        for name in ("gemm_efficiency", "attention_efficiency", "memory_efficiency"):
            v = getattr(self, name)
            require(0 < v <= 1, f"{prefix}.{name}", f"must be in (0, 1], got {v}")
