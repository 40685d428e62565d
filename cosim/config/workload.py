"""Config group `workload`: request lengths, sessions and arrivals (hydra_configs/workload/).

A request is a *reused prefix* (tokens whose KV may already be cached: a shared system
prompt / document for the first turn of a session, the whole previous context for later
turns), *new input* tokens and *output* tokens. Lengths are distributions around a mean
(`cv` = standard deviation / mean). `kind: trace` replays a recorded request trace instead.
See docs/serving.md ("Workloads").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from omegaconf import MISSING

from cosim.errors import require

LENGTH_DISTRIBUTIONS = ("lognormal", "gamma", "uniform", "constant")
ARRIVAL_PROCESSES = ("poisson", "gamma", "closed_loop", "burst", "trace")
WORKLOAD_KINDS = ("synthetic", "trace")


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


@dataclass
class LengthConfig:
    """A token-length distribution: `mean`, spread `cv` (std / mean), optional clipping."""

    mean: float = 0.0
    cv: float = 0.0  # 0: every draw equals the mean
    dist: str = "lognormal"  # lognormal | gamma | uniform (mean +- sqrt(3) cv mean) | constant
    min: int = 0  # draws are clipped to [min, max]
    max: int = 0  # 0: no upper clip

    def validate(self, prefix: str) -> None:
        require(_finite(self.mean) and self.mean >= 0, f"{prefix}.mean",
                f"must be a finite number >= 0, got {self.mean!r}")
        require(_finite(self.cv) and self.cv >= 0, f"{prefix}.cv",
                f"must be a finite number >= 0, got {self.cv!r}")
        require(self.dist in LENGTH_DISTRIBUTIONS, f"{prefix}.dist",
                f"unknown distribution {self.dist!r}; use one of {', '.join(LENGTH_DISTRIBUTIONS)}")
        require(self.min >= 0, f"{prefix}.min", f"must be >= 0, got {self.min}")
        require(self.max == 0 or self.max >= self.min, f"{prefix}.max",
                f"must be 0 (no cap) or >= min ({self.min}), got {self.max}")
        if self.dist == "uniform":
            require(self.cv <= 1 / math.sqrt(3), f"{prefix}.cv",
                    f"uniform lengths need cv <= {1 / math.sqrt(3):.3f} (no negative lengths)")


@dataclass
class ArrivalConfig:
    """When sessions start. Later turns of a session follow the previous turn's completion."""

    # poisson: exponential gaps at rate_per_s; gamma: gamma gaps with the given cv (burstiness);
    # closed_loop: `users` concurrent users, each starts its next session when the last
    # finishes (after a think time); burst: everything at t=0; trace: the trace's timestamps.
    process: str = "poisson"
    rate_per_s: float = 1.0  # new sessions per second (= requests/s for one-turn sessions)
    cv: float = 1.0  # gamma: coefficient of variation of the gaps (1 = Poisson)
    users: int = 0  # closed_loop: concurrent users
    think_time_s: float = 0.0  # mean (exponential) pause before a session's next turn / a user's next session

    def validate(self, prefix: str) -> None:
        require(self.process in ARRIVAL_PROCESSES, f"{prefix}.process",
                f"unknown process {self.process!r}; use one of {', '.join(ARRIVAL_PROCESSES)}")
        require(_finite(self.rate_per_s) and self.rate_per_s > 0, f"{prefix}.rate_per_s",
                f"must be a finite number > 0, got {self.rate_per_s!r}")
        require(_finite(self.cv) and self.cv > 0, f"{prefix}.cv",
                f"must be a finite number > 0, got {self.cv!r}")
        require(_finite(self.think_time_s) and self.think_time_s >= 0, f"{prefix}.think_time_s",
                f"must be a finite number >= 0, got {self.think_time_s!r}")
        require(self.users >= 0, f"{prefix}.users", f"must be >= 0, got {self.users}")
        if self.process == "closed_loop":
            require(self.users >= 1, f"{prefix}.users", "closed_loop needs users >= 1")


TRACE_FORMATS = ("auto", "mooncake", "bailian", "azure", "burstgpt", "cosim")


@dataclass
class TraceConfig:
    """A recorded request trace (cosim.workload.traces; docs/traces.md).

    The options after `block_tokens` apply to every format, in the order listed (window,
    sampling, then the workload.num_requests cap, then time_scale or rate_per_s).
    """

    path: str = ""  # absolute, or relative to the traces/ folder
    # auto (told from the file) | mooncake | bailian | azure | burstgpt | cosim (requests.parquet)
    format: str = "auto"
    block_tokens: int = 512  # tokens covered by one hash_id (Mooncake: 512, Bailian: 16)
    # sessions starting in [window_start_s, window_end_s) s after the file's first request
    window_start_s: float = 0.0
    window_end_s: float | None = None  # null: to the end
    sample_fraction: float = 1.0  # keep this share of conversations (seeded, see sample_seed)
    sample_seed: int = 0
    time_scale: float = 1.0  # timestamps are multiplied by this (0.5 = replay twice as fast)
    rate_per_s: float | None = None  # rescale times to this mean request rate (null: keep)
    on_error: str = "error"  # error: a bad line stops the run naming file, line, field; skip: count
    # CSV formats: a column naming each request's session (e.g. a conversation id column of a
    # later BurstGPT release); sampling then keeps or drops a session whole. "": none.
    session_column: str = ""

    def validate(self, prefix: str) -> None:
        require(self.format in TRACE_FORMATS, f"{prefix}.format",
                f"must be one of {', '.join(TRACE_FORMATS)}, got {self.format!r}")
        require(self.block_tokens >= 1, f"{prefix}.block_tokens",
                f"must be >= 1, got {self.block_tokens}")
        require(_finite(self.time_scale) and self.time_scale > 0, f"{prefix}.time_scale",
                f"must be a finite number > 0, got {self.time_scale!r}")
        require(_finite(self.window_start_s) and self.window_start_s >= 0,
                f"{prefix}.window_start_s", f"must be a number >= 0, got {self.window_start_s!r}")
        if self.window_end_s is not None:
            require(_finite(self.window_end_s) and self.window_end_s > self.window_start_s,
                    f"{prefix}.window_end_s",
                    f"must be null or a number > window_start_s ({self.window_start_s:g}), "
                    f"got {self.window_end_s!r}")
        require(_finite(self.sample_fraction) and 0 < self.sample_fraction <= 1,
                f"{prefix}.sample_fraction", f"must be in (0, 1], got {self.sample_fraction!r}")
        require(isinstance(self.sample_seed, int) and self.sample_seed >= 0,
                f"{prefix}.sample_seed", f"must be an integer >= 0, got {self.sample_seed!r}")
        if self.rate_per_s is not None:
            require(_finite(self.rate_per_s) and self.rate_per_s > 0, f"{prefix}.rate_per_s",
                    f"must be null or a number > 0, got {self.rate_per_s!r}")
            require(self.time_scale == 1.0, f"{prefix}.rate_per_s",
                    "set either rate_per_s or time_scale, not both")
        require(self.on_error in ("error", "skip"), f"{prefix}.on_error",
                f"must be error or skip, got {self.on_error!r}")


@dataclass
class WorkloadConfig:
    name: str = MISSING
    kind: str = "synthetic"  # synthetic | trace
    num_requests: int = 200  # requests (turns) to simulate; a trace is cut after this many
    prefix_tokens: LengthConfig = field(default_factory=lambda: LengthConfig(mean=0.0))
    input_tokens: LengthConfig = field(default_factory=lambda: LengthConfig(mean=512.0))
    output_tokens: LengthConfig = field(default_factory=lambda: LengthConfig(mean=256.0))
    # Number of distinct shared prefixes the first turn's reused prefix is drawn from (uniformly);
    # their lengths are drawn once per prefix from `prefix_tokens`. 0: every session has its
    # own prefix, so nothing is shared across sessions.
    prefix_pool: int = 0
    turns: LengthConfig = field(default_factory=lambda: LengthConfig(mean=1.0))  # requests per session
    # Sessions end before their context would pass this; 0: the model's context length.
    max_context_tokens: int = 0
    # true: each entry instance's prefix cache starts holding the pool's shared prefixes
    # (unreferenced, evictable; as many whole-block chains as its free KV blocks take), the
    # steady state of a server whose system prompts are already cached (SGLang's RadixAttention
    # and vLLM's automatic prefix caching keep them after their first use:
    # https://docs.vllm.ai/en/latest/design/prefix_caching.html, Zheng et al. 2024,
    # arXiv 2312.07104). false: every run starts cold. Needs prefix_pool >= 1 (synthetic).
    warm_prefixes: bool = False
    arrival: ArrivalConfig = field(default_factory=ArrivalConfig)
    trace: TraceConfig = field(default_factory=TraceConfig)

    def validate(self, prefix: str = "workload") -> None:
        require(self.kind in WORKLOAD_KINDS, f"{prefix}.kind",
                f"unknown kind {self.kind!r}; use one of {', '.join(WORKLOAD_KINDS)}")
        require(self.num_requests >= 1, f"{prefix}.num_requests",
                f"must be >= 1, got {self.num_requests}")
        for name in ("prefix_tokens", "input_tokens", "output_tokens", "turns"):
            getattr(self, name).validate(f"{prefix}.{name}")
        require(self.output_tokens.mean >= 1, f"{prefix}.output_tokens.mean",
                f"must be >= 1 (every request produces a token), got {self.output_tokens.mean}")
        require(self.prefix_tokens.mean + self.input_tokens.mean >= 1, f"{prefix}.input_tokens.mean",
                "prefix_tokens.mean + input_tokens.mean must be >= 1")
        require(self.turns.mean >= 1, f"{prefix}.turns.mean", f"must be >= 1, got {self.turns.mean}")
        require(self.prefix_pool >= 0, f"{prefix}.prefix_pool", f"must be >= 0, got {self.prefix_pool}")
        require(self.max_context_tokens >= 0, f"{prefix}.max_context_tokens",
                f"must be >= 0, got {self.max_context_tokens}")
        if self.warm_prefixes:
            require(self.kind == "synthetic" and self.prefix_pool >= 1, f"{prefix}.warm_prefixes",
                    "needs shared prefixes to warm: a synthetic workload with prefix_pool >= 1")
        self.arrival.validate(f"{prefix}.arrival")
        self.trace.validate(f"{prefix}.trace")
        if self.kind == "trace":
            require(bool(self.trace.path), f"{prefix}.trace.path", "kind=trace needs a trace file")
        if self.arrival.process == "trace":
            require(self.kind == "trace", f"{prefix}.arrival.process",
                    "process=trace needs kind=trace (timestamps come from the trace)")

    def context_limit(self, model_max_context: int) -> int:
        """Longest context (prompt + output) a request may have."""
        if self.max_context_tokens:
            return min(int(self.max_context_tokens), int(model_max_context))
        return int(model_max_context)

    def check_context(self, max_context: int, prefix: str = "workload") -> None:
        """Raise ConfigError when the mean request cannot fit the model's context."""
        if self.kind == "trace":
            return  # checked line by line when the trace is read
        ctx = self.context_limit(max_context)
        isl = self.prefix_tokens.mean + self.input_tokens.mean
        where = "model context" if ctx == max_context else f"{prefix}.max_context_tokens"
        if self.prefix_tokens.mean >= ctx:
            field_name = f"{prefix}.prefix_tokens.mean"
        else:
            field_name = f"{prefix}.input_tokens.mean"
        require(isl < ctx, field_name,
                f"input length (prefix {self.prefix_tokens.mean:g} + new {self.input_tokens.mean:g}"
                f" = {isl:g} tokens) does not fit the {where} of {ctx} tokens")
        require(isl + self.output_tokens.mean <= ctx, f"{prefix}.output_tokens.mean",
                f"input {isl:g} + output {self.output_tokens.mean:g} tokens exceed the {where} "
                f"of {ctx} tokens")
