"""Speculative decoding with the model's MTP module (deployment.speculative.method=mtp).

A decode step of a request, as SGLang (EAGLE/NEXTN worker with DeepSeek's nextn layer) and
vLLM (`deepseek_mtp`) run it:
1. draft: the MTP module proposes k tokens one after another (k forwards of n tokens, one per
   request). DeepSeek-V3's MTP module (arXiv 2412.19437 sec. 2.2) is one transformer block
   (MLA + MoE, like a main layer) and a projection eh_proj (2h -> h) between the shared
   embedding and the shared output head;
2. verify: the target model runs the k + 1 positions of every request (the last accepted token
   and the k drafts) in one step, keeps the accepted prefix and its own next token.

Per-token acceptance a, independent, until the first rejection: the step yields
E = sum_{i=0..k} a^i = (1 - a^(k+1)) / (1 - a) tokens (k + 1 at a = 1; config
SpeculativeConfig.tokens_per_step); cosim.serving.scheduler
decodes a request of R remaining tokens in ceil(R / E) steps, its context growing E per step.

Pricing (per attention-DP rank, on the step cost model's tables or roofline):
- verify = the plain model at n (k + 1) decode rows with the requests' mean context: every
  token-wise operator (GEMMs, MoE, LM head: logits of each verified position) sees n (k + 1)
  tokens; attention is priced as n (k + 1) decode rows, each attending the request's context
  (right for compute-bound MLA decode - DeepSeek with DP attention, 128 heads, ~240 FLOP per
  KV byte at one query token, above an H200's ridge - and conservative where decode attention
  is memory bound and a multi-query kernel reads the KV once);
- draft = k x [one layer's share of the plain step at n rows ((attention + FFN stages) / L)
  + the "other" stage (embedding and LM head: shared, so the same kernels) + eh_proj(n)];
  prefill chunks also pass the MTP module once (its hidden states for the next draft):
  one layer's share of the chunk's prefill + other + eh_proj(chunk tokens);
- communication: the verify step's EP traffic at n (k + 1) + prefill tokens, and the draft
  forwards' one MoE layer each: k x comm(n) / L (+ comm(prefill tokens) / L).
The MTP module's weights are not added to the memory plan (DeepSeek-V3: ~11.5 B parameters,
about 1.7 % of the model).
"""

from __future__ import annotations

from typing import Any

from cosim.model.operators import Operator, OpKind
from cosim.serving.iteration_cost import CommLike, IterationCost, StepCostLike


def eh_proj_operator(spec: Any, tokens: int) -> Operator:
    """The MTP module's projection of [embedding; hidden] (2h) to h for `tokens` tokens."""
    h = int(spec.hidden_size)
    p = spec.precision
    gd = p.gemm_dtype(p.weight)
    w = p.element_bytes(p.weight)
    act = 2.0  # BF16 activations
    a_in = 1.0 if gd in ("fp8", "fp8_block") else act
    dims = {"m": int(tokens), "n": h, "k": 2 * h, "dtype": gd}
    return Operator("mtp.eh_proj", OpKind.gemm, dims, 2.0 * tokens * h * 2 * h,
                    tokens * 2 * h * a_in + 2 * h * h * w + tokens * h * act, stage="attention")


class SpeculativeIterationCost(IterationCost):
    """IterationCost of an instance that decodes with MTP speculation (module docstring).

    Decode arguments (n requests, their context sum) are priced as n (k + 1) verification
    rows plus the k draft forwards; `q` = k + 1 tells the instance how many tokens per decode
    request its FFN and communication carry; draft_comm_s gives the draft's EP traffic.
    """

    def __init__(self, step_cost: StepCostLike, comm: CommLike, kv_grid_tokens: int,
                 spec: Any, draft_tokens: int):
        super().__init__(step_cost, comm, kv_grid_tokens)
        self.k = int(draft_tokens)
        self.q = self.k + 1
        self.spec = spec
        self.L = max(1, int(spec.num_layers))
        self._draft: dict[tuple, float] = {}  # key -> seconds of the MTP module
        self._draft_src: dict[tuple, dict[str, float]] = {}  # key -> seconds per source
        self._draft_uses: dict[tuple, int] = {}

    # --- the draft module -------------------------------------------------------------------
    def _eh_proj_s(self, tokens: int) -> tuple[float, dict]:
        model = getattr(self.step_cost, "model", None)
        if model is None or tokens <= 0 or not hasattr(model, "latency"):
            return 0.0, {}
        lat = model.latency(eh_proj_operator(self.spec, tokens), "generation")
        src = lat.by_source or {lat.source: lat.latency_s}
        return float(lat.latency_s), dict(src)

    def _forward_s(self, sc: Any, tokens: int) -> tuple[float, dict]:
        """One MTP forward over `tokens` tokens, from the plain step's StepCost `sc` of them."""
        layer = (float(sc.attention_s) + float(sc.ffn_s)) / self.L
        t = layer + float(sc.other_s)
        share = t / float(sc.total_s) if sc.total_s > 0 else 0.0
        src = {k: v * share for k, v in (getattr(sc, "by_source", None) or {"unknown": t}).items()}
        e, esrc = self._eh_proj_s(tokens)
        for k, v in esrc.items():
            src[k] = src.get(k, 0.0) + v
        return t + e, src

    def draft_s(self, n: int, kv_sum: int, p_tok: int, p_kv: int, p_req: int) -> float:
        """Seconds of the MTP module in one rank's iteration: k drafts of the n decode
        requests, one pass over the prefill chunk's tokens."""
        key = (n, -(-kv_sum // n) if n else 0, p_tok, p_kv, p_req)
        hit = self._draft.get(key)
        if hit is None:
            t = 0.0
            src: dict[str, float] = {}
            sc = self.step_cost
            if n:
                f, s = self._forward_s(sc.cost(n, key[1], 0, 0, 0), n)
                t += self.k * f
                for k2, v in s.items():
                    src[k2] = src.get(k2, 0.0) + self.k * v
            if p_tok:
                f, s = self._forward_s(sc.cost(0, 0, p_tok, p_kv, max(p_req, 1)), p_tok)
                t += f
                for k2, v in s.items():
                    src[k2] = src.get(k2, 0.0) + v
            hit = self._draft[key] = t
            self._draft_src[key] = src
        uses = self._draft_uses
        uses[key] = uses.get(key, 0) + 1
        return hit

    def draft_comm_s(self, n_all: int, pt_all: int) -> float:
        """EP communication of the draft forwards: one MoE layer of the comm model's L each."""
        out = 0.0
        layers = max(1, int(getattr(self.spec, "num_layers", 1)))
        if n_all:
            out += self.k * self.comm_decode_s(n_all) / layers
        if pt_all:
            out += self.comm_s(pt_all) / layers
        return out

    # --- the verification step (plain pricing at n (k + 1) rows) + the draft -----------------
    def whole(self, n: int, kv_sum: int, p_tok: int = 0, p_kv: int = 0, p_req: int = 0) -> float:
        q = self.q
        return (super().whole(n * q, kv_sum * q, p_tok, p_kv, p_req)
                + self.draft_s(n, kv_sum, p_tok, p_kv, p_req))

    def attention(self, n: int, kv_sum: int, p_tok: int = 0, p_kv: int = 0, p_req: int = 0) -> float:
        if p_tok == 0 and self.grid and n:  # the base class would route it there too
            return self.decode_attention(n, kv_sum)
        q = self.q
        return (super().attention(n * q, kv_sum * q, p_tok, p_kv, p_req)
                + self.draft_s(n, kv_sum, p_tok, p_kv, p_req))

    def decode_attention(self, n: int, kv_sum: int) -> float:
        q = self.q
        return super().decode_attention(n * q, kv_sum * q) + self.draft_s(n, kv_sum, 0, 0, 0)

    def source_seconds(self) -> dict[str, float]:
        out = super().source_seconds()
        for key, u in self._draft_uses.items():
            for k, v in self._draft_src.get(key, {}).items():
                out[k] = out.get(k, 0.0) + v * u
        return out
