"""Root-level `compute` settings: which measured tables to read and the roofline constants.

The efficiency defaults are the median fractions of peak that the aiconfigurator-core 0.12.0
trtllm 1.3.0rc20 tables reach on H100/H200/B200/GB200 for large shapes (see docs/compute.md,
"Efficiencies"); they only matter off-table (hypothetical GPUs, shapes outside the grids).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cosim.errors import require

FRAMEWORKS = ("trtllm", "sglang", "vllm")
MOE_DISTRIBUTIONS = ("balanced", "power_law_1.01", "power_law_1.2")
MOE_WEIGHTS = ("all", "touched")


@dataclass
class ComputeConfig:
    framework: str = "trtllm"  # trtllm | sglang | vllm (aiconfigurator-core table family)
    # "" or "current": the package's current version for that framework on that GPU
    # (systems/query_versions.yaml); "next": the newest newer folder; or a folder name.
    version: str = ""
    use_tables: bool = True  # False: roofline only
    # A folder of <table>.parquet files in the aiconfigurator schema (written by
    # scripts/profile_kernels.py); its tables are read before the shipped ones.
    table_dir: str = ""
    # Expert-load distribution of the MoE rows. balanced (default): every GPU gets its mean
    # share of token-expert pairs, the load the operators' FLOPs, the roofline and the
    # out-of-grid scaling assume (EPLB deployments, such as the public DeepSeek ones, are
    # close to it). power_law_1.01 / power_law_1.2: the most loaded GPU under synthetic
    # Pareto expert popularity without EPLB (2x the mean load at EP8, 4x at EP32 in the
    # h100 tables); aiconfigurator's default. See docs/compute.md, "MoE tables".
    moe_distribution: str = "balanced"
    # Expert weights a MoE step reads. touched (default): a batch of T tokens routed top-k
    # at random touches only E (1 - (1 - k/E)^T) distinct experts (fewer under skew; issue
    # 10, cause 1), so the balanced moe_perf value is scaled by the roofline ratio of the two
    # weight reads (flag `touched`). all: as the balanced table rows were measured, with
    # round-robin routing that spreads a batch's pairs over as many experts as it can
    # (aiconfigurator collector/helper.py `balanced_logits`: T tokens touch min(E, T k)
    # experts), i.e. more weights read than a real batch reads. On the H200 silicon rows
    # touched moves the median |TPOT error| from 19 % to 9 % (docs/validation_silicon.md).
    # See docs/experts.md.
    moe_weights: str = "touched"
    # Preferred kernel_source per table name (e.g. {moe_perf: moe_torch_flow_min_latency});
    # a table's lane is otherwise the framework default or the best covered one.
    lanes: dict[str, str] = field(default_factory=dict)
    # none (default): every value as configured. framework: the settings compute.framework
    # uses by default (scheduler policy, tokens per iteration, chunked prefill, KV dtype,
    # memory fraction and what it is a fraction of) fill the keys still at their schema
    # default (cosim.config.profiles; sources in docs/serving.md, "Framework profiles").
    profile: str = "none"
    # Keys (dotted, e.g. deployment.scheduler.policy) the profile must leave as they are.
    profile_keep: list[str] = field(default_factory=list)
    # Roofline efficiency factors (fraction of peak reached by real kernels), used off-table.
    # Tables: large GEMMs reach 0.61-0.80 (bf16), 0.46-0.62 (fp8), 0.37-0.39 (nvfp4) of peak.
    gemm_efficiency: dict[str, float] = field(
        default_factory=lambda: {"bfloat16": 0.70, "fp8": 0.55, "fp4": 0.38})
    attention_efficiency: float = 0.50  # prefill GQA/MLA cores: 0.47-0.58 of bf16 peak
    moe_efficiency: float = 0.30  # DeepSeek-V3 experts, 16k tokens, EP8: 0.26-0.38 of fp8 peak
    memory_efficiency: float = 0.70  # decode attention 0.62-0.74, bf16 GEMV 0.67-0.80 of HBM BW
    launch_latency_us: float = 4.0  # per-kernel overhead added to every roofline time

    def validate(self, prefix: str = "compute") -> None:
        require(self.framework in FRAMEWORKS, f"{prefix}.framework",
                f"unknown framework {self.framework!r}; choose trtllm, sglang or vllm")
        require(self.profile in ("none", "framework"), f"{prefix}.profile",
                f"unknown profile {self.profile!r}; choose none or framework")
        require(self.moe_distribution in MOE_DISTRIBUTIONS, f"{prefix}.moe_distribution",
                f"unknown distribution {self.moe_distribution!r}; choose one of "
                f"{', '.join(MOE_DISTRIBUTIONS)}")
        require(self.moe_weights in MOE_WEIGHTS, f"{prefix}.moe_weights",
                f"unknown {self.moe_weights!r}; choose all or touched")
        for k, v in self.gemm_efficiency.items():
            require(k in ("bfloat16", "fp8", "fp4"), f"{prefix}.gemm_efficiency.{k}",
                    "unknown dtype; use bfloat16, fp8 or fp4")
            require(0 < v <= 1, f"{prefix}.gemm_efficiency.{k}", f"must be in (0, 1], got {v}")
        for name in ("attention_efficiency", "moe_efficiency", "memory_efficiency"):
            v = getattr(self, name)
            require(0 < v <= 1, f"{prefix}.{name}", f"must be in (0, 1], got {v}")
        require(self.launch_latency_us >= 0, f"{prefix}.launch_latency_us",
                f"must be >= 0, got {self.launch_latency_us}")
