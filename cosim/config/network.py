"""Config group `network`: which backend times the fabric's flows, its cache and its knobs.

hydra_configs/network/{analytical,ns3}.yaml select a backend; every field below can be
overridden on the command line (`network.cache.grid_percent=5`, `network.ns3.transport=dctcp`,
`network.ns3.endpoints=[tcp://host:5555]`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import MISSING

from cosim.errors import require

BACKENDS = ("analytical", "ns3", "alpha_beta")
MODES = ("phase", "iteration")
TRANSPORTS = ("lossless", "dctcp", "tcp")
EP_KERNEL_MODES = ("normal", "low_latency", "auto")


@dataclass
class CacheConfig:
    """Result cache in front of the backend (cosim.network.cache)."""

    enabled: bool = True
    # sqlite file shared by the runs of a sweep; null: <cosim.paths.cache_dir()>/network.sqlite
    path: str | None = None
    # Flow sizes are rounded UP to a geometric grid of this step (percent), so batches that
    # differ by a few tokens share one result; the reported times are then conservative.
    grid_percent: float = 2.0
    exact: bool = False  # true: no bucketing, key on exact byte counts
    memory_entries: int = 4096  # in-process LRU in front of sqlite

    def validate(self, prefix: str = "network.cache") -> None:
        require(self.grid_percent > 0 and self.grid_percent <= 100, f"{prefix}.grid_percent",
                f"must be in (0, 100], got {self.grid_percent}")
        require(self.memory_entries >= 0, f"{prefix}.memory_entries",
                f"must be >= 0, got {self.memory_entries}")


@dataclass
class AnalyticalConfig:
    """Flow-level max-min fair-share backend (cosim.network.analytical)."""

    # Store-and-forward fill of the pipeline: each hop adds frame_bytes / line rate to a
    # flow's latency. 0 = pure propagation + switch latency.
    frame_bytes: int = 0
    # Speed knob for batches of many different flow sizes: finish events within rtol x
    # elapsed time are merged and fair shares are filled with rtol slack (docs/network.md
    # gives the measured error). 0 = exact max-min at every event.
    rtol: float = 0.01

    def validate(self, prefix: str = "network.analytical") -> None:
        require(self.frame_bytes >= 0, f"{prefix}.frame_bytes",
                f"must be >= 0, got {self.frame_bytes}")
        require(0 <= self.rtol <= 0.1, f"{prefix}.rtol", f"must be in [0, 0.1], got {self.rtol}")


@dataclass
class CurveConfig:
    """CurveZMQ keys for network.ns3.endpoints (docs/ns3.md, "Authentication").

    Both unset: no encryption or authentication (what a local or loopback server needs).
    """

    # The server's public key file: <the server's --keys DIR>/server.key
    server_public_key: str | None = None
    # This client's key pair, NAME.key_secret from `cosim-ns3-server keygen DIR --name NAME`
    # (its public half NAME.key goes into the server's DIR/authorized/)
    client_secret_key: str | None = None

    @property
    def enabled(self) -> bool:
        return self.server_public_key is not None or self.client_secret_key is not None

    def validate(self, prefix: str = "network.ns3.curve") -> None:
        if not self.enabled:
            return
        for name, other in (("server_public_key", "client_secret_key"),
                            ("client_secret_key", "server_public_key")):
            require(getattr(self, name) is not None, f"{prefix}.{name}",
                    f"must be set together with {prefix}.{other}")
        for name in ("server_public_key", "client_secret_key"):
            v = getattr(self, name)
            require(Path(str(v)).expanduser().is_file(), f"{prefix}.{name}",
                    f"file {v} does not exist or is not a file")


@dataclass
class Ns3Config:
    """Packet-level ns-3 backend (cosim.network.ns3, server in its own process over ZeroMQ)."""

    # Already-running servers (e.g. ["tcp://10.0.0.5:5555"]); empty: start one locally on
    # demand and stop it at exit. Several endpoints = batches run in parallel.
    endpoints: list[str] = field(default_factory=list)
    transport: str = "lossless"  # lossless (line-rate, deep queues ~ RDMA+PFC) | dctcp | tcp
    frame_bytes: int = 9000  # payload + headers per packet; fidelity vs speed knob
    timeout_s: float = 600.0  # per request, wall clock
    retries: int = 2  # resends after a timeout or a dead local server (restarted first)
    max_batch_flows: int = 1_000_000  # larger batches are refused before they reach ns-3
    # Total wait for a configured endpoint's first answer (all tries): a server that is not
    # there fails fast with one line instead of waiting timeout_s per try.
    connect_timeout_s: float = 20.0
    start_timeout_s: float = 60.0  # wait for a local server's readiness (ns-3 import ~2-10 s)
    curve: CurveConfig = field(default_factory=CurveConfig)  # keys for remote endpoints

    def validate(self, prefix: str = "network.ns3") -> None:
        require(self.transport in TRANSPORTS, f"{prefix}.transport",
                f"unknown transport {self.transport!r}; use one of {', '.join(TRANSPORTS)}")
        # Point-to-point MTU tops out at 65535 (NS3_NOTES: larger values are NS_FATAL).
        require(64 <= self.frame_bytes <= 65535, f"{prefix}.frame_bytes",
                f"must be in [64, 65535], got {self.frame_bytes}")
        for name in ("timeout_s", "start_timeout_s", "connect_timeout_s"):
            v = getattr(self, name)
            require(v > 0, f"{prefix}.{name}", f"must be > 0, got {v}")
        require(self.retries >= 0, f"{prefix}.retries", f"must be >= 0, got {self.retries}")
        require(self.max_batch_flows >= 1, f"{prefix}.max_batch_flows",
                f"must be >= 1, got {self.max_batch_flows}")
        for i, ep in enumerate(self.endpoints):
            require(isinstance(ep, str) and ep.startswith(("tcp://", "ipc://")),
                    f"{prefix}.endpoints[{i}]", f"expected tcp://host:port or ipc://path, got {ep!r}")
        self.curve.validate(f"{prefix}.curve")
        require(not self.curve.enabled or bool(self.endpoints), f"{prefix}.curve",
                f"keys are for servers in {prefix}.endpoints, and none is set (the local "
                "server the client starts itself needs none)")


@dataclass
class NetworkConfig:
    backend: str = MISSING  # analytical | ns3 | alpha_beta
    # phase: one batch of flows per communication phase (dispatch, combine, ...);
    # iteration: a whole iteration's flows with start times in one batch (later).
    mode: str = "phase"
    cache: CacheConfig = field(default_factory=CacheConfig)
    analytical: AnalyticalConfig = field(default_factory=AnalyticalConfig)
    ns3: Ns3Config = field(default_factory=Ns3Config)
    # DeepEP kernel family of the EP dispatch/combine inside chunked/pd iterations
    # (docs/network.md "EP kernel modes"). normal: node-deduplicated sends forwarded over
    # NVLink (one copy per destination GPU inside a server), per-kernel cost
    # deployment.comm.launch_us (today's model). low_latency: flat per-expert sends of
    # fixed-size messages (16-byte header + payload, DeepEP csrc/kernels/internode_ll.cu)
    # into buffers of ep_low_latency_max_tokens tokens per rank, per-kernel cost
    # ep_low_latency_us. auto: low_latency for decode-only iterations, normal for any with
    # prefill (SGLang --deepep-mode auto, sgl-project/sglang PR #4767; vLLM's DeepEP
    # low-latency backend serves decode, high-throughput prefill).
    ep_kernel_mode: str = "normal"
    # Fixed cost of one low-latency kernel (us): the README gives latencies at 128 tokens
    # only (deepseek-ai/DeepEP docs/legacy.md, H800 + CX7, top-8, FP8 dispatch / BF16
    # combine); the intercept of the line through each EP size's dispatch and combine point
    # (bytes vs latency), median over EP 8..256, is 25.5 us (spread 3-37 us):
    # scripts/ep_kernel_example.py derives it.
    ep_low_latency_us: float = 25.5
    # Tokens per rank a low-latency buffer holds (SGLang's
    # SGLANG_DEEPEP_NUM_MAX_DISPATCH_TOKENS_PER_RANK default 128; DeepEP asserts a call never
    # exceeds it): more tokens per GPU run ceil(t / max) low-latency rounds.
    ep_low_latency_max_tokens: int = 128

    def validate(self, prefix: str = "network") -> None:
        require(self.backend in BACKENDS, f"{prefix}.backend",
                f"unknown backend {self.backend!r}; use one of {', '.join(BACKENDS)}")
        require(self.mode in MODES, f"{prefix}.mode",
                f"unknown mode {self.mode!r}; use one of {', '.join(MODES)}")
        require(self.ep_kernel_mode in EP_KERNEL_MODES, f"{prefix}.ep_kernel_mode",
                f"unknown EP kernel mode {self.ep_kernel_mode!r}; use one of "
                f"{', '.join(EP_KERNEL_MODES)}")
        require(self.ep_low_latency_us >= 0, f"{prefix}.ep_low_latency_us",
                f"must be >= 0, got {self.ep_low_latency_us}")
        require(isinstance(self.ep_low_latency_max_tokens, int)
                and self.ep_low_latency_max_tokens >= 1, f"{prefix}.ep_low_latency_max_tokens",
                f"must be an integer >= 1, got {self.ep_low_latency_max_tokens!r}")
        self.cache.validate(f"{prefix}.cache")
        self.analytical.validate(f"{prefix}.analytical")
        self.ns3.validate(f"{prefix}.ns3")
