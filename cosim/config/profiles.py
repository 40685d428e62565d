"""Framework profiles: what TensorRT-LLM, SGLang and vLLM do by default (`compute.profile`).

`compute.profile: none` (default) leaves every config value as it is. `framework` fills, for
`compute.framework`, the serving settings the framework uses when the user does not set them
(its documented defaults or its code, version-pinned below and in docs/serving.md, "Framework
profiles"): scheduler policy, tokens per iteration, chunked prefill, running-request limit,
KV-cache dtype, what the memory fraction is a fraction of, and its value.

A setting is filled only where the config still holds the schema's default for that key
(the value a run has when nobody set it); a key set to anything else keeps its value, and the
keys listed in `compute.profile_keep` are left alone even at their schema default (to keep
e.g. policy=mixed under the TensorRT-LLM profile). Settings for keys that do not exist in
this build (options other work adds: deployment.overlap, network.ep_kernel_mode) are skipped.
`apply_profile` returns what it set; the run's summary records it (notes.profile).

Versions: TensorRT-LLM 1.1 (the H200 silicon rows' 1.1.0rc2), SGLang 0.4.9-0.5.x (the
server_args.py heuristics quoted), vLLM 0.10-0.1x (engine/arg_utils.py get_batch_defaults).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

GIB = 1024**3

# where each value comes from (docs/serving.md repeats them in its table)
TRTLLM_RUNTIME_FLAGS = ("https://nvidia.github.io/TensorRT-LLM/performance/performance-tuning-guide/"
                        "useful-runtime-flags.html")
TRTLLM_SERVE = "https://nvidia.github.io/TensorRT-LLM/0.18.2/commands/trtllm-serve.html"
TRTLLM_RECIPES = "https://nvidia.github.io/TensorRT-LLM/deployment-guide/index.html"
TRTLLM_DEEPSEEK_SERVE = ("https://nvidia.github.io/TensorRT-LLM/1.3.0rc11/examples/"
                         "deepseek_r1_reasoning_parser.html")
SGLANG_SERVER_ARGS = ("https://github.com/sgl-project/sglang/blob/main/python/sglang/srt/"
                      "server_args.py")
VLLM_ARG_UTILS = "https://github.com/vllm-project/vllm/blob/main/vllm/engine/arg_utils.py"
VLLM_OPTIMIZATION = "https://docs.vllm.ai/en/latest/configuration/optimization.html"


@dataclass(frozen=True)
class Setting:
    """One profile value: a dotted config key, its value (or a function of the config that
    gives it, None meaning "leave it"), the source and the version it was read for."""

    key: str
    value: Any
    source: str
    version: str
    what: str

    def resolve(self, cfg: Any) -> Any:
        return self.value(cfg) if callable(self.value) else self.value


def _hbm_gib(cfg: Any) -> float:
    return float(cfg.hardware.hbm_gb) * 1e9 / GIB


def _is_deepseek(cfg: Any) -> bool:
    hf = cfg.model.hf_config or {}
    return str(hf.get("model_type", "")) in ("deepseek_v3", "deepseek_v32")


def _attention_gpus(cfg: Any) -> int:
    lay = cfg.deployment.layout
    return int(lay.tp) * int(lay.dp)


def _sglang_chunk(cfg: Any) -> int:
    # server_args.py: chunked_prefill_size 2048 below 35 GiB, 8192 below 160 GiB (H100, H200),
    # 16384 above (B200); with DP attention it is divided by dp_size (per DP rank here).
    g = _hbm_gib(cfg)
    size = 2048 if g < 35 else 8192 if g < 160 else 16384
    return max(1, size // max(1, int(cfg.deployment.layout.dp)))


def _sglang_mem_fraction(cfg: Any) -> float:
    # server_args.py: mem_fraction_static = (gpu_mem - reserved) / gpu_mem, reserved for
    # activations and CUDA graphs: (9.5 + tp*pp/2) GiB below 90 GiB, (12 + tp*pp/2) GiB below
    # 160 GiB, 32 GiB above; +4 GiB with DP attention.
    g = _hbm_gib(cfg)
    p = _attention_gpus(cfg)
    reserved = (2.8 + p / 10) if g < 35 else (9.5 + p / 2) if g < 90 else \
        (12 + p / 2) if g < 160 else 32.0
    if int(cfg.deployment.layout.dp) > 1:
        reserved += 4
    return round((g - reserved) / g, 3)


def _vllm_large(cfg: Any) -> bool:
    # arg_utils.py get_batch_defaults: >= 70 GiB and not an A100 takes the larger defaults
    return _hbm_gib(cfg) >= 70 and "a100" not in str(cfg.hardware.name).lower()


PROFILES: dict[str, tuple[Setting, ...]] = {
    "trtllm": (
        Setting("deployment.scheduler.policy", "guaranteed_no_evict", TRTLLM_RUNTIME_FLAGS, "1.1",
                "capacity scheduler GUARANTEED_NO_EVICT is the default"),
        Setting("deployment.scheduler.max_batched_tokens", 8192, TRTLLM_SERVE, "1.1",
                "max_num_tokens default 8192 (per attention-DP rank)"),
        Setting("deployment.scheduler.chunked_prefill", False, TRTLLM_RECIPES, "1.1",
                "enable_chunked_prefill is off unless set (the recipes add it for long inputs)"),
        Setting("deployment.memory.fraction_of", "free", TRTLLM_SERVE, "1.1",
                "kv_cache_free_gpu_memory_fraction: of the memory free after weights and buffers"),
        Setting("deployment.memory.gpu_memory_utilization", 0.9, TRTLLM_SERVE, "1.1",
                "KvCacheConfig.free_gpu_memory_fraction default 0.9"),
        Setting("model.kv_dtype", lambda c: "fp8" if _is_deepseek(c) else None,
                TRTLLM_DEEPSEEK_SERVE, "1.1-1.3",
                "DeepSeek-R1 serving config: kv_cache_config.dtype fp8"),
    ),
    "sglang": (
        Setting("deployment.scheduler.policy", "prefill_first", SGLANG_SERVER_ARGS, "0.5.x",
                "enable_mixed_chunk defaults to False: prefill batches run apart from decode"),
        Setting("deployment.scheduler.max_batched_tokens", _sglang_chunk, SGLANG_SERVER_ARGS,
                "0.5.x", "chunked_prefill_size by GPU memory (8192 on H100/H200), / dp_size"),
        Setting("deployment.scheduler.chunked_prefill", True, SGLANG_SERVER_ARGS, "0.5.x",
                "chunked prefill on (chunked_prefill_size set)"),
        Setting("deployment.memory.fraction_of", "static", SGLANG_SERVER_ARGS, "0.5.x",
                "mem_fraction_static covers weights + KV pool"),
        Setting("deployment.memory.gpu_memory_utilization", _sglang_mem_fraction,
                SGLANG_SERVER_ARGS, "0.5.x",
                "mem_fraction_static = (gpu_mem - reserved) / gpu_mem"),
    ),
    "vllm": (
        Setting("deployment.scheduler.policy", "mixed", VLLM_OPTIMIZATION, "0.10-0.1x",
                "V1 chunked prefill: decode first, then prefill chunks in the same step"),
        Setting("deployment.scheduler.max_batched_tokens",
                lambda c: 8192 if _vllm_large(c) else 2048, VLLM_ARG_UTILS, "0.10-0.1x",
                "max_num_batched_tokens, OpenAI server: 8192 on >= 70 GiB GPUs, else 2048"),
        Setting("deployment.scheduler.max_running_requests",
                lambda c: 1024 if _vllm_large(c) else 256, VLLM_ARG_UTILS, "0.10-0.1x",
                "max_num_seqs: 1024 on >= 70 GiB GPUs, else 256"),
        Setting("deployment.scheduler.chunked_prefill", True, VLLM_OPTIMIZATION, "0.10-0.1x",
                "chunked prefill always on in V1"),
        Setting("deployment.memory.fraction_of", "total", VLLM_OPTIMIZATION, "0.10-0.1x",
                "gpu_memory_utilization: of total GPU memory"),
        Setting("deployment.memory.gpu_memory_utilization", 0.9, VLLM_OPTIMIZATION, "0.10-0.1x",
                "gpu_memory_utilization default 0.9"),
    ),
}

# Keys other work adds; a profile sets them only where they exist in the config.
# (No framework enables two-batch overlap by default: SGLang --enable-two-batch-overlap,
# vLLM --enable-dbo and TensorRT-LLM's attention-DP overlap are opt-in.)
GUARDED: dict[str, tuple[Setting, ...]] = {
    "sglang": (Setting("network.ep_kernel_mode", "auto", SGLANG_SERVER_ARGS, "0.5.x",
                       "deepep_mode auto: low-latency kernels for decode, normal for prefill"),),
}

PROFILE_CHOICES = ("none", "framework")


def _walk(cfg: Any, key: str) -> tuple[Any, str] | None:
    *path, leaf = key.split(".")
    node = cfg
    for p in path:
        node = getattr(node, p, None)
        if node is None:
            return None
    if not dataclasses.is_dataclass(node) or leaf not in {f.name for f in dataclasses.fields(node)}:
        return None
    return node, leaf


def _schema_default(node: Any, leaf: str) -> Any:
    f = next(f for f in dataclasses.fields(node) if f.name == leaf)
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return dataclasses.MISSING


def _same(a: Any, b: Any) -> bool:
    return str(getattr(a, "value", a)) == str(getattr(b, "value", b))


def settings_for(framework: str) -> tuple[Setting, ...]:
    return PROFILES.get(framework, ()) + GUARDED.get(framework, ())


def apply_profile(cfg: Any, convert: Callable[[Any, str, Any], Any] | None = None) -> dict[str, Any]:
    """Fill `cfg` (a Config dataclass) from its framework's profile; returns {key: value set}."""
    compute = cfg.compute
    if getattr(compute, "profile", "none") != "framework":
        return {}
    keep = set(getattr(compute, "profile_keep", []) or [])
    applied: dict[str, Any] = {}
    for s in settings_for(compute.framework):
        if s.key in keep:
            continue
        where = _walk(cfg, s.key)
        if where is None:
            continue  # a guarded key this build does not have
        node, leaf = where
        value = s.resolve(cfg)
        if value is None:
            continue
        current = getattr(node, leaf)
        default = _schema_default(node, leaf)
        if default is dataclasses.MISSING or not _same(current, default):
            continue  # set by the user (or a config file): it wins
        if convert is not None:
            value = convert(node, leaf, value)
        elif current is not None and hasattr(type(current), "__members__"):  # an Enum field
            value = type(current)(value)
        setattr(node, leaf, value)
        applied[s.key] = getattr(value, "value", value)
    return applied
