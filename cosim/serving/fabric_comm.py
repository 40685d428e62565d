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
                 lookups: NetworkLookups | None = None, recorder: Any = None,
                 kernel_mode: str = "normal", ll_launch_us: float = 25.5,
                 ll_max_tokens: int = 128):
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
        from cosim.traffic.ep_alltoall import kernel_send_mode

        ep_nodes = np.unique(self.ep_gpus // self.gpn).size
        self.normal_mode = kernel_send_mode("normal", ep_nodes)
        # network.ep_kernel_mode: normal | low_latency | auto (low-latency kernels for
        # decode-only iterations, normal ones with prefill, as SGLang's --deepep-mode auto)
        self.kernel_mode = kernel_mode
        self.phase_aware = kernel_mode == "auto"
        self.mode = kernel_send_mode(kernel_mode, ep_nodes) if kernel_mode != "auto" \
            else f"{self.normal_mode}+expert"
        self.ll_launch_s = float(ll_launch_us) * 1e-6
        self.ll_max_tokens = int(ll_max_tokens)
        groups_ok = (num_groups > 1 and shape.num_experts % num_groups == 0
                     and topk_groups is not None and topk_groups * (shape.num_experts // num_groups)
                     >= shape.topk)
        self.num_groups = num_groups if groups_ok else 1
        self.topk_groups = topk_groups if groups_ok else None
        self.lookups = lookups if lookups is not None else NetworkLookups()
        self._phase: dict[tuple, float] = {}  # per grid point: seconds of one layer's phase
        # tokens (and decode_only under ep_kernel_mode=auto) -> (seconds, flow-batch lookups,
        # breakdown, the phases it used: for output.flows)
        self._iter: dict = {}
        # output.flows (cosim.serving.flow_record): the phases an iteration uses, per tokens
        self.recorder = recorder
        self._groups: list[tuple] = []
        self._streams: dict[str, EPTokenStream] = {}  # send mode -> stream (first EP phase)
        self._bytes: dict[tuple, dict[str, tuple[float, float]]] = {}  # link_bytes, per grid point
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
                   seed=int(cfg.seed), lookups=run_lookups(shared),
                   recorder=shared.get("flow_recorder"),
                   kernel_mode=str(getattr(cfg.network, "ep_kernel_mode", "normal")),
                   ll_launch_us=float(getattr(cfg.network, "ep_low_latency_us", 25.5)),
                   ll_max_tokens=int(getattr(cfg.network, "ep_low_latency_max_tokens", 128)))

    # --- phases ------------------------------------------------------------------------------
    def _makespan(self, flows, key: tuple | None = None, traffic_class: str = "") -> float:
        if len(flows) == 0:
            return 0.0
        self.flow_batches += 1
        result = self.lookups.simulate(self.backend, flows)
        if self.recorder is not None and key is not None:
            self.recorder.pattern((id(self), *key), flows, result.finish, traffic_class,
                                  getattr(self.backend, "name", "?"))
        return float(result.makespan)

    def _stream(self, kernel: str) -> EPTokenStream:
        """The routed token stream of DeepEP's `kernel` family (its send mode), built once."""
        from cosim.traffic.ep_alltoall import kernel_send_mode

        send = self.normal_mode if kernel == "normal" else kernel_send_mode(kernel, 1)
        stream = self._streams.get(send)
        if stream is None:
            s = self.shape
            stream = self._streams[send] = EPTokenStream(
                self.ep_gpus, s.num_experts, s.topk, self.gpn, send, imbalance=self.imbalance,
                seed=self.seed, num_groups=self.num_groups, topk_groups=self.topk_groups,
                experts=self.layout.experts)
        return stream

    def _ep(self, tokens_per_gpu: int, kernel: str = "normal") -> tuple[float, float]:
        """(dispatch, combine) seconds of one MoE layer with `tokens_per_gpu` on each EP GPU
        sent by DeepEP's `kernel` family: two lookups, answered by the run's memo or (both
        directions share one routing) by the backend."""
        key = (kernel, tokens_per_gpu)
        d = self._phase.get(("ep", "dispatch", *key))
        if d is not None:
            self.lookups.memo += 2
            return d, self._phase[("ep", "combine", *key)]
        from cosim.network.flows import FlowBatch
        from cosim.traffic.ep_alltoall import ll_message_bytes, token_bytes

        s = self.shape
        src, dst, tok, tag = self._stream(kernel).counts(tokens_per_gpu)
        out = []
        for name, (a, b), dtype in (("dispatch", (src, dst), self.dispatch_dtype),
                                    ("combine", (dst, src), self.combine_dtype)):
            per = (ll_message_bytes(s.hidden, dtype, name) if kernel == "low_latency"
                   else token_bytes(s.hidden, dtype))
            flows = FlowBatch.from_arrays(a, b, tok * per, None, tag)
            if len(flows) == 0:
                self.lookups.memo += 1  # nothing to send: answered without the network
            pkey = ("ep", name, *key)
            t = self._phase[pkey] = self._makespan(flows, pkey, f"ep_{name}")
            out.append(t)
        return out[0], out[1]

    def _ep_layer(self, tokens_per_gpu: int, kernel: str) -> tuple[float, float]:
        """(dispatch, combine) of one MoE layer with each kernel's fixed cost: normal, one
        call; low_latency, one call per buffer-full (ll_rounds), each with ll_launch_s."""
        layers = self.shape.num_moe_layers
        if kernel == "normal":
            disp, comb = self._ep(tokens_per_gpu)
            self._groups.append((("ep", "dispatch", "normal", tokens_per_gpu), layers))
            self._groups.append((("ep", "combine", "normal", tokens_per_gpu), layers))
            return disp + self.launch_s, comb + self.launch_s
        from cosim.traffic.ep_alltoall import ll_rounds

        disp = comb = 0.0
        for t in ll_rounds(tokens_per_gpu, self.ll_max_tokens):
            d, c = self._ep(t, kernel)
            self._groups.append((("ep", "dispatch", kernel, t), layers))
            self._groups.append((("ep", "combine", kernel, t), layers))
            disp += d + self.ll_launch_s
            comb += c + self.ll_launch_s
        return disp, comb

    def kernel_for(self, decode_only: bool) -> str:
        """The DeepEP kernel family of an iteration (network.ep_kernel_mode)."""
        if self.kernel_mode == "auto":
            return "low_latency" if decode_only else "normal"
        return self.kernel_mode

    def _allreduce(self, group_tokens: int) -> float:
        key = ("ar", group_tokens)
        t = self._phase.get(key)
        if t is not None:
            self.lookups.memo += 1
            return t
        flows = self._ar_flows(group_tokens)
        if len(flows) == 0:
            self.lookups.memo += 1
        t = self._phase[key] = self._makespan(flows, key, "allreduce")
        return t

    def _ar_flows(self, group_tokens: int):
        """Flows of one layer's TP all-reduces (every attention-DP group's `group_tokens`)."""
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
        return FlowBatch.concat(batches)

    def link_bytes(self, tokens: int, decode_only: bool = False) -> dict[str, tuple[float, float]]:
        """Bytes of one iteration of `tokens` tokens per traffic class (ep_dispatch,
        ep_combine, allreduce), as (NVLink, scale-out) by the flows' endpoints, all layers:
        the flows `breakdown` times (same token grid), without the network."""
        from cosim.network.fabric import domain_bytes
        from cosim.traffic.ep_alltoall import token_bytes

        out: dict[str, tuple[float, float]] = {}
        s, lay = self.shape, self.layout
        if tokens > 0 and lay.ep > 1 and s.num_moe_layers:
            t = grid_up(-(-tokens // lay.attention_gpus), self.grid)
            kernel = self.kernel_for(decode_only)
            hit = self._bytes.get(("ep", kernel, t))
            if hit is None:
                from cosim.traffic.ep_alltoall import ll_message_bytes, ll_rounds

                rounds = [t] if kernel == "normal" else ll_rounds(t, self.ll_max_tokens)
                hit = {"ep_dispatch": (0.0, 0.0), "ep_combine": (0.0, 0.0)}
                for r in rounds:
                    src, dst, tok, _ = self._stream(kernel).counts(r)
                    for name, dtype in (("dispatch", self.dispatch_dtype),
                                        ("combine", self.combine_dtype)):
                        per = (ll_message_bytes(s.hidden, dtype, name) if kernel == "low_latency"
                               else token_bytes(s.hidden, dtype))
                        nv, so = domain_bytes(src, dst, tok * per, self.gpn)
                        a, b = hit[f"ep_{name}"]
                        hit[f"ep_{name}"] = (a + nv * s.num_moe_layers, b + so * s.num_moe_layers)
                self._bytes[("ep", kernel, t)] = hit
            out.update(hit)
        if tokens > 0 and lay.tp > 1:
            gt = grid_up(-(-tokens // lay.dp), self.grid)
            hit = self._bytes.get(("ar", gt))
            if hit is None:
                fl = self._ar_flows(gt)
                nv, so = domain_bytes(fl.src, fl.dst, fl.size, self.gpn)
                n = s.num_layers + s.num_dense_layers
                hit = self._bytes[("ar", gt)] = {"allreduce": (nv * n, so * n)}
            out.update(hit)
        return out

    def breakdown(self, tokens: int, decode_only: bool = False) -> dict[str, float]:
        """Seconds per pattern for one iteration of `tokens` tokens (all layers)."""
        out = {"ep_dispatch": 0.0, "ep_combine": 0.0, "tp_allreduce": 0.0}
        if tokens <= 0:
            return out
        s, lay = self.shape, self.layout
        if lay.ep > 1 and s.num_moe_layers:
            t = grid_up(-(-tokens // lay.attention_gpus), self.grid)
            disp, comb = self._ep_layer(t, self.kernel_for(decode_only))
            out["ep_dispatch"] = s.num_moe_layers * disp
            out["ep_combine"] = s.num_moe_layers * comb
        if lay.tp > 1:
            gt = grid_up(-(-tokens // lay.dp), self.grid)
            out["tp_allreduce"] = (s.num_layers + s.num_dense_layers) * (
                self._allreduce(gt) + self.launch_s)
            self._groups.append((("ar", gt), s.num_layers + s.num_dense_layers))
        return out

    def time_s(self, tokens: int, decode_only: bool = False) -> float:
        """Exposed communication of an iteration of `tokens` tokens (decode_only: no prefill
        in it, which picks the kernels under ep_kernel_mode=auto); each call counts its
        flow-batch lookups (the same number whether the memo or the backend answers)."""
        key = (tokens, decode_only) if self.phase_aware else tokens
        e = self._iter.get(key)
        if e is not None:
            self.lookups.memo += e[1]
            return e[0] if self.recorder is None else self._replay_groups(e)
        before = self.lookups.lookups
        self._groups = []
        b = self.breakdown(tokens, decode_only)
        t = sum(b.values())
        e = self._iter[key] = (t, self.lookups.lookups - before, b, tuple(self._groups))
        return t if self.recorder is None else self._replay_groups(e)

    def _replay_groups(self, e: tuple) -> float:
        """Tell the flow recorder which phases (and how many layers of each) this iteration
        used; returns its seconds."""
        for key, layers in e[3]:
            self.recorder.use((id(self), *key), layers=layers)
        return e[0]

    def parts(self, tokens: int, decode_only: bool = False) -> dict[str, float]:
        """breakdown() of an iteration time_s has priced (no lookup counted again: two-batch
        overlap asks it after time_s to split a half's communication into its stages)."""
        key = (tokens, decode_only) if self.phase_aware else tokens
        e = self._iter.get(key)
        if e is None:
            self.time_s(tokens, decode_only)
            e = self._iter[key]
        return e[2]

    def stats(self) -> dict:
        out: dict = {"comm_model": f"fabric:{getattr(self.backend, 'name', '?')}",
                     "comm_ep_mode": self.mode, "comm_flow_batches": self.flow_batches,
                     "comm_phase_results": len(self._phase),
                     "comm_token_grid_percent": self.grid}
        if self.kernel_mode != "normal":
            out["comm_ep_kernel_mode"] = self.kernel_mode
        bstats = getattr(self.backend, "stats", None)
        if callable(bstats):
            out["network_cache_grid_percent"] = bstats().get("grid_percent")
        return out

    def close(self) -> None:
        pass  # the shared backend is closed once by the simulation
