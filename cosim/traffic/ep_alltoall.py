"""Expert-parallel all-to-all of a MoE layer: dispatch (tokens to their experts' GPUs) and
combine (expert outputs back), as flows.

Send modes (`mode`):
- "expert": flat, one copy per (token, chosen expert) not on the token's GPU.
- "gpu": one copy per (token, destination GPU) - DeepEP intranode / low-latency style.
- "node": DeepEP normal internode style. A token goes once per destination *node* over
  RDMA, to the GPU of the source's rail (same local rank) on that node, which forwards it
  over NVLink to each expert GPU there that needs it; destinations on the token's own node
  get it directly over NVLink. Combine is the mirror: expert GPUs send their outputs to the
  rail peer over NVLink, which reduces them and sends one copy back over RDMA.

Pipelining assumption ("node" mode): DeepEP forwards in chunks as they arrive, so forward
flows are emitted with the same start time as the RDMA flows and run concurrently; the
flow model does not make a forward wait for its RDMA input. The completion time is thus a
bandwidth bound (max over link classes) rather than RDMA time + forward time.

Kernel families (`kernel_send_mode`): DeepEP's normal kernels send as "gpu" inside one
server and "node" across servers; its low-latency kernels (csrc/kernels/internode_ll.cu)
send flat, one message per (token, chosen expert) - "expert" - each message a 16-byte
header (source index) followed by the payload in dispatch, the bare BF16 payload in
combine (`ll_message_bytes`), into buffers of a fixed number of tokens per rank
(`ll_rounds`).

Bytes per token follow the dtype of the direction: FP8 dispatch carries per-128-channel FP32
scales (DeepEP's fine-grained FP8: hidden + hidden/128 * 4 bytes), BF16 carries 2 * hidden.
Routing metadata (top-k ids and weights, < 1 % of a 7168-wide FP8 token) is not counted.
"""

from __future__ import annotations

import numpy as np

from cosim.dtypes import DType, dtype_bytes
from cosim.experts.placement import Placement, place_experts
from cosim.network.flows import FlowBatch
from cosim.traffic.expert_routing import route_tokens
from cosim.traffic.tags import FlowTag

MODES = ("expert", "gpu", "node")
FP8_SCALE_BLOCK = 128  # channels per FP32 scale in DeepSeek-V3 / DeepEP FP8 activations
EP_KERNELS = ("normal", "low_latency")
# DeepEP low-latency dispatch message: sizeof(int4) header (source token index and three
# reserved ints) + hidden (+ FP8 scales): `num_bytes_per_msg` in csrc/kernels/internode_ll.cu
LL_DISPATCH_HEADER_BYTES = 16


def token_bytes(hidden: int, dtype: DType | str) -> int:
    """Bytes one token's activation occupies on the wire in `dtype` (scales included)."""
    dt = DType(dtype)
    if dt == DType.fp8:
        return int(hidden + -(-hidden // FP8_SCALE_BLOCK) * 4)
    return int(np.ceil(hidden * dtype_bytes(dt)))


def kernel_send_mode(kernel: str, ep_nodes: int) -> str:
    """Send mode (MODES) of DeepEP's `kernel` family for an EP group over `ep_nodes` servers:
    normal kernels dedupe per GPU inside a server and per node across servers (NVLink
    forwarding); low-latency kernels send once per (token, expert)."""
    if kernel not in EP_KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(EP_KERNELS)}, got {kernel!r}")
    if kernel == "low_latency":
        return "expert"
    return "gpu" if ep_nodes <= 1 else "node"


def ll_message_bytes(hidden: int, dtype: DType | str, direction: str) -> int:
    """Bytes of one low-latency message: dispatch carries the 16-byte header, combine the
    bare payload (DeepEP internode_ll.cu: combine slots are hidden x BF16)."""
    if direction not in ("dispatch", "combine"):
        raise ValueError(f"direction must be dispatch or combine, got {direction!r}")
    b = token_bytes(hidden, dtype)
    return b + LL_DISPATCH_HEADER_BYTES if direction == "dispatch" else b


def ll_rounds(tokens_per_gpu: int, max_tokens_per_rank: int) -> list[int]:
    """Tokens of each low-latency kernel call for `tokens_per_gpu` tokens: the buffer holds
    at most `max_tokens_per_rank` per call (DeepEP asserts it), so larger batches take
    ceil(t / max) calls, all full but the last."""
    t, cap = int(tokens_per_gpu), int(max_tokens_per_rank)
    if cap < 1:
        raise ValueError(f"max_tokens_per_rank must be >= 1, got {cap}")
    full, rest = divmod(t, cap)
    return [cap] * full + ([rest] if rest else [])


def expert_placement(num_experts: int, ep_gpus: np.ndarray) -> np.ndarray:
    """Global GPU of each expert: experts split contiguously over ep_gpus, the first
    num_experts mod ep GPUs holding one more (cosim.experts.place_experts; identical to an
    even split when ep divides num_experts)."""
    ep_gpus = np.asarray(ep_gpus, dtype=np.int64)
    pl = place_experts(num_experts, int(ep_gpus.size))
    owner = np.empty(num_experts, dtype=np.int64)
    for g, ex in enumerate(pl.gpu_experts):
        owner[list(ex)] = ep_gpus[g]
    return owner


def replica_table(placement: Placement, ep_gpus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(E, max replicas) global GPUs holding each expert (padded with the first), and the
    replica count of each expert, for a placement over ep_gpus (cosim.experts)."""
    ep_gpus = np.asarray(ep_gpus, dtype=np.int64)
    reps = np.asarray(placement.replicas, dtype=np.int64)
    table = np.zeros((placement.num_experts, int(reps.max())), dtype=np.int64)
    filled = np.zeros(placement.num_experts, dtype=np.int64)
    for g, ex in enumerate(placement.gpu_experts):
        for e in ex:
            table[e, filled[e]] = ep_gpus[g]
            filled[e] += 1
    for e in range(placement.num_experts):
        table[e, filled[e]:] = table[e, 0]
    return table, reps


def pair_gpus(routing: np.ndarray, token_gpu: np.ndarray, placement: Placement,
              ep_gpus: np.ndarray) -> np.ndarray:
    """Destination GPU of each (token, chosen expert) pair: a GPU holding a replica of the
    expert. A source GPU sends all its copies of expert e to replica (source id mod r_e), a
    fixed logical-to-physical map per rank as EPLB dispatchers use; over the group's
    sources the copies split evenly over the replicas (what the compute side assumes)."""
    table, reps = replica_table(placement, ep_gpus)
    src = np.asarray(token_gpu, dtype=np.int64)[:, None]
    return table[routing, src % reps[routing]]


def _aggregate(src: np.ndarray, dst: np.ndarray, kind: int):
    """Count equal (src, dst) pairs: returns (src, dst, tokens, kind) arrays."""
    keep = src != dst
    src, dst = src[keep].astype(np.int64), dst[keep].astype(np.int64)
    # Key base from these very endpoints: a relay GPU (node mode) may lie above every
    # token and expert GPU, and a smaller base would decode its pairs as other pairs.
    base = int(dst.max(initial=0)) + 1
    uniq, count = np.unique(src * base + dst, return_counts=True)
    return uniq // base, uniq % base, count, np.full(uniq.size, kind)


def _row_unique(a: np.ndarray) -> np.ndarray:
    """Mask of the first occurrence of each value within each row of a 2-D int array."""
    s = np.sort(a, axis=1)
    first = np.ones_like(s, dtype=bool)
    first[:, 1:] = s[:, 1:] != s[:, :-1]
    return s, first


def ep_token_counts(routing: np.ndarray, token_gpu: np.ndarray, expert_gpu: np.ndarray | None,
                    gpus_per_node: int, mode: str = "node", *,
                    pair_gpu: np.ndarray | None = None):
    """Tokens each (src GPU, dst GPU) pair carries in the dispatch.

    routing: (tokens, topk) expert ids; token_gpu: (tokens,) global GPU holding each token;
    expert_gpu: (num_experts,) global GPU of each expert, or pair_gpu: (tokens, topk) the
    GPU of each pair (redundant experts: `pair_gpus`). Returns arrays (src, dst, tokens,
    tag) with tag EP_DIRECT, EP_RDMA or EP_FORWARD.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    token_gpu = np.asarray(token_gpu, dtype=np.int64)
    if pair_gpu is not None:
        dg = np.asarray(pair_gpu, dtype=np.int64)
    else:  # (tokens, topk) destination GPUs
        dg = np.asarray(expert_gpu, dtype=np.int64)[routing]
    src = np.broadcast_to(token_gpu[:, None], dg.shape)
    if mode == "expert":
        parts = [_aggregate(src.ravel(), dg.ravel(), FlowTag.EP_DIRECT)]
    else:
        dgs, first = _row_unique(dg)  # one copy per destination GPU
        if mode == "gpu":
            parts = [_aggregate(src[first], dgs[first], FlowTag.EP_DIRECT)]
        else:
            g = gpus_per_node
            src_node = token_gpu[:, None] // g
            dn = dgs // g
            local = (dn == src_node) & first
            parts = [_aggregate(src[local], dgs[local], FlowTag.EP_DIRECT)]
            # One RDMA copy per (token, remote node), to the rail peer on that node.
            remote = dn != src_node
            node_first = np.zeros_like(first)
            node_first[:, 0] = True
            node_first[:, 1:] = dn[:, 1:] != dn[:, :-1]  # dgs sorted => nodes sorted
            rdma = remote & node_first
            relay = dn * g + (np.broadcast_to(token_gpu[:, None], dn.shape) % g)
            parts.append(_aggregate(src[rdma], relay[rdma], FlowTag.EP_RDMA))
            fwd = remote & first
            parts.append(_aggregate(relay[fwd], dgs[fwd], FlowTag.EP_FORWARD))
    return tuple(np.concatenate([p[i] for p in parts]) for i in range(4))


def ep_flows(tokens_per_gpu: int, hidden: int, topk: int, num_experts: int,
             ep_gpus: np.ndarray, gpus_per_node: int, *, direction: str = "dispatch",
             dtype: DType | str = DType.fp8, mode: str = "node", imbalance: float = 0.0,
             seed: int = 0, num_groups: int = 1, topk_groups: int | None = None,
             start_s: float = 0.0, header_bytes: int = 0) -> FlowBatch:
    """Flows of one EP dispatch or combine: every GPU in ep_gpus holds tokens_per_gpu tokens,
    each routed to topk of num_experts experts placed evenly on ep_gpus.

    direction "dispatch" sends tokens to experts; "combine" sends the results back along the
    mirrored paths. dtype is the wire format of that direction (e.g. fp8 / bfloat16);
    header_bytes are added to every token copy (DeepEP low-latency dispatch: 16).
    """
    if direction not in ("dispatch", "combine"):
        raise ValueError(f"direction must be dispatch or combine, got {direction!r}")
    ep_gpus = np.asarray(ep_gpus, dtype=np.int64)
    routing = route_tokens(tokens_per_gpu * ep_gpus.size, num_experts, topk,
                           imbalance=imbalance, seed=seed, num_groups=num_groups,
                           topk_groups=topk_groups)
    token_gpu = np.repeat(ep_gpus, tokens_per_gpu)
    src, dst, tokens, tag = ep_token_counts(routing, token_gpu,
                                            expert_placement(num_experts, ep_gpus),
                                            gpus_per_node, mode)
    if direction == "combine":
        src, dst = dst, src
    size = tokens * (token_bytes(hidden, dtype) + int(header_bytes))
    return FlowBatch.from_arrays(src, dst, size, np.full(src.size, float(start_s)), tag)


def deepep_bytes_per_gpu(routing: np.ndarray, token_gpu: np.ndarray, expert_gpu: np.ndarray,
                         gpus_per_node: int, bytes_per_token: int) -> tuple[float, float]:
    """Bytes per GPU as DeepEP's benchmark counts them (tests/test_internode.py), for
    comparing with its published GB/s: (RDMA send bytes, NVL receive bytes), means over GPUs.

    DeepEP counts one RDMA token per (token, destination node) *including the token's own
    node* (which never touches the NIC), and NVL bytes as all tokens a GPU receives
    (including those it routes to itself).
    """
    token_gpu = np.asarray(token_gpu, dtype=np.int64)
    dgs, first = _row_unique(np.asarray(expert_gpu, dtype=np.int64)[routing])
    dn = dgs // gpus_per_node
    node_first = np.ones_like(first)
    node_first[:, 1:] = dn[:, 1:] != dn[:, :-1]
    gpus = np.unique(token_gpu)
    rdma = np.bincount(token_gpu, weights=node_first.sum(axis=1))[gpus]
    recv = np.bincount(dgs[first], minlength=int(gpus.max()) + 1)[gpus]
    return float(rdma.mean() * bytes_per_token), float(recv.mean() * bytes_per_token)
