"""Expert layout: which GPU of an expert-parallel group holds which routed experts.

A layout fact that both the compute model (the most loaded GPU's token-expert pairs and
expert count) and the traffic (each token copy goes to a GPU holding its expert) consume.
"""

from cosim.experts.load import expert_load, read_profile, zipf_load
from cosim.experts.placement import Placement, place_experts
from cosim.experts.touched import expected_touched, expected_touched_per_gpu

__all__ = ["Placement", "place_experts", "expert_load", "read_profile", "zipf_load",
           "expected_touched", "expected_touched_per_gpu"]
