"""`chunked`: R aggregated replicas, each prefilling and decoding with chunked prefill.

Every replica has the same parallel layout (e.g. EP8 experts with DP8 attention on one
8-GPU server) and owns a contiguous range of GPUs; a router spreads requests over replicas.
An iteration's time is compute (step cost model) plus exposed communication (comm model).
"""

from __future__ import annotations

import numpy as np

from cosim.errors import ConfigError
from cosim.serving.deployments import register_deployment
from cosim.serving.deployments.base import Deployment, SimContext
from cosim.serving.router import make_router


@register_deployment("chunked")
class ChunkedDeployment(Deployment):
    def __init__(self, ctx: SimContext):
        super().__init__(ctx)
        d = ctx.cfg.deployment
        layout = d.layout.to_layout()
        if layout.tp * layout.dp != layout.ep * layout.moe_tp:
            raise ConfigError("deployment.layout",
                              f"attention GPUs tp x dp = {layout.tp * layout.dp} must equal expert "
                              f"GPUs ep x moe_tp = {layout.ep * layout.moe_tp} in an aggregated "
                              "replica")
        gpus = layout.attention_gpus
        self.num_gpus = gpus * d.replicas
        topo = getattr(ctx.cfg, "topology", None)
        total = getattr(topo, "total_gpus", None)
        if isinstance(total, int) and self.num_gpus > total:
            raise ConfigError("deployment.replicas",
                              f"{d.replicas} replicas of {gpus} GPUs need {self.num_gpus} GPUs, "
                              f"the topology has {total}")
        self.check_server_kinds({"replica": np.arange(self.num_gpus)})  # mixed-kind topology
        plan = self.plan("replica", layout, d.scheduler)
        if not plan.feasible:
            self.infeasible(plan.reason)
            return
        prefix = d.router == "prefix_aware"
        self.instances = [self.make_instance(r, "replica", layout, d.scheduler, plan, r * gpus,
                                             prefix_routing=prefix)
                          for r in range(d.replicas)]
        self.router = make_router(d.router, self.instances,
                                  hasher=self.hasher(d.scheduler.kv_block_tokens),
                                  prompt_tokens=ctx.state.prompt)
