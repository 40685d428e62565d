"""`afd`: Attention-FFN disaggregation with micro-batch ping-pong (MegaScale-Infer style).

An AFD unit is M attention GPUs (roles.attention.layout: tp x dp; DP attention, they hold
the KV cache, the embedding and the LM head) and N FFN GPUs (roles.ffn.layout: ep x moe_tp;
routed experts, shared experts and dense MLPs: cosim.model.params places them so). Every
layer sends each micro-batch's activations A->F (M-to-N, each token to the FFN GPUs of its
top-k experts) and the results F->A; m micro-batches (deployment.micro_batches) ping-pong so
that one micro-batch's transfers and FFN hide behind another's attention.

Per iteration (docs/deployments/afd.md):
- per attention-DP rank: n = ceil(decode requests / dp), prefill tokens likewise; split
  into m' = min(m, tokens) micro-batches as evenly as possible;
- micro-batch k: attention t_a = attention stage of the step cost model / L layers, FFN
  t_f = FFN stage (the MoE sees the tokens of all dp ranks) / L, A2F / F2A times from the
  network (deployment.comm.model; network.mode phase or iteration);
- the layer pipeline is scheduled by cosim.timeline; the iteration ends with the LM head
  and sampling of the whole batch on the attention group (the "other" stage), so
  T = T_pipeline + t_head, and T_free (communication free) likewise: comm_exposed = T - T_free.
Prefill runs in the attention group (prefill chunks travel the same pipeline); `pd_afd`
moves it to separate prefill instances.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

from cosim.experts.group import ExpertGroup
from cosim.model.layout import ParallelLayout
from cosim.network.flows import FlowBatch
from cosim.serving.comm import NoComm, TrafficShape
from cosim.serving.deployments import register_deployment
from cosim.serving.deployments._transfers import (
    DisaggDeployment,
    TransferStatsView,
    TransferTimer,
)
from cosim.serving.deployments.base import Deployment, SimContext
from cosim.serving.deployments.placement import (
    TrafficBytes,
    UnitGPUs,
    locality_key,
    place_afd_units,
)
from cosim.serving.events import IterationEnd
from cosim.serving.instance import Instance, InstanceInfo
from cosim.serving.iteration_cost import IterationCost
from cosim.serving.memory_plan import MemoryPlan, plan_memory
from cosim.serving.router import make_router
from cosim.timeline import afd_iteration_time, afd_pipeline, chain_makespan, schedule_pipeline
from cosim.timeline.network_coupling import time_transfers
from cosim.traffic.tags import FlowTag


def afd_memory_plans(spec: Any, hardware: Any, memory: Any, scheduler: Any,
                     att_layout: ParallelLayout, ffn_layout: ParallelLayout,
                     min_tokens: int, ffn_hardware: Any = None) -> tuple[MemoryPlan, MemoryPlan]:
    """Per-GPU memory plans of the attention group (weights + KV) and the FFN group (experts),
    each on its GPU kind (`ffn_hardware`, when given, for the FFN group).

    The FFN group holds no KV: it is feasible when its weights, activations and runtime
    reserve fit. Its activations are those of the tokens of all attention-DP ranks that one
    FFN GPU receives: token budget x dp_attention / N per GPU, each with its top-k copies.
    """
    att = plan_memory(spec, att_layout, hardware, memory, scheduler, min_tokens, stage="attention")
    n_ffn = ffn_layout.ep * ffn_layout.moe_tp
    tokens = int(memory.activation_tokens or scheduler.max_batched_tokens)
    ffn_tokens = max(1, math.ceil(tokens * att_layout.dp / n_ffn))
    ffn_mem = dataclasses.replace(memory, activation_tokens=ffn_tokens)
    ffn_sched = dataclasses.replace(scheduler, max_running_requests=0)  # no logits, no state
    ffn = plan_memory(spec, ffn_layout, hardware if ffn_hardware is None else ffn_hardware,
                      ffn_mem, ffn_sched, 0, stage="ffn")
    fits = ffn.weight_bytes + ffn.activation_bytes + ffn.reserve_bytes <= ffn.usable_bytes
    ffn = dataclasses.replace(ffn, kv_tokens=0, kv_blocks=0, kv_blocks_per_rank=0, kv_bytes=0.0,
                              kv_bytes_per_token=0.0, min_tokens=0,
                              feasible=fits, reason="" if fits else ffn.reason)
    return att, ffn


def afd_unit_gpus(d: Any) -> int:
    """GPUs of the AFD units of deployment config `d`: count x (M attention + N FFN)."""
    ra, rf = d.roles["attention"], d.roles["ffn"]
    return int(ra.count) * (ra.layout.tp * ra.layout.dp + rf.layout.ep * rf.layout.moe_tp)


def split_even(total: int, parts: int) -> list[int]:
    """`total` split into `parts` integers differing by at most one (larger first)."""
    base, extra = divmod(int(total), int(parts))
    return [base + (1 if k < extra else 0) for k in range(parts)]


# A2F / F2A flow batches shared by the runs of one process (a search's runs in one worker):
# a pure function of the GPUs, the token count, the bytes per token and the routing (seeded).
_M2N_FLOWS: OrderedDict[tuple, tuple[FlowBatch, FlowBatch]] = OrderedDict()
_M2N_FLOWS_MAX = 2_000_000  # flows held at most (28 bytes each: about 56 MB)
_M2N_COUNT = [0]


@functools.lru_cache(maxsize=65536)
def _split(total: int, parts: int) -> tuple[int, ...]:
    """split_even, memoised (the AFD iteration splits every rank's batch)."""
    return tuple(split_even(total, parts))


class AFDTraffic:
    """A2F / F2A flows of one micro-batch of an AFD unit, and their isolated times (memoised)."""

    def __init__(self, spec: Any, att_gpus: np.ndarray, ffn_gpus: np.ndarray, timer: TransferTimer,
                 a2f_dtype: str, f2a_dtype: str, imbalance: float = 0.0, grid_percent: float = 0.0,
                 experts: ExpertGroup | None = None):
        from cosim.traffic.ep_alltoall import token_bytes

        self.spec = spec
        self.att = np.asarray(att_gpus)
        self.ffn = np.asarray(ffn_gpus)
        self.timer = timer
        self.a2f_bytes = token_bytes(spec.hidden_size, a2f_dtype)
        self.f2a_bytes = token_bytes(spec.hidden_size, f2a_dtype)
        self.imbalance = float(imbalance)
        self.grid_percent = float(grid_percent)
        # expert placement over the FFN GPUs (deployment.experts); None: the even split
        self.experts = experts if experts is not None and experts.num_gpus == self.ffn.size \
            else None
        self._flows: dict[int, tuple[FlowBatch, FlowBatch]] = {}
        self._times: dict[int, tuple[float, float]] = {}
        self._finish: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.bytes: TrafficBytes | None = None  # the deployment's counter (count_bytes)
        self._split_bytes: dict[int, tuple[float, float, float, float]] = {}

    def count_bytes(self, tokens_per_gpu: list[int], layers: int) -> None:
        """Add the A2F / F2A bytes of micro-batches of `tokens_per_gpu` tokens per attention
        GPU, each sent once per layer, to `self.bytes` (NVLink vs scale-out)."""
        if self.bytes is None:
            return
        for t in tokens_per_gpu:
            if t <= 0:
                continue
            hit = self._split_bytes.get(t)
            if hit is None:
                a2f, f2a = self.flows(t)
                hit = self._split_bytes[t] = (*self.bytes.split(a2f.src, a2f.dst, a2f.size),
                                              *self.bytes.split(f2a.src, f2a.dst, f2a.size))
            self.bytes.add("a2f", hit[0], hit[1], layers)
            self.bytes.add("f2a", hit[2], hit[3], layers)

    def flows(self, tokens_per_gpu: int) -> tuple[FlowBatch, FlowBatch]:
        """(A2F, F2A) flows of a micro-batch with `tokens_per_gpu` tokens on each attention GPU."""
        hit = self._flows.get(tokens_per_gpu)
        if hit is None:
            from cosim.traffic.m2n import m2n_flows

            moe = self.spec.moe
            kw: dict = {"mode": "split"}
            if moe is not None and self.ffn.size and (self.experts is not None
                                                      or moe.num_experts % self.ffn.size == 0):
                kw = {"mode": "topk", "topk": int(moe.topk), "num_experts": int(moe.num_experts),
                      "imbalance": self.imbalance, "seed": 0}
                if self.experts is not None:  # each copy to a GPU holding a replica
                    kw["experts"] = self.experts
            key = (self.att.tobytes(), self.ffn.tobytes(), int(tokens_per_gpu), self.a2f_bytes,
                   self.f2a_bytes, *sorted((k, v) for k, v in kw.items() if k != "experts"),
                   self.experts.digest if self.experts is not None else "")
            hit = _M2N_FLOWS.get(key)
            if hit is None:
                a2f = m2n_flows(self.att, self.ffn, tokens_per_gpu, self.a2f_bytes, direction="a2f", **kw)
                f2a = m2n_flows(self.att, self.ffn, tokens_per_gpu, self.f2a_bytes, direction="f2a", **kw)
                for fb in (a2f, f2a):  # shared between runs: nobody may write into them
                    for arr in (fb.src, fb.dst, fb.size, fb.start, fb.tag):
                        arr.flags.writeable = False
                hit = _M2N_FLOWS[key] = (a2f, f2a)
                _M2N_COUNT[0] += len(a2f) + len(f2a)
                while _M2N_COUNT[0] > _M2N_FLOWS_MAX and len(_M2N_FLOWS) > 1:
                    _, (x, y) = _M2N_FLOWS.popitem(last=False)
                    _M2N_COUNT[0] -= len(x) + len(y)
            else:
                _M2N_FLOWS.move_to_end(key)
            self._flows[tokens_per_gpu] = hit
        return hit

    def bucket(self, tokens_per_gpu: int) -> int:
        """Token count rounded up to the grid (deployment.comm.token_grid_percent): iterations
        that differ by a few tokens share one traffic pattern and one network result."""
        t = int(tokens_per_gpu)
        g = self.grid_percent
        if g <= 0 or t <= 32:
            return t
        k = math.ceil(math.log(t) / math.log1p(g / 100.0) - 1e-9)
        return max(t, math.ceil((1.0 + g / 100.0) ** k))

    def times(self, tokens_per_gpu: int) -> tuple[float, float]:
        """Isolated (A2F, F2A) times of one micro-batch (network.mode=phase)."""
        hit = self._times.get(tokens_per_gpu)
        if hit is None:
            if tokens_per_gpu <= 0 or self.timer.free:
                hit = (0.0, 0.0)
            else:
                a2f, f2a = self.flows(tokens_per_gpu)
                fa = self.timer.finish(a2f, record=((id(self), "a2f", tokens_per_gpu), "a2f"))
                ff = self.timer.finish(f2a, record=((id(self), "f2a", tokens_per_gpu), "f2a"))
                self._finish[tokens_per_gpu] = (fa, ff)
                hit = (float(fa.max()) if fa.size else 0.0, float(ff.max()) if ff.size else 0.0)
            self._times[tokens_per_gpu] = hit
        elif self.timer.backend is not None and tokens_per_gpu > 0:
            self.timer.lookups.memo += 2  # the A2F and F2A batches, timed earlier in the run
        return hit


class AttentionTPAllReduce:
    """The TP all-reduce that ends every attention layer of an AFD unit whose attention is
    tensor parallel (deployment.options.attention_tp_allreduce).

    Megatron-style TP attention (arXiv 1909.08053, section 3) leaves each TP rank with partial
    sums of the output projection; the layer ends with an all-reduce of the hidden states over
    the TP group. Under AFD it is a reduce-scatter before the A2F send (each TP rank sends its
    1/tp share of the tokens: AFDInstance's tokens per GPU) and an all-gather after F2A (every
    rank needs the whole hidden state for the next layer's QKV projection): the bytes of one
    all-reduce. Each layer and micro-batch pays the all-reduce of its tokens per DP rank,
    priced by the comm model chunked uses for its TP all-reduce (`comm`, built by the run's
    comm_for over the unit's attention GPUs: cosim.traffic.allreduce flows on the network
    backend, or the alpha-beta ring), inside the attention stage.
    """

    def __init__(self, comm: Any, shape_layers: int, layers: int, dp: int,
                 counter: TrafficBytes | None = None):
        self.comm = comm
        self.n = max(int(shape_layers), 1)  # the layers comm.time_s prices an all-reduce for
        self.L = int(layers)
        self.dp = int(dp)
        self.bytes = counter
        self._memo: dict[int, tuple[float, float, float]] = {}
        self.seconds = 0.0  # all-reduce seconds priced into the attention stage, all layers

    def _one(self, per_rank: int) -> tuple[float, float, float]:
        """(seconds of one layer's all-reduce, its NVLink bytes, its scale-out bytes).
        comm.time_s is asked every time: it memoises itself and counts each ask as the
        run's network lookups do (the same count whether its memo or the backend answers)."""
        if per_rank <= 0:
            return (0.0, 0.0, 0.0)
        tokens = per_rank * self.dp
        t = self.comm.time_s(tokens) / self.n
        hit = self._memo.get(per_rank)
        if hit is None:
            lb = getattr(self.comm, "link_bytes", None)
            nv, so = lb(tokens).get("allreduce", (0.0, 0.0)) if lb is not None else (0.0, 0.0)
            hit = self._memo[per_rank] = (t, nv / self.n, so / self.n)
        return (t, hit[1], hit[2])

    def seconds_per_layer(self, per_rank: int) -> float:
        """Seconds of one layer's all-reduce of `per_rank` tokens per attention-DP rank."""
        return self._one(int(per_rank))[0]

    def per_layer(self, per_rank: list[int]) -> np.ndarray:
        """Per micro-batch (tokens per attention-DP rank): seconds of one layer's all-reduce;
        counts the bytes of all L layers (summary.json traffic_bytes.allreduce)."""
        out = []
        for t in per_rank:
            s, nv, so = self._one(int(t))
            out.append(s)
            if self.bytes is not None and t > 0:
                self.bytes.add("allreduce", nv, so, self.L)
        arr = np.array(out)
        self.seconds += float(arr.sum()) * self.L
        return arr


class AFDCommStats:
    """What summary.json's `comm` entry shows for the AFD units."""

    def __init__(self, timer: TransferTimer):
        self.timer = timer
        self.solves = 0
        self.rounds = 0
        self.unconverged = 0
        self.tp_ars: list[AttentionTPAllReduce] = []  # attention tp > 1

    def stats(self) -> dict:
        out = {"afd_network_mode": self.timer.mode, "afd_iteration_mode_solves": self.solves,
               "afd_fixed_point_rounds": self.rounds, "afd_unconverged": self.unconverged}
        if self.tp_ars:  # seconds of attention-stage TP all-reduce, all units' iterations
            out["afd_attention_tp_allreduce_s"] = sum(a.seconds for a in self.tp_ars)
        return out


@dataclass
class AFDIteration:
    """One priced AFD iteration (what the timeline recording keeps)."""

    total_s: float
    free_s: float
    attention_busy_s: float
    ffn_busy_s: float
    micro_batches: int
    t_attention: np.ndarray  # per micro-batch, per layer
    t_ffn: np.ndarray
    tokens_per_gpu: np.ndarray  # per micro-batch: tokens each attention GPU sends
    detail: Any = None  # (pipeline, schedule, coupled) when recorded


def layer_stage_sum(num_layers: int, row: list[float]) -> float:
    """One stage's busy time, numpy's `d.sum(axis=(0, 2))[s]` over the [L, S, m] stage block
    whose row d[l, s, :] is `row` in every layer, bit for bit for m < 8 and L * S * m within
    numpy's reduction buffer (8192 items): numpy adds each layer's row (pairwise_sum, a plain
    running sum below 8 items) onto the running total, layer after layer
    (tests/test_des_hot_path.py checks it against numpy)."""
    p = 0.0
    for x in row:
        p += x
    out = 0.0
    for _ in range(num_layers):
        out += p
    return out


class AFDTimer:
    """Iteration time of an AFD unit from its micro-batches' stage times (memoised).

    With identical micro-batches the closed form gives the time exactly (O(1)); otherwise
    the layer pipeline is scheduled (cosim.timeline). network.mode=iteration couples the
    pipeline with the backend (memoised on the micro-batch token counts and the stage times
    rounded to 1 %).
    """

    def __init__(self, num_layers: int, traffic: AFDTraffic, comm: AFDCommStats):
        self.L = int(num_layers)
        self.traffic = traffic
        self.comm = comm
        self._memo: dict[tuple, tuple] = {}
        self._uneven: dict[tuple, tuple] = {}  # phase mode: stage times -> iteration
        self.tp_ar: AttentionTPAllReduce | None = None  # attention tp > 1 (AFDUnits.build)

    def phase_only(self) -> bool:
        """True when iteration() (without detail) only prices the phase model: no
        network.mode=iteration coupling and no flow recorder, so phase_totals answers."""
        timer = self.traffic.timer
        return timer.recorder is None and not (timer.mode == "iteration"
                                               and timer.backend is not None and not timer.free)

    def phase_totals(self, ta_l: list[float], tf_l: list[float],
                     tok_l: list[int]) -> tuple[float, float, float, float]:
        """(time, free time, attention busy, FFN busy) of an iteration from its per-layer
        stage times and tokens per GPU as Python lists, where phase_only(): iteration()'s
        values bit for bit without its arrays (the hot path)."""
        m = len(ta_l)
        L = self.L
        traffic_times = self.traffic.times
        times = [traffic_times(t) for t in tok_l]
        a0, f0 = ta_l[0], tf_l[0]
        c0 = times[0]
        if ta_l.count(a0) == m and tf_l.count(f0) == m and times.count(c0) == m:
            return (afd_iteration_time(L, m, a0, f0, c0[0], c0[1]), afd_iteration_time(L, m, a0, f0),
                    L * m * a0, L * m * f0)
        key = (*ta_l, *tf_l, *tok_l)
        hit = self._uneven.get(key)
        if hit is None:
            a2f_l = [x[0] for x in times]
            f2a_l = [x[1] for x in times]
            total = chain_makespan(L, [ta_l, a2f_l, tf_l, f2a_l])
            free = chain_makespan(L, [ta_l, tf_l])  # (the zero stages hold nothing)
            if m < 8 and 4 * L * m <= 8192:
                busy_a, busy_f = layer_stage_sum(L, ta_l), layer_stage_sum(L, tf_l)
            else:
                d = np.zeros((L, 4, m))  # busy time summed as in iteration() (see there)
                d[:, 0, :] = ta_l
                d[:, 2, :] = tf_l
                per_stage = d.sum(axis=(0, 2))
                busy_a, busy_f = float(per_stage[0]), float(per_stage[2])
            hit = self._uneven[key] = (total, free, busy_a, busy_f)
        return hit

    def iteration(self, ta: np.ndarray, tf: np.ndarray, tok: np.ndarray,
                  detail: bool = False) -> AFDIteration:
        m = len(ta)
        L = self.L
        traffic_times = self.traffic.times
        times = [traffic_times(t) for t in tok.tolist()]
        a2f_l = [x[0] for x in times]
        f2a_l = [x[1] for x in times]
        t_a2f = np.array(a2f_l)
        t_f2a = np.array(f2a_l)
        timer = self.traffic.timer
        iteration_mode = timer.mode == "iteration" and timer.backend is not None and not timer.free
        rec = timer.recorder
        if rec is not None and not iteration_mode:
            tid = id(self.traffic)
            for k, t in enumerate(tok.tolist()):
                rec.use((tid, "a2f", t), layers=L, micro_batch=k)
                rec.use((tid, "f2a", t), layers=L, micro_batch=k)
        ta_l, tf_l = ta.tolist(), tf.tolist()
        a0, f0 = ta_l[0], tf_l[0]
        uniform = (ta_l.count(a0) == m and tf_l.count(f0) == m and a2f_l.count(a2f_l[0]) == m
                   and f2a_l.count(f2a_l[0]) == m)
        if uniform and not detail and not iteration_mode:
            total = afd_iteration_time(L, m, a0, f0, a2f_l[0], f2a_l[0])
            free = afd_iteration_time(L, m, a0, f0)
            return AFDIteration(total, free, L * m * a0, L * m * f0, m, ta, tf, tok)
        zeros = [0.0] * m
        if not detail and not iteration_mode:
            # uneven micro-batches, phase mode: the layer pipeline's makespan without its
            # [L, S, m] schedule (chain_makespan is schedule_pipeline's recurrence, exactly)
            key = (*ta_l, *tf_l, *tok.tolist())
            hit = self._uneven.get(key)
            if hit is None:
                total = chain_makespan(L, [ta_l, a2f_l, tf_l, f2a_l])
                free = chain_makespan(L, [ta_l, zeros, tf_l, zeros])
                # busy time summed as schedule_pipeline sums it (over a C-ordered [L, S, m]
                # array: numpy's summation order depends on the shape), bit for bit
                d = np.zeros((L, 4, m))
                d[:, 0, :] = ta
                d[:, 2, :] = tf
                per_stage = d.sum(axis=(0, 2))
                hit = self._uneven[key] = (total, free, float(per_stage[0]), float(per_stage[2]))
            return AFDIteration(hit[0], hit[1], hit[2], hit[3], m, ta, tf, tok)
        keys_tok = sorted(set(tok.tolist()))
        key_of = np.array([keys_tok.index(t) for t in tok.tolist()])
        free = chain_makespan(L, [ta_l, zeros, tf_l, zeros])
        coupled = None
        if iteration_mode:
            mkey = (tuple(tok.tolist()), tuple(np.round(ta / ta.max(), 2)) if ta.max() > 0 else (),
                    round(float(ta.max()), 8), round(float(tf.max()), 8))
            hit = None if detail else self._memo.get(mkey)
            if hit is not None:
                # the batches time_transfers sent the backend (per-pattern times and one
                # coupled batch per fixed-point round): the memo answers them all
                self.traffic.timer.lookups.memo += hit[3]
                if rec is not None:
                    rec.use((id(self), "iteration", mkey))
                return AFDIteration(hit[0], free, hit[1], hit[2], m, ta, tf, tok)
            pipe = afd_pipeline(L, m, ta[None, :], 0.0, tf[None, :], 0.0,
                                traffic_a2f=2 * key_of[None, :], traffic_f2a=2 * key_of[None, :] + 1)
            pats: list = []
            for t in keys_tok:
                pats.extend(self.traffic.flows(int(t)))
            counts = self.traffic.timer.lookups
            before = counts.lookups
            coupled = time_transfers(pipe, pats, self.traffic.timer, mode="iteration")
            n_lookups = counts.lookups - before
            self.comm.solves += 1
            self.comm.rounds += coupled.rounds
            self.comm.unconverged += 0 if coupled.converged else 1
            if rec is not None:
                _record_coupled(rec, (id(self), "iteration", mkey), coupled, timer)
            pipe, sched = coupled.pipeline, coupled.schedule
            self._memo[mkey] = (sched.makespan, sched.busy_s.get("attention", 0.0),
                                sched.busy_s.get("ffn", 0.0), n_lookups)
        else:
            pipe = afd_pipeline(L, m, ta[None, :], t_a2f[None, :], tf[None, :], t_f2a[None, :],
                                traffic_a2f=2 * key_of[None, :], traffic_f2a=2 * key_of[None, :] + 1)
            sched = schedule_pipeline(pipe)
        det = (pipe, sched, coupled, keys_tok) if detail else None
        return AFDIteration(sched.makespan, free, sched.busy_s.get("attention", 0.0),
                            sched.busy_s.get("ffn", 0.0), m, ta, tf, tok, det)


class AFDInstance(Instance):
    """An AFD unit as a serving instance: E's ranks and scheduler, the AFD iteration time.

    Each attention-DP rank splits its batch into m micro-batches (as evenly as possible);
    micro-batch k's attention lasts the slowest rank's part k (ranks meet at every A2F), its
    FFN prices the tokens of all ranks' parts k, per layer (stage totals / L). The LM head
    and sampling are part of the attention stage, spread over the layers.
    """

    __slots__ = ("afd", "m", "window", "recorded", "totals", "linear_split", "att_gpus",
                 "ffn_cost", "_tok_gpu")

    def __init__(self, info: InstanceInfo, ranks: list, cost: Any, afd: AFDTimer,
                 micro_batches: int, window: tuple[int, int]):
        super().__init__(info, ranks, cost)
        self.afd = afd
        self.m = int(micro_batches)
        self.window = window
        self.recorded: dict[int, AFDIteration] = {}
        self.totals = [0.0] * 4  # time, free time, attention busy, ffn busy
        self._tok_gpu: dict[int, int] = {}  # micro-batch tokens -> tokens each attention GPU sends
        self.linear_split = False  # deployment.micro_batch_cost == "linear_split"
        self.att_gpus: np.ndarray | None = None  # global ids of the attention GPUs (placement)
        self.ffn_cost = cost  # the FFN stage's cost model (another GPU kind: heterogeneous roles)

    def start(self, now: float) -> float | None:
        cost = self.cost
        plans: list[tuple[int, int, int, int, int]] = []
        _, n_all, pt_all, pr_all, wait, run, used, tmax = self.plan_ranks(now, plans)
        if n_all + pt_all == 0:
            self.busy = False
            return None
        m = max(1, min(self.m, tmax))
        ta_l = [0.0] * m  # Python lists while filling: numpy item access is slow
        tok_l = [0] * m
        # attention(n, kv, 0, 0, 0) of a decode-only part (n >= 1) is decode_attention; for
        # IterationCost itself its int-keyed probe is inlined below (the same float steps)
        decode_attention = cost.decode_attention
        g = cost.grid if type(cost) is IterationCost else 0
        fast = cost._attn_dec if g else None
        for n, kv_sum, p_tok, p_kv, p_req in plans:
            nk = _split(n, m)
            if not p_tok:  # decode only (the hot path): the same lookups, fewer steps
                e = None
                last = 0
                w = 0.0
                for k in range(m):
                    nkk = nk[k]
                    if nkk:
                        if nkk == last and e is not None:
                            # a part of the previous one's size: the same lookup (same
                            # context share), its use weights added once more
                            e[3] += 1.0 - w
                            e[4] += w
                        else:
                            last = nkk
                            # round(kv_sum * n / n) is kv_sum (int / int is correctly rounded)
                            kv = kv_sum if nkk == n else round(kv_sum * nkk / n)
                            e = None
                            if g:
                                mk = kv / nkk
                                e = fast.get(nkk << 24 | int(mk // g))
                            if e is None:
                                a = decode_attention(nkk, kv)
                            else:  # IterationCost.decode_attention, inlined
                                f = mk - e[2]
                                w = f / e[7]
                                e[3] += 1.0 - w
                                e[4] += w
                                a = e[0] + e[1] * f
                        if a > ta_l[k]:
                            ta_l[k] = a
                        tok_l[k] += nkk
                continue
            ptk = _split(p_tok, m)
            for k in range(m):
                if nk[k] + ptk[k] == 0:
                    continue
                kvk = round(kv_sum * nk[k] / n) if n else 0
                prk = max(1, -(-p_req * ptk[k] // p_tok)) if ptk[k] else 0
                a = cost.attention(nk[k], kvk, ptk[k], p_kv if ptk[k] else 0, prk)
                if a > ta_l[k]:
                    ta_l[k] = a
                tok_l[k] += nk[k] + ptk[k]
        L = self.afd.L
        dp = self.dp
        tp = self.info.layout.tp
        ffn = self.ffn_cost.ffn
        idx = len(self.rows)
        if (not self.linear_split and not self.window[0] <= idx < self.window[1]
                and self.afd.phase_only()):
            # the hot path: the values below, on Python lists (float / int is numpy's
            # float64 division, the integer steps are the same)
            tf_p = [ffn(-(-t // dp)) / L for t in tok_l]
            tg = self._tok_gpu
            tok_gpu_l = []
            for t in tok_l:
                g = tg.get(t)
                if g is None:
                    g = tg[t] = self.afd.traffic.bucket(((t + dp - 1) // dp + tp - 1) // tp)
                tok_gpu_l.append(g)
            ta_p = [a / L for a in ta_l]
            if self.afd.tp_ar is not None:  # attention TP: each layer ends with its all-reduce
                ar = self.afd.tp_ar.per_layer([(t + dp - 1) // dp for t in tok_l]).tolist()
                ta_p = [a + r for a, r in zip(ta_p, ar, strict=True)]
            total, free, att_busy, ffn_busy = self.afd.phase_totals(ta_p, tf_p, tok_gpu_l)
            self.afd.traffic.count_bytes(tok_gpu_l, L)
            tot = self.totals
            tot[0] += total
            tot[1] += free
            tot[2] += att_busy
            tot[3] += ffn_busy
            self.rows.append((now, total, free, total - free, n_all, pt_all, pr_all, wait, run,
                              used, tmax))
            self.busy = True
            return total
        ta = np.array(ta_l)
        tok_k = np.array(tok_l, dtype=np.int64)
        tf = np.array([ffn(-(-int(t) // dp)) for t in tok_k.tolist()]) / L
        if self.linear_split and m > 1:
            # stage times at the full batch, divided evenly over the m micro-batches
            ta_full = max(cost.attention(n, kv_sum, p_tok, p_kv if p_tok else 0, p_req)
                          for n, kv_sum, p_tok, p_kv, p_req in plans)
            tf_full = ffn(-(-int(tok_k.sum()) // dp)) / L
            ta = np.full(m, ta_full / m)
            tf = np.full(m, tf_full / m)
        ta = ta / L
        per_rank = (tok_k + dp - 1) // dp
        if self.afd.tp_ar is not None:  # attention TP: each layer ends with its all-reduce
            ta = ta + self.afd.tp_ar.per_layer(per_rank.tolist())
        tok_gpu = (per_rank + tp - 1) // tp  # tokens each attention GPU sends (TP ranks share)
        tok_gpu = np.array([self.afd.traffic.bucket(t) for t in tok_gpu.tolist()], dtype=np.int64)
        rec = self.window[0] <= idx < self.window[1]
        it = self.afd.iteration(ta, tf, tok_gpu, detail=rec)
        self.afd.traffic.count_bytes(tok_gpu.tolist(), self.afd.L)
        if rec:
            self.recorded[idx] = it
        tot = self.totals
        tot[0] += it.total_s
        tot[1] += it.free_s
        tot[2] += it.attention_busy_s
        tot[3] += it.ffn_busy_s
        comp, comm = it.free_s, it.total_s - it.free_s
        self.rows.append((now, it.total_s, comp, comm, n_all, pt_all, pr_all, wait, run, used, tmax))
        self.busy = True
        return it.total_s


class _CostView:
    """The AFD units' compute memos (attention and, on another GPU kind, FFN) with the AFD
    communication stats (for summary.json)."""

    def __init__(self, cost: IterationCost, comm: AFDCommStats, ffn_cost: IterationCost | None = None):
        self._costs = [cost] if ffn_cost is None or ffn_cost is cost else [cost, ffn_cost]
        self.comm = comm

    def source_seconds(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for c in self._costs:
            for k, v in c.source_seconds().items():
                out[k] = out.get(k, 0.0) + v
        return out

    def stats(self) -> dict:
        out: dict = {}
        for c in self._costs:
            for k, v in c.stats().items():
                out[k] = out.get(k, 0) + v
        return out


def micro_batches_of(d: Any, opts: Any) -> int:
    """deployment.micro_batches, unless deployment.options.micro_batches (the older spelling)
    is given."""
    alias = getattr(opts, "micro_batches", None)
    return int(alias) if alias is not None else int(getattr(d, "micro_batches", 3))


class AFDUnits:
    """Builds the AFD units of a deployment (used by `afd` and by `pd_afd`'s decode side)."""

    def __init__(self, dep: Deployment, opts: Any, first_gpu: int, decode_only: bool,
                 timer: TransferTimer):
        ctx = dep.ctx
        d = ctx.cfg.deployment
        ra, rf = d.roles["attention"], d.roles["ffn"]
        la, lf = ra.layout.to_layout(), rf.layout.to_layout()
        self.att_layout, self.ffn_layout = la, lf
        self.M = la.tp * la.dp
        self.N = lf.ep * lf.moe_tp
        self.count = int(ra.count)
        self.layout = ParallelLayout(tp=la.tp, dp=la.dp, ep=lf.ep, moe_tp=lf.moe_tp)
        self.m = micro_batches_of(d, opts)
        self.scheduler_cfg = ra.scheduler
        self.first_gpu = first_gpu
        self.num_gpus = self.count * (self.M + self.N)
        self.timer = timer
        self.opts = opts
        self.tp_allreduce = bool(getattr(opts, "attention_tp_allreduce", True))
        self.tp_comms: list = []  # the TP all-reduce comm models (one per distinct unit)
        self.att_hw, self.ffn_hw = dep.hardware_of("attention"), dep.hardware_of("ffn")
        att_plan, ffn_plan = afd_memory_plans(ctx.spec, self.att_hw, d.memory, ra.scheduler,
                                              la, ctx.expert_layout(lf), ctx.min_kv_tokens,
                                              self.ffn_hw)
        dep.memory["attention"] = att_plan
        dep.memory["ffn"] = ffn_plan
        self.feasible = att_plan.feasible and ffn_plan.feasible
        self.reason = ("attention GPUs: " + att_plan.reason) if not att_plan.feasible else (
            ("FFN GPUs: " + ffn_plan.reason) if not ffn_plan.feasible else "")
        self.att_plan = att_plan
        self.decode_only = decode_only
        self.instances: list[AFDInstance] = []
        out = getattr(ctx.cfg, "output", None)
        win = list(getattr(out, "timeline_iterations", [0, 0]) or [0, 0])
        self.window = (int(win[0]), int(win[1])) if len(win) == 2 else (0, 0)
        # deployment.placement: each unit's attention and FFN GPUs on the topology
        topo = getattr(ctx.cfg, "topology", None)
        self.gpus_per_node = int(getattr(topo, "gpus_per_node", 0) or 0)
        total = getattr(topo, "total_gpus", None)
        pl = getattr(d, "placement", None)
        self.placement = {"attention": getattr(pl, "attention", "contiguous"),
                          "ffn": getattr(pl, "ffn", "contiguous")}
        self.default_placement = all(v == "contiguous" for v in self.placement.values())
        self.units_gpus: list[UnitGPUs] = place_afd_units(
            self.placement["attention"], self.placement["ffn"], self.count, self.M, self.N,
            first_gpu, int(total) if isinstance(total, int) else first_gpu + self.num_gpus,
            self.gpus_per_node or self.M + self.N)
        if self.gpus_per_node:
            groups = {"attention": np.concatenate([u.attention for u in self.units_gpus]),
                      "ffn": np.concatenate([u.ffn for u in self.units_gpus])}
            if first_gpu > 0:  # pd_afd: the prefill instances' block in front
                groups = {"prefill": np.arange(first_gpu), **groups}
            dep.check_one_kind_per_server(groups, self.gpus_per_node)

    def build(self, dep: Deployment, first_iid: int) -> list[Instance]:
        ctx = dep.ctx
        sc = self.scheduler_cfg
        # E's memoised attention / FFN lookups (kv-grid interpolation, compute sources); AFD
        # communication is the timeline's business, not the instance's comm model.
        self.cost = IterationCost(dep.step_cost(self.layout, self.att_hw), NoComm(),
                                  sc.kv_len_grid_tokens)
        # heterogeneous roles: the FFN stage priced on the FFN GPUs' own kind
        self.ffn_cost = self.cost if repr(self.ffn_hw) == repr(self.att_hw) else IterationCost(
            dep.step_cost(self.layout, self.ffn_hw), NoComm(), sc.kv_len_grid_tokens)
        self.comm = AFDCommStats(self.timer)
        timers: dict[tuple, AFDTimer] = {}
        for u in range(self.count):
            ug = self.units_gpus[u]
            # Units are alike on a symmetric fabric: with the contiguous default all use the
            # first unit's transfer times; a placement shares them between units whose GPUs
            # sit alike on the servers (placement.locality_key).
            key = () if self.default_placement else locality_key(ug, self.gpus_per_node or 1)
            afd = timers.get(key)
            if afd is None:
                comm_cfg = ctx.cfg.deployment.comm
                traffic = AFDTraffic(ctx.spec, ug.attention, ug.ffn, self.timer,
                                     self.opts.a2f_dtype, self.opts.f2a_dtype,
                                     comm_cfg.expert_imbalance,
                                     getattr(comm_cfg, "token_grid_percent", 0.0),
                                     experts=ctx.expert_layout(self.layout).experts)
                traffic.bytes = dep.traffic_bytes
                afd = timers[key] = AFDTimer(ctx.spec.num_layers, traffic, self.comm)
                if self.att_layout.tp > 1 and self.tp_allreduce:
                    afd.tp_ar = self._tp_allreduce(ctx, ug.attention, dep.traffic_bytes)
                    self.comm.tp_ars.append(afd.tp_ar)
            if u == 0:
                self.afd = afd
            first = int(ug.attention[0])
            ranks = dep.make_ranks(first_iid + u, self.layout.dp, sc, self.att_plan)
            info = InstanceInfo(iid=first_iid + u, role="afd", layout=self.layout, first_gpu=first,
                                num_gpus=self.M + self.N)
            inst = AFDInstance(info, ranks, self.cost, afd, self.m, self.window)
            inst.att_gpus = ug.attention
            inst.ffn_cost = self.ffn_cost
            inst.linear_split = (getattr(ctx.cfg.deployment, "micro_batch_cost", "per_microbatch")
                                  == "linear_split")
            inst.end_event = IterationEnd(dep, inst)
            self.instances.append(inst)
        return self.instances

    def _tp_allreduce(self, ctx: SimContext, att_gpus: np.ndarray,
                      counter: TrafficBytes) -> AttentionTPAllReduce:
        """The attention group's TP all-reduce pricer over `att_gpus` (the run's comm model
        for a tp x dp layout without experts, on the unit's attention GPUs)."""
        la = self.att_layout
        comm = ctx.comm_for(ParallelLayout(tp=la.tp, dp=la.dp), int(att_gpus[0]))
        if isinstance(getattr(comm, "gpus", None), np.ndarray):  # FabricComm: placed GPUs
            comm.gpus = np.asarray(att_gpus, dtype=np.int64)
        self.tp_comms.append(comm)
        shape = TrafficShape.from_spec(ctx.spec)
        return AttentionTPAllReduce(comm, shape.num_layers + shape.num_dense_layers,
                                    int(ctx.spec.num_layers), la.dp, counter)

    def describe(self) -> dict:
        return {"units": self.count, "attention_gpus_per_unit": self.M, "ffn_gpus_per_unit": self.N,
                "attention_layout": self.att_layout.sizes(),
                "ffn_layout": self.ffn_layout.sizes(), "micro_batches": self.m,
                "a2f_dtype": self.opts.a2f_dtype, "f2a_dtype": self.opts.f2a_dtype,
                "attention_tp_allreduce": self.tp_allreduce and self.att_layout.tp > 1,
                "placement": {k: (v if isinstance(v, str) else "list")
                              for k, v in self.placement.items()},
                "unit_gpus": [{"attention": u.attention.tolist(), "ffn": u.ffn.tolist()}
                              for u in self.units_gpus]}

    def summary_extras(self) -> dict:
        """attention_busy, ffn_busy (fractions of the units' iteration time), comm_exposed_fraction."""
        t = sum((np.array(inst.totals) for inst in self.instances), np.zeros(4))
        if t[0] <= 0:
            return {"attention_busy": None, "ffn_busy": None, "comm_exposed_fraction": None}
        return {"attention_busy": float(t[2] / t[0]), "ffn_busy": float(t[3] / t[0]),
                "comm_exposed_fraction": float((t[0] - t[1]) / t[0])}

    def trace(self, tb: Any) -> None:
        """Add the recorded iterations of every unit to a TraceBuilder."""
        from cosim.network.fabric import LINK_CLASS_NAMES
        from cosim.timeline.perfetto import flow_link_classes

        graph = getattr(self.timer, "graph", None)
        for inst in self.instances:
            proc = f"afd unit {inst.iid} ({self.M} attention + {self.N} FFN GPUs)"
            for idx, it in sorted(inst.recorded.items()):
                t0 = float(inst.rows[idx][0])
                pipe, sched, coupled, keys_tok = it.detail
                g = pipe.graph()
                tb.add_schedule(proc, g, sched, origin_s=t0, iteration=idx)
                if graph is None:
                    continue
                flows, finish, group = _iteration_flows(pipe, sched, coupled, inst.afd.traffic, keys_tok)
                if flows is None or len(flows) == 0:
                    continue
                cls = flow_link_classes(graph, flows.src, flows.dst)
                names = {int(t): f"{g.kinds[g.kind[t]]} L{g.layer[t]} mb{g.micro_batch[t]}"
                         for t in np.unique(group).tolist()}
                tb.add_flows(proc, flows, finish, cls, LINK_CLASS_NAMES, origin_s=t0, group=group,
                             group_names=names)


def _record_coupled(rec: Any, key: tuple, coupled: Any, timer: TransferTimer) -> None:
    """output.flows, network.mode=iteration: the final coupled batch of an iteration as one
    pattern (its task flows; per flow the layer, micro-batch and A2F / F2A of its task)."""
    if coupled.flows is None or timer.last_raw is None or timer.last_raw[0] is not coupled.flows:
        return
    keep = np.flatnonzero(coupled.flow_task >= 0)
    f = coupled.flows
    task = coupled.flow_task[keep]
    tr = coupled.pipeline.traffic
    layer, _, mb = np.unravel_index(task, tr.shape)
    cls = (tr.ravel()[task] % 2).astype(np.int8)  # traffic keys: 2k A2F, 2k + 1 F2A
    tag = np.where(cls == 0, int(FlowTag.A2F), int(FlowTag.F2A)).astype(np.int32)
    sub = FlowBatch(f.src[keep], f.dst[keep], f.size[keep], f.start[keep], tag)
    rec.pattern(key, sub, timer.last_raw[1][keep], cls, timer.backend.name, layer=layer,
                micro_batch=mb)
    rec.use(key)


def _iteration_flows(pipe, sched, coupled, traffic: AFDTraffic, keys_tok: list[int]):
    """The flows of a recorded iteration with their finish times, grouped by task."""
    if coupled is not None and coupled.flows is not None:
        keep = coupled.flow_task >= 0
        f = coupled.flows
        sub = FlowBatch(f.src[keep], f.dst[keep], f.size[keep], f.start[keep], f.tag[keep])
        return sub, coupled.flow_result.finish[keep], coupled.flow_task[keep]
    tr = pipe.traffic.ravel()
    tasks = np.flatnonzero(tr >= 0)
    parts, fins, groups = [], [], []
    for t in tasks.tolist():
        key = int(tr[t])
        tok = keys_tok[key // 2]
        fin = traffic._finish.get(tok)
        if fin is None:
            continue
        fl = traffic.flows(tok)[key % 2]
        st = float(sched.start[t])
        parts.append(FlowBatch(fl.src, fl.dst, fl.size, fl.start + st, fl.tag))
        fins.append(fin[key % 2] + st)
        groups.append(np.full(len(fl), t))
    if not parts:
        return None, None, None
    return FlowBatch.concat(parts), np.concatenate(fins), np.concatenate(groups)


@register_deployment("afd")
class AFDDeployment(DisaggDeployment):
    """M attention + N FFN GPUs per unit, prefill and decode both in the unit."""

    def __init__(self, ctx: SimContext):
        super().__init__(ctx)
        d = ctx.cfg.deployment
        ra = d.roles["attention"]
        self.start_transfers(afd_unit_gpus(d))
        self.units = AFDUnits(self, self.opts, 0, decode_only=False, timer=self.timer)
        if not self.units.feasible:
            self.infeasible(self.units.reason)
            return
        self.instances = self.units.build(self, 0)
        sc = ra.scheduler
        self.router = make_router(d.router, self.instances, hasher=self.hasher(sc.kv_block_tokens),
                                  prompt_tokens=ctx.state.prompt)

    # --- reporting ---------------------------------------------------------------------------
    def describe(self) -> dict:
        out = super().describe()
        out["gpus_by_role"] = {"attention": self.units.count * self.units.M,
                               "ffn": self.units.count * self.units.N}
        out["afd"] = self.units.describe()
        return self.with_role_costs(out)

    def cost_models(self) -> list:
        if not self.feasible:
            return []
        return [_CostView(self.units.cost, self.units.comm, self.units.ffn_cost),
                TransferStatsView(self.timer)]

    def summary_extras(self, req=None, it=None) -> dict:
        return {**super().summary_extras(req, it), **self.units.summary_extras()}

    def artifacts(self) -> dict:
        from cosim.timeline.perfetto import TraceBuilder

        tb = TraceBuilder()
        self.units.trace(tb)
        return {"timeline.json": tb.to_dict()}
