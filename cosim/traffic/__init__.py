"""Traffic generators: communication patterns as FlowBatch arrays (src, dst, bytes, start, tag).

One module per pattern: ep_alltoall (MoE dispatch/combine), m2n (attention<->FFN in AFD),
allreduce (ring, NVLink SHARP), kv_transfer (P->D KV cache), all_to_all (uniform).
Expert routing (top-k with skew) lives in expert_routing. Flows never have src == dst:
local copies are not network traffic.
"""

from cosim.traffic.tags import FlowTag

__all__ = ["FlowTag"]
