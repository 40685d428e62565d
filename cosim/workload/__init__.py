"""Request workloads: synthetic generators (chat, coding, agentic, fixed), arrival processes
(Poisson, gamma, closed loop), and trace replay (Mooncake-style JSON lines with hash_ids)."""

from cosim.workload.arrivals import WorkloadDriver
from cosim.workload.block_hashes import BlockHasher
from cosim.workload.build import build_workload
from cosim.workload.requests import RequestTable
from cosim.workload.synthetic import generate_synthetic
from cosim.workload.trace import read_trace, write_trace

__all__ = ["BlockHasher", "RequestTable", "WorkloadDriver", "build_workload",
           "generate_synthetic", "read_trace", "write_trace"]
