"""FabricComm: an iteration's communication timed on the fabric by a network backend.

For an iteration of T tokens on an instance of G GPUs (first replica's GPUs of the topology):

- EP dispatch and combine of one MoE layer: `cosim.traffic.ep_alltoall.ep_token_counts` over
  a top-k routing (`cosim.traffic.expert_routing.route_tokens`: the model's experts,
  DeepSeek's group limit when the config has one, `comm.expert_imbalance`, the run's seed) of
  t = ceil(T / G) tokens on every EP GPU, FP8 dispatch / BF16 combine; send mode "gpu" (one
  copy per destination GPU, DeepEP intranode) when the EP group is inside one server,
  "node" (DeepEP normal internode: once per node over RDMA, forwarded over NVLink) otherwise.
- TP all-reduce (tp > 1) of one layer: every attention-DP group's T/dp tokens, NVLink SHARP
  inside a server, rail-aligned rings across servers (cosim.traffic.allreduce).

Each phase is one FlowBatch timed by the backend (analytical or ns-3) behind its result
cache; every MoE layer carries the same traffic, so one result serves all layers:

    comm = moe_layers x (dispatch + combine + 2 launch) + ar_layers x (all-reduce + launch)

Token grid: t (and T/dp) is rounded up to a geometric grid of
`deployment.comm.token_grid_percent` steps (default 2 %; exact up to 16 tokens). The t
tokens of a GPU are the first t of a fixed stream of routed tokens (EPTokenStream), so
iterations on one grid point send the same flows and share one network result; the times
are then slightly conservative (at most one grid step more traffic). Results are kept per
grid point for the run (the `memo` level of cosim.serving.network_lookups) in front of the
backend's result cache (LRU, then sqlite).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cosim.experts.group import ExpertGroup
from cosim.model.layout import ParallelLayout
from cosim.serving.comm import TrafficShape
from cosim.serving.network_lookups import NetworkLookups


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


class EPTokenStream:
    """Dispatch token counts per (src GPU, dst GPU, tag) of the first t tokens of every EP
    GPU's stream of routed tokens.

    Tokens are routed independently, so the counts of t tokens per GPU are the sum of those
    of its blocks of BLOCK tokens (block b: route_tokens stream b, the run's seed and expert
    popularity) and of the first t mod BLOCK tokens of the next block. Blocks are routed once
    per run and their counts kept as running sums: a new t costs one partial block (at most
    BLOCK x ep tokens), whatever its size, and every t is an exact sample of t routed tokens
    per GPU (no scaling of a smaller sample). Counts never decrease with t.
    """

    BLOCK = 256

    def __init__(self, ep_gpus: np.ndarray, num_experts: int, topk: int, gpus_per_node: int,
                 mode: str, *, imbalance: float = 0.0, seed: int = 0, num_groups: int = 1,
                 topk_groups: int | None = None, experts: ExpertGroup | None = None):
        from cosim.traffic.ep_alltoall import expert_placement

        self.ep_gpus = np.asarray(ep_gpus, dtype=np.int64)
        self.expert_gpu = expert_placement(num_experts, self.ep_gpus)
        self.route = dict(num_experts=num_experts, topk=topk, imbalance=imbalance, seed=seed,
                          num_groups=num_groups, topk_groups=topk_groups)
        # deployment.experts: route under its (representative layer's) popularity and send
        # each copy to a GPU holding a replica of its expert (cosim.traffic.ep_alltoall)
        self.placement = None
        if experts is not None and experts.num_gpus == self.ep_gpus.size:
            layer = experts.representative
            self.placement = experts.layers[layer]
            self.route["popularity"] = np.asarray(experts.popularity[layer])
        self.gpn = int(gpus_per_node)
        self.mode = mode
        # key = (tag * n + src) * n + dst over global GPU ids (relays stay inside EP nodes)
        self._n = int(self.ep_gpus.max()) + self.gpn + 1
        self._blocks: list[np.ndarray] = []  # routing of block b, GPU-major (ep * BLOCK, topk)
        self._cum: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0, np.int64),) * 2]

    def _block(self, b: int) -> np.ndarray:
        from cosim.traffic.expert_routing import route_tokens

        while len(self._blocks) <= b:
            self._blocks.append(route_tokens(self.BLOCK * self.ep_gpus.size,
                                             stream=len(self._blocks), **self.route))
        return self._blocks[b]

    def _keyed(self, routing: np.ndarray, per_gpu: int) -> tuple[np.ndarray, np.ndarray]:
        from cosim.traffic.ep_alltoall import ep_token_counts

        token_gpu = np.repeat(self.ep_gpus, per_gpu)
        if self.placement is None:
            src, dst, tok, tag = ep_token_counts(routing, token_gpu, self.expert_gpu, self.gpn,
                                                 self.mode)
        else:
            from cosim.traffic.ep_alltoall import pair_gpus

            pg = pair_gpus(routing, token_gpu, self.placement, self.ep_gpus)
            src, dst, tok, tag = ep_token_counts(routing, token_gpu, None, self.gpn, self.mode,
                                                 pair_gpu=pg)
        n = self._n
        return (tag.astype(np.int64) * n + src) * n + dst, tok.astype(np.int64)

    @staticmethod
    def _add(*parts: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        keys = np.concatenate([p[0] for p in parts])
        uniq, inv = np.unique(keys, return_inverse=True)
        return uniq, np.bincount(inv, weights=np.concatenate([p[1] for p in parts]),
                                 minlength=uniq.size).astype(np.int64)

    def counts(self, tokens_per_gpu: int) -> tuple[np.ndarray, ...]:
        """(src, dst, tokens, tag) of the dispatch of `tokens_per_gpu` tokens on each EP GPU."""
        full, rest = divmod(int(tokens_per_gpu), self.BLOCK)
        while len(self._cum) <= full:
            b = len(self._cum) - 1
            self._cum.append(self._add(self._cum[b], self._keyed(self._block(b), self.BLOCK)))
        keys, tok = self._cum[full]
        if rest:
            k = self.route["topk"]
            part = self._block(full).reshape(self.ep_gpus.size, self.BLOCK, k)[:, :rest]
            keys, tok = self._add((keys, tok), self._keyed(part.reshape(-1, k), rest))
        n = self._n
        return keys // n % n, keys % n, tok, keys // (n * n)


class FabricComm:
    """CommModel whose phases are flow batches timed by a NetworkBackend (see module doc)."""

    name = "fabric"
    memoised = True  # time_s keeps its own results (IterationCost does not memoise it again)

    def __init__(self, backend: Any, layout: ParallelLayout, shape: TrafficShape, first_gpu: int,
                 gpus_per_node: int, *, dispatch_dtype: str = "fp8",
                 combine_dtype: str = "bfloat16", activation_dtype: str = "bfloat16",
                 launch_us: float = 5.0, imbalance: float = 0.0, token_grid_percent: float = 2.0,
                 num_groups: int = 1, topk_groups: int | None = None, seed: int = 0,
                 lookups: NetworkLookups | None = None):
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
        self.lookups = lookups if lookups is not None else NetworkLookups()
        self._phase: dict[tuple, float] = {}  # per grid point: seconds of one layer's phase
        self._iter: dict[int, tuple[float, int]] = {}  # tokens -> (seconds, flow-batch lookups)
        self._stream: EPTokenStream | None = None  # built on the first EP phase
        self.flow_batches = 0

    @classmethod
    def from_config(cls, cfg: Any, spec: Any, layout: ParallelLayout, first_gpu: int,
                    shared: dict) -> FabricComm:
        """Build from the run's config; `shared` holds the graph, backend and lookup counters
        of the run (created here by the first model that needs them)."""
        from cosim.network.backend import make_backend
        from cosim.network.topology import build_fabric
        from cosim.serving.network_lookups import run_lookups

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
            from cosim.errors import ConfigError

            raise ConfigError("topology.num_nodes",
                              f"the instance needs GPUs {first_gpu}..{need - 1}; the topology has "
                              f"{shared['graph'].num_gpus}")
        return cls(shared["backend"], layout, shape, first_gpu, int(cfg.topology.gpus_per_node),
                   dispatch_dtype=d.dispatch_dtype, combine_dtype=d.combine_dtype,
                   activation_dtype=str(act), launch_us=d.launch_us,
                   imbalance=d.expert_imbalance, token_grid_percent=d.token_grid_percent,
                   num_groups=int(hf.get("n_group", 1) or 1),
                   topk_groups=int(hf["topk_group"]) if hf.get("topk_group") else None,
                   seed=int(cfg.seed), lookups=run_lookups(shared))

    # --- phases ------------------------------------------------------------------------------
    def _makespan(self, flows) -> float:
        if len(flows) == 0:
            return 0.0
        self.flow_batches += 1
        return float(self.lookups.simulate(self.backend, flows).makespan)

    def _ep(self, tokens_per_gpu: int) -> tuple[float, float]:
        """(dispatch, combine) seconds of one MoE layer with `tokens_per_gpu` on each EP GPU:
        two lookups, answered by the run's memo or (both directions share one routing) by the
        backend."""
        d = self._phase.get(("ep", "dispatch", tokens_per_gpu))
        if d is not None:
            self.lookups.memo += 2
            return d, self._phase[("ep", "combine", tokens_per_gpu)]
        from cosim.network.flows import FlowBatch
        from cosim.traffic.ep_alltoall import token_bytes

        s = self.shape
        if self._stream is None:
            self._stream = EPTokenStream(self.ep_gpus, s.num_experts, s.topk, self.gpn, self.mode,
                                         imbalance=self.imbalance, seed=self.seed,
                                         num_groups=self.num_groups, topk_groups=self.topk_groups,
                                         experts=self.layout.experts)
        src, dst, tok, tag = self._stream.counts(tokens_per_gpu)
        out = []
        for name, (a, b), dtype in (("dispatch", (src, dst), self.dispatch_dtype),
                                    ("combine", (dst, src), self.combine_dtype)):
            flows = FlowBatch.from_arrays(a, b, tok * token_bytes(s.hidden, dtype), None, tag)
            if len(flows) == 0:
                self.lookups.memo += 1  # nothing to send: answered without the network
            t = self._phase[("ep", name, tokens_per_gpu)] = self._makespan(flows)
            out.append(t)
        return out[0], out[1]

    def _allreduce(self, group_tokens: int) -> float:
        key = ("ar", group_tokens)
        t = self._phase.get(key)
        if t is not None:
            self.lookups.memo += 1
            return t
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
        flows = FlowBatch.concat(batches)
        if len(flows) == 0:
            self.lookups.memo += 1
        t = self._phase[key] = self._makespan(flows)
        return t

    def breakdown(self, tokens: int) -> dict[str, float]:
        """Seconds per pattern for one iteration of `tokens` tokens (all layers)."""
        out = {"ep_dispatch": 0.0, "ep_combine": 0.0, "tp_allreduce": 0.0}
        if tokens <= 0:
            return out
        s, lay = self.shape, self.layout
        if lay.ep > 1 and s.num_moe_layers:
            disp, comb = self._ep(grid_up(-(-tokens // lay.attention_gpus), self.grid))
            out["ep_dispatch"] = s.num_moe_layers * (disp + self.launch_s)
            out["ep_combine"] = s.num_moe_layers * (comb + self.launch_s)
        if lay.tp > 1:
            gt = grid_up(-(-tokens // lay.dp), self.grid)
            out["tp_allreduce"] = (s.num_layers + s.num_dense_layers) * (
                self._allreduce(gt) + self.launch_s)
        return out

    def time_s(self, tokens: int) -> float:
        """Exposed communication of an iteration of `tokens` tokens; each call counts its
        flow-batch lookups (the same number whether the memo or the backend answers)."""
        e = self._iter.get(tokens)
        if e is not None:
            self.lookups.memo += e[1]
            return e[0]
        before = self.lookups.lookups
        t = sum(self.breakdown(tokens).values())
        self._iter[tokens] = (t, self.lookups.lookups - before)
        return t

    def stats(self) -> dict:
        out: dict = {"comm_model": f"fabric:{getattr(self.backend, 'name', '?')}",
                     "comm_ep_mode": self.mode, "comm_flow_batches": self.flow_batches,
                     "comm_phase_results": len(self._phase),
                     "comm_token_grid_percent": self.grid}
        bstats = getattr(self.backend, "stats", None)
        if callable(bstats):
            out["network_cache_grid_percent"] = bstats().get("grid_percent")
        return out

    def close(self) -> None:
        pass  # the shared backend is closed once by the simulation
