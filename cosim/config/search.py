"""Config group `search` of the `cosim-search` app: the GPU budget, the kinds, the SLO target
and the design space the candidates are drawn from (hydra_configs/search/default.yaml).

The space lists the values each knob may take; cosim.search.space combines them into
layouts whose GPU counts stay within `gpus` (and fill it: no further instance would fit).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cosim.config import Config
from cosim.config.apps import app_schema
from cosim.errors import require

KINDS = ("chunked", "pd", "afd", "pd_afd")
OBJECTIVES = ("tok_s_per_gpu", "tok_s_per_user", "usd_per_mtok")
CONFIRM = ("none", "ns3")
EXECUTORS = ("joblib", "submitit", "ray")
CLUSTERS = ("slurm", "local", "debug")


@dataclass
class ClusterConfig:
    """Where evaluations run off this machine (search.executor=submitit or ray)."""

    # submitit: `slurm` submits one array task per evaluation; `local` runs each in a
    # subprocess of this machine through the same executor; `debug` in this process.
    cluster: str = "slurm"
    folder: str | None = None  # submitit's job files (default: <run dir>/submitit)
    partition: str | None = None  # Slurm partition (null: the cluster's default)
    timeout_min: int = 120  # per evaluation
    cpus_per_task: int = 1  # a cosim run is single-threaded (2 with network=ns3)
    mem_gb: float = 8.0
    array_parallelism: int = 256  # Slurm array tasks running at once
    ray_address: str | None = "auto"  # ray: a running cluster (null: start a local one)

    def validate(self, prefix: str) -> None:
        require(self.cluster in CLUSTERS, f"{prefix}.cluster",
                f"unknown cluster {self.cluster!r}; use {', '.join(CLUSTERS)}")
        for name in ("timeout_min", "cpus_per_task", "array_parallelism"):
            v = getattr(self, name)
            require(isinstance(v, int) and v >= 1, f"{prefix}.{name}",
                    f"must be an integer >= 1, got {v!r}")
        require(self.mem_gb > 0, f"{prefix}.mem_gb", f"must be > 0, got {self.mem_gb}")


@dataclass
class SpaceConfig:
    """Values each layout knob may take (instance GPU counts are products of them)."""

    # Aggregated (chunked) replicas and P/D instances: attention tp x dp = expert ep x moe_tp
    # GPUs per instance; sizes above the server's GPU count are wide EP across servers.
    instance_gpus: list[int] = field(default_factory=lambda: [4, 8, 16, 32, 64, 128])
    tp: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    moe_tp: list[int] = field(default_factory=lambda: [1])
    # P/D and P/D+AFD: prefill instance sizes, decode instance sizes from instance_gpus, and at
    # most this many prefill instances (x in xP:yD; y fills the rest of the budget).
    prefill_gpus: list[int] = field(default_factory=lambda: [8, 16])
    max_prefill_instances: int = 8
    # AFD unit: M attention GPUs (tp x dp) + N FFN GPUs (ep x moe_tp), m micro-batches
    attention_gpus: list[int] = field(default_factory=lambda: [4, 8, 16, 32])
    attention_tp: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    ffn_gpus: list[int] = field(default_factory=lambda: [4, 8, 16, 32, 64, 120, 128])
    micro_batches: list[int] = field(default_factory=lambda: [1, 2, 3, 4])

    def validate(self, prefix: str) -> None:
        for name in ("instance_gpus", "prefill_gpus", "tp", "moe_tp", "attention_gpus", "attention_tp",
                     "ffn_gpus", "micro_batches"):
            vals = list(getattr(self, name))
            require(bool(vals) and all(isinstance(v, int) and v >= 1 for v in vals),
                    f"{prefix}.{name}", f"must be a non-empty list of integers >= 1, got {vals!r}")
        require(all(1 <= m <= 16 for m in self.micro_batches), f"{prefix}.micro_batches",
                "micro-batches must be in 1..16")
        require(self.max_prefill_instances >= 1, f"{prefix}.max_prefill_instances",
                f"must be >= 1, got {self.max_prefill_instances}")


@dataclass
class SearchConfig:
    gpus: int = 16  # the GPU budget: candidates use at most this many
    kinds: list[str] = field(default_factory=lambda: list(KINDS))
    slo_attainment: float = 0.9  # fraction of measured requests meeting TTFT and TPOT
    objective: str = "tok_s_per_gpu"  # tok_s_per_gpu | tok_s_per_user | usd_per_mtok
    space: SpaceConfig = field(default_factory=SpaceConfig)
    # Static stage: every candidate is run at ONE user (closed loop, no queueing by
    # construction) for `static_requests` requests; its memory plan, its TTFT/TPOT there and
    # an upper bound on tokens/s per GPU (concurrency the KV cache and the scheduler caps
    # allow / (GPUs x one-user TPOT); TPOT only grows with the batch) come from that run.
    static_requests: int = 4
    keep_per_kind: int = 3  # simulate the kind's candidates with the highest bound (0: all)
    # Simulation stage: closed-loop users, bisected to the most that meet slo_attainment.
    requests: int = 160  # requests per simulation (at least 3 per user)
    warmup_fraction: float = 0.25  # the first requests (by arrival) are warm-up, not measured
    bisection_steps: int = 5  # load evaluations per candidate after the doubling bracket
    max_users: int = 4096  # closed-loop bisection ceiling
    jobs: int = -1  # joblib workers (-1: all cores); with executor=ray, Ray workers
    # joblib (this machine) | submitit (Slurm, or `local` subprocesses) | ray (joblib's Ray
    # backend): cosim.search.executors
    executor: str = "joblib"
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    # Scheduler caps set from the layout: running requests per attention-DP rank =
    # running_per_gpu x tp (a TP group shares one batch), capped by what the KV cache holds.
    running_per_gpu: int = 64
    confirm: str = "none"  # ns3: re-run each kind's best with the packet-level fabric
    # Start every run with the workload's shared prefixes in the prefix caches (steady-state
    # serving holds its system prompts: vLLM automatic prefix caching, SGLang RadixAttention),
    # so short runs are not judged on cold first uses; only for workloads with a prefix pool.
    warm_prefixes: bool = True

    def validate(self, prefix: str = "search") -> None:
        require(isinstance(self.gpus, int) and self.gpus >= 1, f"{prefix}.gpus",
                f"must be an integer >= 1, got {self.gpus!r}")
        require(bool(self.kinds), f"{prefix}.kinds", "must name at least one kind")
        for k in self.kinds:
            require(k in KINDS, f"{prefix}.kinds", f"unknown kind {k!r}; use {', '.join(KINDS)}")
        require(0 < self.slo_attainment <= 1, f"{prefix}.slo_attainment",
                f"must be in (0, 1], got {self.slo_attainment}")
        require(self.objective in OBJECTIVES, f"{prefix}.objective",
                f"unknown objective {self.objective!r}; use {', '.join(OBJECTIVES)}")
        require(self.confirm in CONFIRM, f"{prefix}.confirm",
                f"unknown confirm {self.confirm!r}; use {', '.join(CONFIRM)}")
        require(self.static_requests >= 1, f"{prefix}.static_requests",
                f"must be >= 1, got {self.static_requests}")
        require(self.keep_per_kind >= 0, f"{prefix}.keep_per_kind",
                f"must be >= 0, got {self.keep_per_kind}")
        require(self.max_users >= 1, f"{prefix}.max_users", f"must be >= 1, got {self.max_users}")
        require(self.requests >= 10, f"{prefix}.requests", f"must be >= 10, got {self.requests}")
        require(0 <= self.warmup_fraction < 0.9, f"{prefix}.warmup_fraction",
                f"must be in [0, 0.9), got {self.warmup_fraction}")
        require(self.bisection_steps >= 1, f"{prefix}.bisection_steps",
                f"must be >= 1, got {self.bisection_steps}")
        require(self.running_per_gpu >= 1, f"{prefix}.running_per_gpu",
                f"must be >= 1, got {self.running_per_gpu}")
        require(self.executor in EXECUTORS, f"{prefix}.executor",
                f"unknown executor {self.executor!r}; use {', '.join(EXECUTORS)}")
        self.cluster.validate(f"{prefix}.cluster")
        self.space.validate(f"{prefix}.space")


@app_schema("search_schema")
@dataclass
class SearchAppConfig(Config):
    """Root config of `cosim-search` (hydra_configs/search.yaml): cosim's groups + `search`."""

    search: SearchConfig = field(default_factory=SearchConfig)
