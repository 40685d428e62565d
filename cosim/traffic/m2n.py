"""M-to-N transfers between attention and FFN GPUs in attention-FFN disaggregation (AFD).

A2F: each attention GPU sends its tokens' activations to FFN GPUs; F2A sends the results
back on the mirrored pairs. Modes:
- "topk": each token goes once to every FFN GPU hosting one of its top-k experts (experts
  placed evenly on the FFN GPUs) - MegaScale-Infer style token dispatch.
- "split": each attention GPU splits its tokens evenly over the N FFN GPUs (a dense FFN
  with data-parallel FFN replicas).
- "broadcast": each attention GPU sends its whole batch to every FFN GPU (a dense FFN
  sharded by tensor parallelism, where every shard needs every token).
"""

from __future__ import annotations

import numpy as np

from cosim.experts.group import ExpertGroup
from cosim.network.flows import FlowBatch
from cosim.traffic.ep_alltoall import ep_token_counts, expert_placement, pair_gpus
from cosim.traffic.expert_routing import route_tokens
from cosim.traffic.tags import FlowTag

MODES = ("topk", "split", "broadcast")


def m2n_flows(attn_gpus: np.ndarray, ffn_gpus: np.ndarray, tokens_per_attn_gpu: int,
              bytes_per_token: int, *, direction: str = "a2f", mode: str = "topk",
              topk: int = 8, num_experts: int = 256, imbalance: float = 0.0, seed: int = 0,
              start_s: float = 0.0, experts: ExpertGroup | None = None) -> FlowBatch:
    """Flows of one A2F (direction "a2f") or F2A ("f2a") transfer of one micro-batch.

    `experts` (topk mode): the FFN GPUs' expert placement (cosim.experts; its representative
    layer): tokens are routed under its popularity and each copy goes to a GPU holding a
    replica of its expert; None: the even split, routing skewed by `imbalance`."""
    if direction not in ("a2f", "f2a"):
        raise ValueError(f"direction must be a2f or f2a, got {direction!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    attn = np.asarray(attn_gpus, dtype=np.int64)
    ffn = np.asarray(ffn_gpus, dtype=np.int64)
    m, n = attn.size, ffn.size
    if mode == "topk":
        token_gpu = np.repeat(attn, tokens_per_attn_gpu)
        if experts is None:
            routing = route_tokens(tokens_per_attn_gpu * m, num_experts, topk,
                                   imbalance=imbalance, seed=seed)
            dest = {"expert_gpu": expert_placement(num_experts, ffn)}
        else:
            layer = experts.representative
            routing = route_tokens(tokens_per_attn_gpu * m, num_experts, topk, seed=seed,
                                   popularity=np.asarray(experts.popularity[layer]))
            dest = {"expert_gpu": None,
                    "pair_gpu": pair_gpus(routing, token_gpu, experts.layers[layer], ffn)}
        src, dst, tokens, _ = ep_token_counts(routing, token_gpu, gpus_per_node=1, mode="gpu",
                                              **dest)
    else:
        src, dst = np.repeat(attn, n), np.tile(ffn, m)
        if mode == "broadcast":
            tokens = np.full(src.size, tokens_per_attn_gpu)
        else:  # split: the first (tokens mod n) FFN GPUs get one token more
            base, extra = divmod(tokens_per_attn_gpu, n)
            tokens = base + (np.tile(np.arange(n), m) < extra)
        keep = (tokens > 0) & (src != dst)
        src, dst, tokens = src[keep], dst[keep], tokens[keep]
    tag = FlowTag.A2F
    if direction == "f2a":
        src, dst, tag = dst, src, FlowTag.F2A
    return FlowBatch.from_arrays(src, dst, tokens * int(bytes_per_token),
                                 np.full(src.size, float(start_s)), np.full(src.size, int(tag)))
