"""`pd`: prefill/decode disaggregation with the KV cache moving P->D over the fabric.

roles.prefill: `count` prefill instances of their layout (they prefill and sample the first
token, then hand the request off); roles.decode: `count` decode instances (they only decode).
GPUs: prefill instances first, then decode instances, each a contiguous range.

When a prefill iteration completes requests' prompts, their KV caches leave together as one
batch of flows (cosim.traffic.kv_transfer: the request's attention-DP rank on the prefill
instance to its rank on the decode instance; bytes = the model's KV bytes of the context in
the KV dtype; GQA KV split over the decode TP ranks, MLA latents sent whole to each).
`options.kv_transfer=layerwise` streams layer l as soon as the last prefill iteration has
computed it (start (l+1)/L of the way through that iteration). The request joins its decode
instance when its last byte lands; the prefill instance frees its KV then.

TTFT is what the user sees: with `options.first_token_on=decode` (default) the first token
arrives with the KV at the decode instance, so TTFT = queueing + prefill + KV transfer;
`prefill` streams it from the prefill instance. requests.parquet gets kv_transfer_start_s /
kv_transfer_end_s, summary.json kv_transfer_ms_p50/p99 (end - prefill end).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from cosim.serving.deployments import register_deployment
from cosim.serving.deployments._transfers import (
    DisaggDeployment,
    TransferStatsView,
    TransferTimer,
)
from cosim.serving.deployments.base import (
    SimContext,
    iteration_spans,
    timeline_window,
)
from cosim.serving.deployments.placement import TrafficBytes
from cosim.serving.events import Callback
from cosim.serving.instance import Instance
from cosim.serving.router import make_router
from cosim.traffic.kv_transfer import kv_transfer_flows


class KVTransfers:
    """P->D KV-cache flows of handed-off requests and their completion times."""

    def __init__(self, spec: Any, timer: TransferTimer, layerwise: bool,
                 counter: TrafficBytes | None = None):
        self.spec = spec
        self.counter = counter  # the deployment's bytes per link class (summary traffic_bytes)
        self.timer = timer
        self.layerwise = bool(layerwise)
        self.layers = int(spec.num_layers) if layerwise else 1
        mla = spec.attention is not None and spec.attention.is_mla
        self.replicated = bool(mla)  # MLA latents are replicated on attention TP ranks
        self.bytes_moved = 0.0

    def request_bytes(self, context_tokens: int) -> float:
        """KV bytes of one request's context (windows applied, KV dtype of the model)."""
        return float(self.spec.kv_bytes(int(context_tokens)))

    def finish(self, src_gpus: list[np.ndarray], dst_gpus: list[np.ndarray], contexts: list[int],
               iteration_s: float) -> np.ndarray:
        """Seconds after the prefill iteration's end at which each request's KV has landed.

        src_gpus[i] / dst_gpus[i]: the attention TP group of request i on each side.
        """
        srcs, dsts, sizes, owner = [], [], [], []
        for i, (sg, dg, ctx) in enumerate(zip(src_gpus, dst_gpus, contexts, strict=True)):
            total = self.request_bytes(ctx)
            if total <= 0:
                continue
            # every decode TP rank receives its part: all of it (replicated MLA latent) or
            # its heads' share (GQA), from the prefill TP ranks in turn
            per = total if self.replicated else total / len(dg)
            for j in range(len(dg)):
                srcs.append(int(sg[j % len(sg)]))
                dsts.append(int(dg[j]))
                sizes.append(per)
                owner.append(i)
        out = np.zeros(len(contexts))
        if not srcs:
            return out
        L = self.layers
        if self.layerwise:
            # layer l of the last prefill iteration is done at (l+1)/L of it: stream it then
            fl = kv_transfer_flows(np.array(srcs), np.array(dsts), np.ceil(sizes), 1.0, layers=L,
                                   layer_interval_s=iteration_s / L, start_s=iteration_s / L)
            own = np.repeat(owner, L)
            shift = iteration_s
        else:
            fl = kv_transfer_flows(np.array(srcs), np.array(dsts), np.ceil(sizes), 1.0)
            own = np.asarray(owner)
            shift = 0.0
        self.bytes_moved += float(fl.size.sum())
        if self.counter is not None:
            self.counter.add_flows(fl.src, fl.dst, fl.size, fl.tag)
        rec = self.timer.recorder
        key = ("kv", id(self), rec.groups) if rec is not None else None
        fin = self.timer.finish(fl, record=(key, "kv_transfer") if rec is not None else None) - shift
        if rec is not None:
            rec.use(key, offset_s=-shift)
        np.maximum.at(out, own, fin)
        return np.maximum(out, 0.0)


def rank_gpus(inst: Instance, rank_index: int) -> np.ndarray:
    """Global GPUs of one attention-DP rank (its TP group) of an instance."""
    tp = inst.info.layout.tp
    placed = getattr(inst, "att_gpus", None)  # an AFD unit's attention GPUs (placement)
    if placed is not None:
        return placed[rank_index * tp:(rank_index + 1) * tp]
    first = inst.info.first_gpu + rank_index * tp
    return np.arange(first, first + tp)


@register_deployment("pd")
class PDDeployment(DisaggDeployment):
    """x prefill instances and y decode instances (see the module docstring)."""

    def __init__(self, ctx: SimContext):
        super().__init__(ctx)
        d = ctx.cfg.deployment
        rp = d.roles["prefill"]
        lp = rp.layout.to_layout()
        gp = lp.attention_gpus
        first_decode_gpu = rp.count * gp
        self.decode_gpus = self._decode_gpus()
        self.start_transfers(first_decode_gpu + self.decode_gpus)
        gpn = int(getattr(getattr(ctx.cfg, "topology", None), "gpus_per_node", 0) or 0)
        if self.kind == "pd" and gpn:  # pd_afd checks its units where it places them
            self.check_one_kind_per_server(
                {"prefill": np.arange(first_decode_gpu),
                 "decode": np.arange(first_decode_gpu, first_decode_gpu + self.decode_gpus)}, gpn)
        self.kv = KVTransfers(ctx.spec, self.timer, self.opts.kv_transfer == "layerwise",
                              self.traffic_bytes)
        self.window = timeline_window(ctx.cfg)
        # set before any early return: an infeasible layout still reports its (empty) columns
        n = ctx.state.n
        self.kv_start = np.full(n, np.nan)
        self.kv_end = np.full(n, np.nan)
        self.kv_records: list[tuple[int, int, float, float]] = []  # (rid, decode iid, start, end)
        plan_p = self.plan("prefill", lp, rp.scheduler)
        if not plan_p.feasible:
            self.infeasible("prefill instances: " + plan_p.reason)
            return
        self.prefill = [self.make_instance(i, "prefill", lp, rp.scheduler, plan_p, i * gp,
                                           prefill_only=True)
                        for i in range(rp.count)]
        self.decode = self._build_decode(first_decode_gpu, rp.count)
        if not self.feasible:
            return
        self.instances = self.prefill + self.decode
        # requests enter at the prefill instances
        self.router = make_router(d.router, self.prefill,
                                  hasher=self.hasher(rp.scheduler.kv_block_tokens),
                                  prompt_tokens=ctx.state.prompt)
        # the decode side sees no prompts to match: least loaded, counting KV still in flight
        self.inflight = {inst.iid: 0 for inst in self.decode}

    # --- construction (pd_afd overrides the decode side) -------------------------------------
    def _decode_gpus(self) -> int:
        rd = self.ctx.cfg.deployment.roles["decode"]
        return rd.count * rd.layout.tp * rd.layout.dp

    def _build_decode(self, first_gpu: int, first_iid: int) -> list[Instance]:
        rd = self.ctx.cfg.deployment.roles["decode"]
        ld = rd.layout.to_layout()
        plan_d = self.plan("decode", ld, rd.scheduler)
        if not plan_d.feasible:
            self.infeasible("decode instances: " + plan_d.reason)
            return []
        g = ld.attention_gpus
        return [self.make_instance(first_iid + i, "decode", ld, rd.scheduler, plan_d, first_gpu + i * g)
                for i in range(rd.count)]

    # --- events (on_arrival / on_iteration_end: the base class's) -------------------------
    def hand_off(self, now: float, p_inst: Instance, rids: list[int]) -> list:
        """Start the KV transfers of requests whose prefill just ended; events for their arrival."""
        st = self.ctx.state
        iteration_s = float(p_inst.rows[-1][1]) if p_inst.rows else 0.0
        srcs, dsts, ctxs, targets = [], [], [], []
        for rid in rids:
            p_rank = p_inst._rank_of[rid]
            d_inst = min(self.decode, key=lambda i: i.load + self.inflight[i.iid])
            self.inflight[d_inst.iid] += 1
            d_rank = d_inst.pick_rank(rid)
            srcs.append(rank_gpus(p_inst, p_inst.ranks.index(p_rank)))
            dsts.append(rank_gpus(d_inst, d_inst.ranks.index(d_rank)))
            ctxs.append(st.ctx_len[rid])
            targets.append((d_inst, d_rank))
        rec = self.ctx.shared.get("flow_recorder")
        if rec is not None:  # KV flows start from the end of the prefill iteration
            rec.at(p_inst.iid, len(p_inst.rows) - 1, now)
        dt = self.kv.finish(srcs, dsts, ctxs, iteration_s)
        out = []
        for rid, (d_inst, d_rank), t in zip(rids, targets, dt.tolist(), strict=True):
            self.kv_start[rid] = now
            end = now + t
            self.kv_end[rid] = end
            self.kv_records.append((rid, d_inst.iid, now, end))
            out.append((end, Callback(self._arrive_fn(rid, p_inst, d_inst, d_rank))))
        return out

    def _arrive_fn(self, rid: int, p_inst: Instance, d_inst: Instance, d_rank: Any):
        def arrive(now: float):
            st = self.ctx.state
            p_inst.release(rid)
            self.inflight[d_inst.iid] -= 1
            if self.opts.first_token_on == "decode":
                st.first_token_s[rid] = now
            d_rank.enqueue_decode(rid)
            d_inst._rank_of[rid] = d_rank
            out = []
            if not d_inst.busy:
                out.extend(self.start(d_inst, now))
            if not p_inst.busy:  # it may have waited for the KV blocks this transfer freed
                out.extend(self.start(p_inst, now))
            return out

        return arrive

    # --- reporting ----------------------------------------------------------------------------
    def describe(self) -> dict:
        out = super().describe()
        d = self.ctx.cfg.deployment
        out["roles"] = {name: {"count": r.count, "layout": dataclasses.asdict(r.layout)}
                        for name, r in d.roles.items()}
        out["options"] = dataclasses.asdict(self.opts)
        out["kv_bytes_moved"] = self.kv.bytes_moved if self.feasible else 0.0
        return out

    def cost_models(self) -> list:
        return [*super().cost_models(), TransferStatsView(self.timer)]

    def kv_transfer_seconds(self) -> np.ndarray:
        """Per handed-off request: KV landed - prefill end (seconds)."""
        ok = np.isfinite(self.kv_end)
        return self.kv_end[ok] - self.kv_start[ok]

    def summary_extras(self, req: Any = None, it: Any = None) -> dict:
        """The base keys, with the KV transfer figures; comm_exposed_fraction over all the
        instances' iterations (their EP / TP communication is exposed as in chunked)."""
        out = super().summary_extras(req, it)
        t = self.kv_transfer_seconds() if self.feasible else np.zeros(0)
        out.update({"kv_transfer_ms_p50": float(np.percentile(t, 50) * 1e3) if t.size else None,
                    "kv_transfer_ms_p99": float(np.percentile(t, 99) * 1e3) if t.size else None,
                    "kv_transfers": int(t.size)})
        return out

    def request_columns(self) -> dict[str, np.ndarray]:
        """Extra requests.parquet columns: kv_transfer_start_s, kv_transfer_end_s."""
        return {"kv_transfer_start_s": self.kv_start, "kv_transfer_end_s": self.kv_end}

    def _trace(self, tb: Any) -> None:
        iteration_spans(tb, self.instances, self.window)
        if not self.kv_records:
            return
        # KV transfers that overlap the traced iterations, on a track per decode instance
        lo = min((inst.rows[self.window[0]][0] for inst in self.instances
                  if len(inst.rows) > self.window[0]), default=0.0)
        hi = max((inst.rows[min(self.window[1], len(inst.rows)) - 1][0] for inst in self.instances
                  if inst.rows and self.window[1] > 0), default=0.0)
        by_dec: dict[int, list] = {}
        for rid, iid, s, e in self.kv_records:
            if e >= lo and s <= hi:
                by_dec.setdefault(iid, []).append((rid, s, e))
        for iid, recs in by_dec.items():
            inst = next(i for i in self.instances if i.iid == iid)
            proc = f"{inst.info.role} {inst.iid} ({inst.info.num_gpus} GPUs)"
            tb.spans(proc, "kv transfer in", [f"request {r}" for r, _, _ in recs],
                     np.array([s for _, s, _ in recs]), np.array([e for _, _, e in recs]),
                     [{"request": r} for r, _, _ in recs], cat="transfer")

    def artifacts(self) -> dict:
        from cosim.timeline.perfetto import TraceBuilder

        tb = TraceBuilder()
        if self.feasible:
            self._trace(tb)
        return {"timeline.json": tb.to_dict()}
