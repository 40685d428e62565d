"""Config group `deployment`: how GPUs are organised into serving instances.

`kind` names a deployment registered in :mod:`cosim.serving.deployments` (chunked; pd, afd
and pd_afd build on the same instances). Aggregated deployments use `replicas`, `layout`,
`scheduler` and `router`; disaggregated ones describe each role (prefill, decode, attention,
ffn) in `roles` and keep their own knobs in `options` (checked by
cosim.config.deployment_disagg); `micro_batches` is AFD's ping-pong depth. See
docs/serving.md and docs/deployments/.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cosim.config.deployment_disagg import validate_disagg
from cosim.config.hardware import HardwareConfig
from cosim.errors import require
from cosim.model.layout import ParallelLayout
from cosim.serving.deployments import known_deployments

ROUTERS = ("round_robin", "least_loaded", "prefix_aware")
DTYPES = ("bfloat16", "fp8", "fp4")


MICRO_BATCH_COSTS = ("per_microbatch", "linear_split")
PLACEMENTS = ("contiguous", "packed", "spread")  # or an explicit list of GPU ids


def check_placement_value(value: Any, field_name: str) -> None:
    """A role's placement: one of PLACEMENTS or a list of distinct integer GPU ids >= 0.
    (Whether the ids lie in the topology and the list has the role's length is checked
    when the deployment is built: cosim.serving.deployments.placement.)"""
    if isinstance(value, str):
        require(value in PLACEMENTS, field_name,
                f"must be {', '.join(PLACEMENTS)} or a list of GPU ids, got {value!r}")
        return
    require(isinstance(value, (list, tuple)), field_name,
            f"must be {', '.join(PLACEMENTS)} or a list of GPU ids, got {value!r}")
    seen: set[int] = set()
    for g in value:
        require(isinstance(g, int) and not isinstance(g, bool) and g >= 0, field_name,
                f"GPU ids are integers >= 0, got {g!r}")
        require(g not in seen, field_name, f"GPU {g} appears twice")
        seen.add(g)


@dataclass
class PlacementConfig:
    """Where the GPUs of the AFD roles sit on the topology (docs/placement.md).

    contiguous (default): the assignment before placement existed: unit u owns GPUs
    [u(M+N), u(M+N)+M) for attention and the next N for FFN (after the prefill instances under
    pd_afd). packed: the role's groups fill NVLink domains in order, a group (an AFD unit when
    both roles are packed) kept inside one domain where it fits. spread: the role's GPUs dealt
    round-robin over the servers. A list: those GPU ids, unit by unit (count x group size).
    """

    attention: Any = "contiguous"
    ffn: Any = "contiguous"

    def validate(self, prefix: str) -> None:
        for name in ("attention", "ffn"):
            check_placement_value(getattr(self, name), f"{prefix}.{name}")

    def is_default(self) -> bool:
        return self.attention == "contiguous" and self.ffn == "contiguous"
# cosim.serving.scheduler.POLICIES (kept here too: config must not import serving internals)
SCHEDULER_POLICIES = ("mixed", "guaranteed_no_evict", "prefill_first")
MEMORY_FRACTIONS = ("total", "free", "static")
OVERLAPS = ("none", "two_batch")
EXPERT_LOADS = ("balanced", "zipf", "profile")


@dataclass
class ExpertsConfig:
    """Routed-expert placement over every EP group of the deployment (cosim.experts,
    docs/experts.md). Defaults reproduce the even split of a balanced load."""

    # Replicas of the hottest experts added to every EP group (DeepSeek's EPLB greedy,
    # github.com/deepseek-ai/EPLB; the DeepSeek-V3 report, sec. 3.4: 32 in its EP32 prefill).
    num_redundant: int = 0
    # Expert popularity: balanced (every expert the same share), zipf (expert of rank r
    # chosen with weight 1/r**zipf_exponent) or profile (per-layer per-expert token counts
    # from `profile`, the [layers, experts] load EPLB tools dump).
    load: str = "balanced"
    zipf_exponent: float = 1.0
    profile: str = ""  # CSV file: one row per MoE layer, one count per routed expert

    def validate(self, prefix: str) -> None:
        r = self.num_redundant
        require(isinstance(r, int) and not isinstance(r, bool) and r >= 0,
                f"{prefix}.num_redundant", f"must be an integer >= 0, got {r!r}")
        require(self.load in EXPERT_LOADS, f"{prefix}.load",
                f"unknown load {self.load!r}; use one of {', '.join(EXPERT_LOADS)}")
        s = self.zipf_exponent
        require(isinstance(s, (int, float)) and not isinstance(s, bool) and 0 <= s <= 10,
                f"{prefix}.zipf_exponent", f"must be a number in [0, 10], got {s!r}")
        if self.load == "profile":
            require(bool(self.profile), f"{prefix}.profile",
                    "load=profile needs a profile file (CSV, one row per MoE layer)")


@dataclass
class LayoutConfig:
    """Parallel layout of one instance (see cosim.model.layout.ParallelLayout)."""

    tp: int = 1  # attention tensor parallel
    dp: int = 1  # attention data parallel (DP attention)
    ep: int = 1  # expert parallel
    moe_tp: int = 1  # expert tensor parallel

    def validate(self, prefix: str) -> None:
        for name in ("tp", "dp", "ep", "moe_tp"):
            v = getattr(self, name)
            require(isinstance(v, int) and v >= 1, f"{prefix}.{name}",
                    f"must be an integer >= 1, got {v!r}")

    def to_layout(self) -> ParallelLayout:
        return ParallelLayout(tp=self.tp, dp=self.dp, ep=self.ep, moe_tp=self.moe_tp)


@dataclass
class SchedulerConfig:
    """Continuous batching with chunked prefill (one scheduler per instance)."""

    # Tokens per iteration (decode tokens + prefill chunk tokens) per attention-DP rank;
    # the instance's budget is this times layout.dp (each DP rank batches its own requests).
    max_batched_tokens: int = 2048
    max_running_requests: int = 64  # per attention-DP rank (prefilling + decoding)
    chunked_prefill: bool = True  # False: a prompt is prefilled whole, in one iteration
    kv_block_tokens: int = 64  # paged-KV block size (prefix reuse is per full block)
    watermark: float = 0.01  # fraction of KV blocks kept free when admitting (vLLM's watermark)
    # How batches are formed (docs/serving.md, "Scheduler policies"). mixed: decode plus
    # chunked prefill in every iteration, admission when the prompt fits (vLLM V1).
    # guaranteed_no_evict: admission reserves KV for prompt + the whole output and nothing is
    # ever preempted (TensorRT-LLM's default capacity scheduler). prefill_first: prefill-only
    # iterations whenever prefill work can be formed, decode-only ones otherwise (SGLang
    # without --enable-mixed-chunk).
    policy: str = "mixed"
    # Decode cost lookups use the mean KV length on a grid of this many tokens and interpolate
    # linearly between grid points (so memoised costs are reused); 0: exact lengths.
    kv_len_grid_tokens: int = 256
    # Attention-DP balance (TensorRT-LLM attention_dp_config {enable_balance: true,
    # timeout_iters, batching_wait_iters}; PyExecutor._balance_adp_requests in
    # tensorrt_llm/_torch/pyexecutor/py_executor.py, 1.1): with dp > 1, an iteration runs the
    # ranks' context (prefill) requests only when every rank has one (and a free batch slot);
    # otherwise they wait while decode goes on, until a counter of such iterations (it counts
    # pure-decode iterations too) reaches adp_balance_timeout_iters, or a rank with work has no
    # decode request. adp_balance_batching_wait_iters: iterations to hold them even then, while
    # every rank decodes. 0: off (the default; TensorRT-LLM's too). docs/serving.md.
    adp_balance_timeout_iters: int = 0
    adp_balance_batching_wait_iters: int = 0
    # Batch waiting (TensorRT-LLM batch_wait_timeout_iters / batch_wait_max_tokens_ratio;
    # PyExecutor._waiting_requests, 1.1): in an iteration that has both decode and context
    # work, the context work waits until the batch's tokens reach batch_wait_max_tokens_ratio x
    # max_batched_tokens or it has waited batch_wait_timeout_iters such iterations. Only
    # without attention DP (dp = 1), as in TensorRT-LLM. 0 / 0.0: off (the default).
    batch_wait_timeout_iters: int = 0
    batch_wait_max_tokens_ratio: float = 0.0

    def validate(self, prefix: str) -> None:
        require(isinstance(self.batch_wait_timeout_iters, int)
                and self.batch_wait_timeout_iters >= 0, f"{prefix}.batch_wait_timeout_iters",
                f"must be an integer >= 0, got {self.batch_wait_timeout_iters!r}")
        require(0 <= self.batch_wait_max_tokens_ratio <= 1, f"{prefix}.batch_wait_max_tokens_ratio",
                f"must be in [0, 1], got {self.batch_wait_max_tokens_ratio}")
        for name in ("adp_balance_timeout_iters", "adp_balance_batching_wait_iters"):
            v = getattr(self, name)
            require(isinstance(v, int) and v >= 0, f"{prefix}.{name}",
                    f"must be an integer >= 0, got {v!r}")
        for name in ("max_batched_tokens", "max_running_requests", "kv_block_tokens"):
            v = getattr(self, name)
            require(isinstance(v, int) and v >= 1, f"{prefix}.{name}",
                    f"must be an integer >= 1, got {v!r}")
        require(self.policy in SCHEDULER_POLICIES, f"{prefix}.policy",
                f"unknown policy {self.policy!r}; use one of {', '.join(SCHEDULER_POLICIES)}")
        require(0 <= self.watermark < 1, f"{prefix}.watermark",
                f"must be in [0, 1), got {self.watermark}")
        require(self.kv_len_grid_tokens >= 0, f"{prefix}.kv_len_grid_tokens",
                f"must be >= 0, got {self.kv_len_grid_tokens}")


@dataclass
class MemoryConfig:
    """Per-GPU memory plan: weights + activations + runtime reserve; KV cache gets the rest."""

    gpu_memory_utilization: float = 0.90  # fraction of HBM the server may use (vLLM's default)
    # What gpu_memory_utilization is a fraction of (cosim.serving.memory_plan):
    # total: of HBM, covering weights + activations + reserve + KV (vLLM gpu_memory_utilization);
    # free: of the memory left after weights, activations and reserve, all of it KV
    # (TensorRT-LLM kv_cache_config.free_gpu_memory_fraction);
    # static: of HBM, covering weights + KV only, activations and reserve live in the rest
    # (SGLang --mem-fraction-static).
    fraction_of: str = "total"
    runtime_reserve_gb: float = 4.0  # CUDA context, NCCL/DeepEP buffers, CUDA graphs (GB, 1e9 B)
    activation_tokens: int = 0  # peak tokens per forward pass per GPU; 0: max_batched_tokens

    def validate(self, prefix: str) -> None:
        require(0 < self.gpu_memory_utilization <= 1, f"{prefix}.gpu_memory_utilization",
                f"must be in (0, 1], got {self.gpu_memory_utilization}")
        require(self.fraction_of in MEMORY_FRACTIONS, f"{prefix}.fraction_of",
                f"unknown {self.fraction_of!r}; use one of {', '.join(MEMORY_FRACTIONS)}")
        require(self.runtime_reserve_gb >= 0, f"{prefix}.runtime_reserve_gb",
                f"must be >= 0, got {self.runtime_reserve_gb}")
        require(self.activation_tokens >= 0, f"{prefix}.activation_tokens",
                f"must be >= 0, got {self.activation_tokens}")


@dataclass
class CommConfig:
    """Communication inside an iteration (EP dispatch/combine, TP all-reduce)."""

    # auto: the network group's backend (alpha_beta, analytical or ns3); none: free
    # communication (compute-only studies and closed-form tests).
    model: str = "auto"
    dispatch_dtype: str = "fp8"  # DeepEP dispatches FP8 (block-scaled) activations
    combine_dtype: str = "bfloat16"  # and combines in BF16 (DeepSeek-V3 report, sec. 3.2)
    # Fixed cost of one collective phase (kernel launch + synchronisation) on top of the
    # link latencies; NCCL/DeepEP small-message latencies are a few microseconds.
    launch_us: float = 5.0
    expert_imbalance: float = 0.0  # 0 = uniform expert load; see cosim.traffic
    # Token counts are rounded up to a geometric grid of this step (percent) before a fabric
    # simulation, so iterations that differ by a few tokens share one network result.
    token_grid_percent: float = 2.0

    def validate(self, prefix: str) -> None:
        require(self.model in ("auto", "alpha_beta", "fabric", "none"), f"{prefix}.model",
                f"unknown comm model {self.model!r}; use auto, alpha_beta, fabric or none")
        for name in ("dispatch_dtype", "combine_dtype"):
            v = getattr(self, name)
            require(v in DTYPES, f"{prefix}.{name}", f"unknown dtype {v!r}; use one of {', '.join(DTYPES)}")
        require(self.launch_us >= 0, f"{prefix}.launch_us", f"must be >= 0, got {self.launch_us}")
        require(self.expert_imbalance >= 0, f"{prefix}.expert_imbalance",
                f"must be >= 0, got {self.expert_imbalance}")
        require(0 <= self.token_grid_percent <= 100, f"{prefix}.token_grid_percent",
                f"must be in [0, 100], got {self.token_grid_percent}")


SPECULATIVE_METHODS = ("none", "mtp")


@dataclass
class SpeculativeConfig:
    """Speculative decoding (cosim.serving.speculative, docs/serving.md "MTP").

    mtp: the model's multi-token-prediction module (DeepSeek-V3 report, arXiv 2412.19437
    sec. 2.2: one transformer block + a projection, embedding and output head shared with
    the main model) drafts `draft_tokens` tokens one after another; the target model verifies
    the draft_tokens + 1 positions of every request in its step. With each draft token
    accepted with probability `acceptance`, independently, until the first rejection, a step
    yields E = sum_{i=0..k} a^i tokens (the accepted prefix plus the target's own token).
    SGLang: --speculative-algorithm EAGLE/NEXTN --speculative-num-steps k; vLLM:
    speculative_config {"method": "deepseek_mtp", "num_speculative_tokens": k}.
    """

    method: str = "none"  # none | mtp
    draft_tokens: int = 1  # k
    acceptance: float = 0.0  # a: per-token acceptance probability of a draft token

    def validate(self, prefix: str) -> None:
        require(self.method in SPECULATIVE_METHODS, f"{prefix}.method",
                f"must be one of {', '.join(SPECULATIVE_METHODS)}, got {self.method!r}")
        k = self.draft_tokens
        require(isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= 16,
                f"{prefix}.draft_tokens", f"must be an integer in 1..16, got {k!r}")
        require(0 <= self.acceptance <= 1, f"{prefix}.acceptance",
                f"must be in [0, 1], got {self.acceptance}")

    @property
    def tokens_per_step(self) -> float:
        """E = sum_{i=0..k} a^i: expected tokens a decode step emits (1 when off)."""
        if self.method == "none":
            return 1.0
        return float(sum(self.acceptance ** i for i in range(self.draft_tokens + 1)))


@dataclass
class RoleConfig:
    """A pool of identical instances with one role in a disaggregated deployment."""

    count: int = 1
    layout: LayoutConfig = field(default_factory=LayoutConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    # The role's own GPU kind (heterogeneous roles), composed from the hardware group:
    # `+hardware@deployment.roles.ffn.hardware=b200`. None: the run's `hardware`.
    hardware: HardwareConfig | None = None

    def validate(self, prefix: str) -> None:
        require(isinstance(self.count, int) and self.count >= 1, f"{prefix}.count",
                f"must be an integer >= 1, got {self.count!r}")
        self.layout.validate(f"{prefix}.layout")
        self.scheduler.validate(f"{prefix}.scheduler")
        if self.hardware is not None:
            self.hardware.validate(f"{prefix}.hardware")


@dataclass
class DeploymentConfig:
    kind: str = "chunked"  # chunked | pd | afd | pd_afd (cosim.serving.deployments registry)
    replicas: int = 1  # aggregated instances
    layout: LayoutConfig = field(default_factory=LayoutConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    router: str = "round_robin"  # round_robin | least_loaded | prefix_aware
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    comm: CommConfig = field(default_factory=CommConfig)
    # Disaggregated deployments: role name (prefill, decode, attention, ffn) -> its instances.
    roles: dict[str, RoleConfig] = field(default_factory=dict)
    # AFD (afd, pd_afd): micro-batches per decode iteration that ping-pong between the
    # attention and FFN groups so transfers hide behind compute (MegaScale-Infer: 2-4).
    # `options.micro_batches`, when given, overrides it (older configs).
    micro_batches: int = 3
    # How an AFD micro-batch is priced. per_microbatch (default): each micro-batch's
    # attention and FFN are priced at its own size, so kernels' latency floors count m
    # times (MegaScale-Infer's ping-pong pipeline, arXiv 2504.02263, runs each micro-batch
    # as its own kernels). linear_split: stage times at the full batch divided by m, the
    # optimistic reading `t_sum/m + (m-1)/m * t_max` (arXiv 2605.28302's AIC++ framework).
    micro_batch_cost: str = "per_microbatch"
    # Where the AFD roles' GPUs sit (afd, pd_afd); the default keeps the contiguous blocks.
    placement: PlacementConfig = field(default_factory=PlacementConfig)
    # Communication/compute overlap inside the iterations of chunked and pd (and pd_afd's
    # prefill) instances. none: an iteration is compute + communication. two_batch: the batch
    # is split into two micro-batches whose EP dispatch/combine (and TP all-reduce) run on a
    # communication stream while the other micro-batch computes, as SGLang's
    # --enable-two-batch-overlap, vLLM's dual-batch overlap (--enable-dbo) and DeepSeek's
    # inference profile (github.com/deepseek-ai/profile-data: two micro-batches, DualPipe-style
    # overlap) do; cosim.serving.two_batch, docs/serving.md "Two-batch overlap". AFD units
    # keep their own ping-pong (micro_batches).
    overlap: str = "none"
    speculative: SpeculativeConfig = field(default_factory=SpeculativeConfig)
    experts: ExpertsConfig = field(default_factory=ExpertsConfig)  # see docs/experts.md
    options: dict[str, Any] = field(default_factory=dict)  # deployment-specific knobs

    def validate(self, prefix: str = "deployment") -> None:
        kinds = known_deployments()
        require(self.kind in kinds or "." in self.kind, f"{prefix}.kind",
                f"unknown deployment {self.kind!r}; available: {', '.join(sorted(kinds))}")
        require(isinstance(self.replicas, int) and self.replicas >= 1, f"{prefix}.replicas",
                f"must be an integer >= 1, got {self.replicas!r}")
        self.layout.validate(f"{prefix}.layout")
        self.scheduler.validate(f"{prefix}.scheduler")
        require(self.router in ROUTERS, f"{prefix}.router",
                f"unknown router {self.router!r}; use one of {', '.join(ROUTERS)}")
        self.memory.validate(f"{prefix}.memory")
        self.comm.validate(f"{prefix}.comm")
        self.experts.validate(f"{prefix}.experts")
        if self.experts.load != "balanced" and self.comm.expert_imbalance > 0:
            require(False, f"{prefix}.comm.expert_imbalance",
                    f"set it to 0 with {prefix}.experts.load={self.experts.load}: the experts' "
                    "load gives the traffic its skew")
        m = self.micro_batches
        require(isinstance(m, int) and not isinstance(m, bool) and 1 <= m <= 16,
                f"{prefix}.micro_batches", f"must be an integer in 1..16, got {m!r}")
        require(self.micro_batch_cost in MICRO_BATCH_COSTS, f"{prefix}.micro_batch_cost",
                f"must be one of {', '.join(MICRO_BATCH_COSTS)}, got {self.micro_batch_cost!r}")
        require(self.overlap in OVERLAPS, f"{prefix}.overlap",
                f"must be one of {', '.join(OVERLAPS)}, got {self.overlap!r}")
        self.speculative.validate(f"{prefix}.speculative")
        require(self.speculative.method == "none" or self.kind not in ("afd", "pd_afd"),
                f"{prefix}.speculative.method",
                "speculative decoding is modelled for chunked and pd instances, not AFD units")
        for name, role in self.roles.items():
            role.validate(f"{prefix}.roles.{name}")
        self.placement.validate(f"{prefix}.placement")
        require(self.placement.is_default() or self.kind in ("afd", "pd_afd"),
                f"{prefix}.placement",
                f"places the AFD roles (attention, ffn) of afd and pd_afd; deployment "
                f"{self.kind!r} has none (its instances are contiguous blocks)")
        if self.kind in ("pd", "afd", "pd_afd"):
            # roles and options of the disaggregated kinds, checked before anything is built
            validate_disagg(self, prefix)

    def check_model(self, num_experts: int | None, prefix: str = "deployment") -> None:
        """Checks that need the model spec. Any ep holds the routed experts: an uneven
        placement (cosim.experts.place_experts) gives E mod ep GPUs one more expert."""
        return None
