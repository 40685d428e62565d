"""Default tags the generators put on their flows (FlowBatch.tag); callers may relabel."""

from __future__ import annotations

from enum import IntEnum


class FlowTag(IntEnum):
    ALL_TO_ALL = 1
    EP_DIRECT = 2  # a token to an expert GPU in one hop (NVLink in-node, or flat over the NIC)
    EP_RDMA = 3  # node-deduplicated: a token once to the destination node's rail-peer GPU
    EP_FORWARD = 4  # node-deduplicated: rail peer -> expert GPU over NVLink (or back, combine)
    A2F = 5
    F2A = 6
    ALLREDUCE = 7
    KV = 8
