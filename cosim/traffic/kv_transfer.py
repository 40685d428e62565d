"""P->D KV-cache transfer of disaggregated serving: one flow per request (or per layer).

Each request moves bytes_per_token * tokens from its prefill GPU to its decode GPU. With
layers > 1 the transfer is split into per-layer flows, layer l starting at
start_s + l * layer_interval_s (layer-wise streaming while the prefill still computes).
"""

from __future__ import annotations

import numpy as np

from cosim.network.flows import FlowBatch
from cosim.traffic.tags import FlowTag


def kv_transfer_flows(src_gpu: np.ndarray, dst_gpu: np.ndarray, tokens: np.ndarray,
                      bytes_per_token: float, *, layers: int = 1,
                      layer_interval_s: float = 0.0,
                      start_s: np.ndarray | float = 0.0) -> FlowBatch:
    """Flows of the KV caches of requests (arrays, one entry per request)."""
    src = np.asarray(src_gpu, dtype=np.int64)
    dst = np.asarray(dst_gpu, dtype=np.int64)
    tokens = np.asarray(tokens, dtype=np.int64)
    start = np.broadcast_to(np.asarray(start_s, dtype=np.float64), src.shape)
    if layers < 1:
        raise ValueError(f"layers must be >= 1, got {layers}")
    if (src == dst).any():
        raise ValueError("a request's prefill and decode GPU are the same; no transfer")
    total = np.ceil(tokens * float(bytes_per_token)).astype(np.int64)
    per_layer = -(-total // layers)
    keep = per_layer > 0
    src, dst, start, per_layer = src[keep], dst[keep], start[keep], per_layer[keep]
    lay = np.arange(layers)
    return FlowBatch.from_arrays(
        np.repeat(src, layers), np.repeat(dst, layers), np.repeat(per_layer, layers),
        (start[:, None] + lay[None, :] * float(layer_interval_s)).ravel(),
        np.full(src.size * layers, int(FlowTag.KV)))
