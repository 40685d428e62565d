"""FabricComm: an iteration's communication timed on the fabric by a network backend.

For an iteration of T tokens on an instance of G GPUs (first replica's GPUs of the topology):

- EP dispatch and combine of one MoE layer: `cosim.traffic.ep_alltoall.ep_flows` with
  ceil(T / G) tokens per GPU, top-k routing over the model's experts (DeepSeek's group
  limit when the config has one), FP8 dispatch / BF16 combine; send mode "gpu" (one copy
  per destination GPU, DeepEP intranode) when the EP group is inside one server, "node"
  (DeepEP normal internode: once per node over RDMA, forwarded over NVLink) otherwise.
- TP all-reduce (tp > 1) of one layer: every attention-DP group's T/dp tokens, NVLink SHARP
  inside a server, rail-aligned rings across servers (cosim.traffic.allreduce).

Each phase is one FlowBatch timed by the backend (analytical or ns-3) behind its result
cache; every MoE layer carries the same traffic, so one result serves all layers:

    comm = moe_layers x (dispatch + combine + 2 launch) + ar_layers x (all-reduce + launch)

Tokens per GPU are rounded up to a geometric grid (`deployment.comm.token_grid_percent`,
exact below 16) so that decode iterations, whose size moves by a few tokens, share results;
the times are then slightly conservative.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cosim.model.layout import ParallelLayout
from cosim.serving.comm import TrafficShape

# Expert routing is drawn for at most this many tokens per GPU; larger batches scale the
# sample's per-pair token counts (their relative spread, ~1/sqrt(count), is then already a few
# percent), which keeps route_tokens (tokens x experts random keys) off the hot path.
ROUTING_SAMPLE_TOKENS = 256


def fabric_available() -> bool:
    """True when the traffic generators and the network backends are importable."""
    try:
        import cosim.network.backend  # noqa: F401
        import cosim.network.topology  # noqa: F401
        import cosim.traffic.allreduce  # noqa: F401
        import cosim.traffic.ep_alltoall  # noqa: F401
    except ImportError:
        return False
    return True


def grid_up(x: int, percent: float, exact_below: int = 16) -> int:
    """x rounded up to a geometric grid of `percent` steps (exact below `exact_below`)."""
    if x <= exact_below or percent <= 0:
        return int(x)
    step = math.log1p(percent / 100.0)
    return int(math.ceil(math.exp(math.ceil(math.log(x) / step - 1e-9) * step) - 1e-9))


class FabricComm:
    """CommModel whose phases are flow batches timed by a NetworkBackend (see module doc)."""

    name = "fabric"

    def __init__(self, backend: Any, layout: ParallelLayout, shape: TrafficShape, first_gpu: int,
                 gpus_per_node: int, *, dispatch_dtype: str = "fp8",
                 combine_dtype: str = "bfloat16", activation_dtype: str = "bfloat16",
                 launch_us: float = 5.0, imbalance: float = 0.0, token_grid_percent: float = 2.0,
                 num_groups: int = 1, topk_groups: int | None = None, seed: int = 0):
        self.backend = backend
        self.layout = layout
        self.shape = shape
        self.gpn = int(gpus_per_node)
        self.gpus = np.arange(first_gpu, first_gpu + layout.attention_gpus, dtype=np.int64)
        # One GPU per EP rank (moe_tp shards of an expert receive the same tokens in parallel).
        self.ep_gpus = first_gpu + np.arange(layout.ep, dtype=np.int64) * layout.moe_tp
        self.dispatch_dtype = dispatch_dtype
        self.combine_dtype = combine_dtype
        self.act_dtype = activation_dtype
        self.launch_s = launch_us * 1e-6
        self.imbalance = imbalance
        self.grid = token_grid_percent
        self.seed = seed
        ep_nodes = np.unique(self.ep_gpus // self.gpn).size
        self.mode = "gpu" if ep_nodes == 1 else "node"
        groups_ok = (num_groups > 1 and shape.num_experts % num_groups == 0
                     and topk_groups is not None and topk_groups * (shape.num_experts // num_groups)
                     >= shape.topk)
        self.num_groups = num_groups if groups_ok else 1
        self.topk_groups = topk_groups if groups_ok else None
        self._phase: dict[tuple, float] = {}
        self._routing_counts: dict[int, tuple] = {}
        self.flow_batches = 0

    @classmethod
    def from_config(cls, cfg: Any, spec: Any, layout: ParallelLayout, first_gpu: int,
                    shared: dict) -> FabricComm:
        """Build from the run's config; `shared` holds the graph and backend of the run."""
        from cosim.network.backend import make_backend
        from cosim.network.topology import build_fabric

        if "backend" not in shared:
            graph = build_fabric(cfg.topology)
            shared["graph"] = graph
            shared["backend"] = make_backend(cfg.network, graph)
        hf = cfg.model.hf_config
        d = cfg.deployment.comm
        act = getattr(spec.precision.activation, "value", spec.precision.activation)
        shape = TrafficShape.from_spec(spec)
        need = first_gpu + layout.attention_gpus
        if need > shared["graph"].num_gpus:
            from cosim.config.errors import ConfigError

            raise ConfigError("topology.num_nodes",
                              f"the instance needs GPUs {first_gpu}..{need - 1}; the topology has "
                              f"{shared['graph'].num_gpus}")
        return cls(shared["backend"], layout, shape, first_gpu, int(cfg.topology.gpus_per_node),
                   dispatch_dtype=d.dispatch_dtype, combine_dtype=d.combine_dtype,
                   activation_dtype=str(act), launch_us=d.launch_us,
                   imbalance=d.expert_imbalance, token_grid_percent=d.token_grid_percent,
                   num_groups=int(hf.get("n_group", 1) or 1),
                   topk_groups=int(hf["topk_group"]) if hf.get("topk_group") else None,
                   seed=int(cfg.seed))

    # --- phases ------------------------------------------------------------------------------
    def _makespan(self, flows) -> float:
        if len(flows) == 0:
            return 0.0
        self.flow_batches += 1
        return float(self.backend.simulate(flows).makespan)

    def _ep(self, tokens_per_gpu: int, direction: str) -> float:
        key = ("ep", direction, tokens_per_gpu)
        t = self._phase.get(key)
        if t is None:
            # Dispatch and combine of a layer share one routing: build both batches at once.
            from cosim.network.flows import FlowBatch
            from cosim.traffic.ep_alltoall import ep_token_counts, expert_placement, token_bytes
            from cosim.traffic.expert_routing import route_tokens

            s = self.shape
            sample = min(tokens_per_gpu, ROUTING_SAMPLE_TOKENS)
            counts = self._routing_counts.get(sample)
            if counts is None:
                routing = route_tokens(sample * self.ep_gpus.size, s.num_experts, s.topk,
                                       imbalance=self.imbalance, seed=self.seed,
                                       num_groups=self.num_groups, topk_groups=self.topk_groups)
                counts = self._routing_counts[sample] = ep_token_counts(
                    routing, np.repeat(self.ep_gpus, sample),
                    expert_placement(s.num_experts, self.ep_gpus), self.gpn, self.mode)
            src, dst, tok, tag = counts
            if sample < tokens_per_gpu:
                tok = np.ceil(tok * (tokens_per_gpu / sample)).astype(np.int64)
            for d, (a, b), dtype in (("dispatch", (src, dst), self.dispatch_dtype),
                                     ("combine", (dst, src), self.combine_dtype)):
                flows = FlowBatch.from_arrays(a, b, tok * token_bytes(s.hidden, dtype), None, tag)
                self._phase[("ep", d, tokens_per_gpu)] = self._makespan(flows)
            t = self._phase[key]
        return t

    def _allreduce(self, group_tokens: int) -> float:
        key = ("ar", group_tokens)
        t = self._phase.get(key)
        if t is None:
            from cosim.network.flows import FlowBatch
            from cosim.traffic.allreduce import (
                nvls_allreduce_flows,
                rail_rings,
                ring_allreduce_flows,
            )
            from cosim.traffic.ep_alltoall import token_bytes

            lay = self.layout
            size = group_tokens * token_bytes(self.shape.hidden, self.act_dtype)
            batches = []
            for r in range(lay.dp):
                grp = self.gpus[r * lay.tp:(r + 1) * lay.tp]
                if np.unique(grp // self.gpn).size == 1:
                    batches.append(nvls_allreduce_flows(grp, size, self.gpn))
                elif grp.size % self.gpn == 0:
                    batches.append(ring_allreduce_flows(size, rail_rings(grp, self.gpn, 1)))
                else:
                    batches.append(ring_allreduce_flows(size, [grp]))
            t = self._phase[key] = self._makespan(FlowBatch.concat(batches))
        return t

    def breakdown(self, tokens: int) -> dict[str, float]:
        """Seconds per pattern for one iteration of `tokens` tokens (all layers)."""
        out = {"ep_dispatch": 0.0, "ep_combine": 0.0, "tp_allreduce": 0.0}
        if tokens <= 0:
            return out
        s, lay = self.shape, self.layout
        if lay.ep > 1 and s.num_moe_layers:
            tpg = grid_up(-(-tokens // lay.attention_gpus), self.grid)
            out["ep_dispatch"] = s.num_moe_layers * (self._ep(tpg, "dispatch") + self.launch_s)
            out["ep_combine"] = s.num_moe_layers * (self._ep(tpg, "combine") + self.launch_s)
        if lay.tp > 1:
            gt = grid_up(-(-tokens // lay.dp), self.grid)
            out["tp_allreduce"] = (s.num_layers + s.num_dense_layers) * (
                self._allreduce(gt) + self.launch_s)
        return out

    def time_s(self, tokens: int) -> float:
        return sum(self.breakdown(tokens).values())

    def stats(self) -> dict:
        out: dict = {"comm_model": f"fabric:{getattr(self.backend, 'name', '?')}",
                     "comm_ep_mode": self.mode, "comm_flow_batches": self.flow_batches,
                     "comm_phase_results": len(self._phase)}
        bstats = getattr(self.backend, "stats", None)
        if callable(bstats):
            out["network_cache_grid_percent"] = bstats().get("grid_percent")
        return out

    def close(self) -> None:
        pass  # the shared backend is closed once by the simulation
