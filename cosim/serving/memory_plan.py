"""Memory plan of one GPU of an instance: weights, activations, runtime reserve, KV cache.

    usable      = HBM x gpu_memory_utilization
    kv_bytes    = usable - weights(layout) - activations - runtime_reserve - per-request state
    kv_tokens   = dp x floor(kv_bytes / kv_bytes_per_token_per_gpu)     (instance)

That is `memory.fraction_of: total` (vLLM's gpu_memory_utilization). The other readings of
the fraction f (docs/serving.md, "Memory"):

    free   (TensorRT-LLM free_gpu_memory_fraction): kv = f x (HBM - weights - activations
           - runtime_reserve - state)
    static (SGLang mem_fraction_static):            kv = f x HBM - weights - state, with
           activations and the runtime reserve in the (1 - f) x HBM left over

Weights per GPU come from the model spec for the parallel layout (experts split over EP,
attention over TP, replicated across attention-DP ranks). KV bytes per token per GPU are the
full-attention layers' (MLA latents are replicated on TP ranks, GQA heads split over them);
sliding-window KV and recurrent (Mamba) state do not grow with the context, so they are
reserved per running request. Activations are the live tensors of the largest forward pass:

    activations = T x act_bytes x (4 h + k (2 h + 2 i / moe_tp)) + R x vocab x 4

for T tokens per GPU per forward pass (the scheduler's token budget per rank), hidden h, top-k
k and expert width i (dense models: k = 1, i = dense width / tp): the residual stream, its
normed copy, the attention output and the MoE input; per routed copy of a token, its received
activation, the combine buffer and the gate+up intermediate; plus FP32 logits of the R requests
sampled per step. A configuration whose weights do not fit, or whose KV cache cannot hold the
longest request, is infeasible and is not simulated.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cosim.dtypes import dtype_bytes
from cosim.model.layout import ParallelLayout

GB = 1e9


@dataclass(frozen=True)
class MemoryPlan:
    """Per-GPU bytes of one instance's layout, and the instance's KV capacity."""

    hbm_bytes: float
    usable_bytes: float
    weight_bytes: float
    activation_bytes: float
    reserve_bytes: float
    state_bytes: float  # window KV + recurrent state reserved for the running requests
    kv_bytes: float  # left for the paged KV cache (may be negative: infeasible)
    kv_bytes_per_token: float  # per GPU of an attention-TP group
    kv_tokens: int  # instance capacity (all attention-DP ranks)
    kv_blocks: int  # instance capacity in blocks
    kv_blocks_per_rank: int  # one attention-DP rank's cache (its requests' KV lives there)
    block_tokens: int
    min_tokens: int  # KV the longest request needs
    feasible: bool
    reason: str = ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for k in ("hbm_bytes", "usable_bytes", "weight_bytes", "activation_bytes",
                  "reserve_bytes", "state_bytes", "kv_bytes"):
            d[k.replace("_bytes", "_gb")] = round(d.pop(k) / GB, 3)
        return d


def activation_bytes_per_gpu(spec: Any, layout: ParallelLayout, tokens: int, requests: int) -> float:
    """Live activation bytes of a forward pass of `tokens` tokens on one GPU (formula above)."""
    act = dtype_bytes(spec.precision.activation)
    h = spec.hidden_size
    if spec.moe is not None:
        k = spec.moe.topk
        inter = spec.moe.inter / layout.moe_tp
    else:
        k, inter = 1, spec.dense_inter / layout.tp
    per_token = 4 * h + k * (2 * h + 2 * inter)
    return tokens * act * per_token + requests * spec.vocab_size * 4.0


def plan_memory(spec: Any, layout: ParallelLayout, hardware: Any, memory: Any, scheduler: Any,
                min_tokens: int, stage: str | None = None) -> MemoryPlan:
    """The memory plan of one GPU of `layout` (see the module docstring for the formulas).

    `stage` ("attention" or "ffn", AFD) counts only that side's weights
    (ModelSpec.weight_bytes_per_gpu); None: the whole model's share of one GPU.
    """
    hbm = float(hardware.hbm_gb) * GB
    usable = hbm * float(memory.gpu_memory_utilization)
    # redundant expert replicas (deployment.experts) take weight memory on every EP GPU
    redundant = layout.experts.num_redundant if layout.experts is not None else 0
    weights = float(spec.weight_bytes_per_gpu(layout, stage, redundant_experts=redundant)
                    if redundant else spec.weight_bytes_per_gpu(layout) if stage is None
                    else spec.weight_bytes_per_gpu(layout, stage))
    tokens = int(memory.activation_tokens or scheduler.max_batched_tokens)
    running = int(scheduler.max_running_requests)  # per attention-DP rank
    acts = activation_bytes_per_gpu(spec, layout, tokens, running)
    reserve = float(memory.runtime_reserve_gb) * GB
    per_token = float(spec.kv_cache_bytes_per_token(tp=layout.tp))
    windows = [w for _, _, w in spec.layers if w > 0]
    state = running * (float(spec.window_kv_bytes_per_token(tp=layout.tp)) * (max(windows) if windows else 0)
                       + float(spec.state_bytes_per_request(tp=layout.tp)))
    how = getattr(memory, "fraction_of", "total")
    if how == "free":
        kv = float(memory.gpu_memory_utilization) * (hbm - weights - acts - reserve - state)
        usable = hbm
    elif how == "static":
        kv = usable - weights - state
    else:
        kv = usable - weights - acts - reserve - state
    block = int(scheduler.kv_block_tokens)
    if per_token > 0:
        blocks_per_rank = int(max(kv, 0.0) // (per_token * block))
    else:  # no growing KV (pure Mamba): tokens are limited by the context only
        blocks_per_rank = 1 << 40
    blocks = blocks_per_rank * layout.dp
    kv_tokens = blocks * block
    reason = ""
    static_short = how == "static" and acts + reserve > hbm - usable
    if weights + acts + reserve + state > usable or static_short or (how != "total" and kv <= 0):
        reason = (f"weights {weights / GB:.1f} GB + activations {acts / GB:.1f} GB + runtime "
                  f"reserve {reserve / GB:.1f} GB + request state {state / GB:.1f} GB per GPU "
                  f"exceed the usable {usable / GB:.1f} GB (HBM {hbm / GB:.0f} GB x "
                  f"{memory.gpu_memory_utilization}{'' if how == 'total' else ' of ' + how}) for layout tp={layout.tp} dp={layout.dp} "
                  f"ep={layout.ep} moe_tp={layout.moe_tp}")
    elif blocks_per_rank * block < min_tokens:
        reason = (f"KV cache of {blocks_per_rank * block} tokens per attention-DP rank "
                  f"({kv / GB:.2f} GB per GPU at {per_token / 1e3:.1f} kB per token) cannot hold "
                  f"the longest request ({min_tokens} tokens)")
    return MemoryPlan(hbm_bytes=hbm, usable_bytes=usable, weight_bytes=weights,
                      activation_bytes=acts, reserve_bytes=reserve, state_bytes=state,
                      kv_bytes=kv, kv_bytes_per_token=per_token, kv_tokens=kv_tokens,
                      kv_blocks=blocks, kv_blocks_per_rank=blocks_per_rank, block_tokens=block, min_tokens=int(min_tokens),
                      feasible=not reason, reason=reason)
