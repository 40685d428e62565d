"""Candidates of a design-space search: deployment layouts whose GPU counts fit the budget.

A candidate is a deployment kind plus the dotted `deployment.*` settings that turn that
kind's default config (hydra_configs/deployment/<kind>.yaml) into its layout. Each layout
fills the budget: no further replica, instance or unit of the kind would fit in what is left.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from cosim.config.search import SearchConfig


@dataclass(frozen=True)
class Candidate:
    kind: str
    gpus: int  # GPUs the layout uses (<= the budget)
    settings: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    words: str = ""  # the layout in words

    @property
    def cid(self) -> str:
        """A short stable id: kind + hash of the settings."""
        h = hashlib.sha1(json.dumps(self.settings, sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.kind}-{h}"


def _instance_layouts(g: int, tps: list[int], moe_tps: list[int],
                      num_experts: int | None) -> list[dict[str, int]]:
    """Aggregated-instance layouts of g GPUs: attention tp x dp = g = expert ep x moe_tp."""
    out = []
    for tp in tps:
        if g % tp:
            continue
        for mt in moe_tps:
            if g % mt:
                continue
            ep = g // mt
            if num_experts and ep > num_experts:
                continue
            out.append({"tp": tp, "dp": g // tp, "ep": ep, "moe_tp": mt})
    return out


def layout_words(lay: dict[str, int]) -> str:
    """'TP8' / 'DP8' / 'TP2xDP4' attention and 'EP8' / 'EP4xTP2' experts."""
    tp, dp = lay.get("tp", 1), lay.get("dp", 1)
    att = "x".join(p for p in ((f"TP{tp}" if tp > 1 else ""), (f"DP{dp}" if dp > 1 else "")) if p)
    ep, mt = lay.get("ep", 1), lay.get("moe_tp", 1)
    exp = "x".join(p for p in ((f"EP{ep}" if ep > 1 else ""), (f"TP{mt}" if mt > 1 else "")) if p)
    return f"attention {att or 'TP1'}, experts {exp or 'EP1'}"


def _role(prefix: str, lay: dict[str, int]) -> dict[str, Any]:
    return {f"{prefix}.layout.{k}": v for k, v in lay.items()}


def chunked_candidates(s: SearchConfig, num_experts: int | None) -> list[Candidate]:
    out = []
    for g in s.space.instance_gpus:
        if g > s.gpus:
            continue
        for lay in _instance_layouts(g, s.space.tp, s.space.moe_tp, num_experts):
            r = s.gpus // g
            st = {"deployment.replicas": r, **_role("deployment", lay)}
            words = f"{r} replica{'s' if r > 1 else ''} of {g} GPUs ({layout_words(lay)})"
            out.append(Candidate("chunked", r * g, st, words))
    return out


def pd_candidates(s: SearchConfig, num_experts: int | None) -> list[Candidate]:
    out = []
    sizes = [g for g in s.space.instance_gpus if g < s.gpus]
    for gp in (g for g in s.space.prefill_gpus if g < s.gpus):
        for lp in _instance_layouts(gp, s.space.tp, s.space.moe_tp, num_experts):
            for gd in sizes:
                for ld in _instance_layouts(gd, s.space.tp, s.space.moe_tp, num_experts):
                    for x in range(1, s.space.max_prefill_instances + 1):
                        left = s.gpus - x * gp
                        y = left // gd
                        if y < 1:
                            break
                        if left - y * gd >= gp:  # another prefill instance would still fit
                            continue
                        st = {"deployment.roles.prefill.count": x,
                              **_role("deployment.roles.prefill", lp),
                              "deployment.roles.decode.count": y,
                              **_role("deployment.roles.decode", ld)}
                        words = (f"{x}P:{y}D, prefill {x}x{gp} GPUs ({layout_words(lp)}) + "
                                 f"decode {y}x{gd} GPUs ({layout_words(ld)})")
                        out.append(Candidate("pd", x * gp + y * gd, st, words))
    return out


def _afd_units(s: SearchConfig, num_experts: int | None, budget: int):
    """(attention layout, ffn layout, M + N) of AFD units that fit `budget`."""
    for m_gpus in s.space.attention_gpus:
        for tp in s.space.attention_tp:
            if m_gpus % tp:
                continue
            la = {"tp": tp, "dp": m_gpus // tp}
            for n in s.space.ffn_gpus:
                if m_gpus + n > budget:
                    continue
                for mt in s.space.moe_tp:
                    if n % mt:
                        continue
                    ep = n // mt
                    if num_experts and ep > num_experts:
                        continue
                    yield la, {"ep": ep, "moe_tp": mt}, m_gpus + n


def _afd_words(units: int, la: dict, lf: dict, mb: int) -> str:
    m_gpus, n = la["tp"] * la["dp"], lf["ep"] * lf["moe_tp"]
    att = layout_words(la).split(",")[0].replace("attention ", "")
    ffn = layout_words(lf).split(", ")[1].replace("experts ", "")
    u = f"{units} units of " if units > 1 else ""
    return (f"{u}{m_gpus} attention GPUs ({att}) + {n} FFN GPUs ({ffn}), "
            f"{mb} micro-batch{'es' if mb > 1 else ''}")


def afd_candidates(s: SearchConfig, num_experts: int | None) -> list[Candidate]:
    out = []
    for la, lf, unit in _afd_units(s, num_experts, s.gpus):
        units = s.gpus // unit
        for mb in s.space.micro_batches:
            st = {"deployment.roles.attention.count": units, "deployment.roles.ffn.count": units,
                  **_role("deployment.roles.attention", la), **_role("deployment.roles.ffn", lf),
                  "deployment.micro_batches": mb}
            out.append(Candidate("afd", units * unit, st, _afd_words(units, la, lf, mb)))
    return out


def pd_afd_candidates(s: SearchConfig, num_experts: int | None) -> list[Candidate]:
    out = []
    for gp in (g for g in s.space.prefill_gpus if g < s.gpus):
        for lp in _instance_layouts(gp, s.space.tp, s.space.moe_tp, num_experts):
            for x in range(1, s.space.max_prefill_instances + 1):
                left = s.gpus - x * gp
                if left < 2:
                    break
                for la, lf, unit in _afd_units(s, num_experts, left):
                    units = left // unit
                    if left - units * unit >= gp:
                        continue
                    for mb in s.space.micro_batches:
                        st = {"deployment.roles.prefill.count": x,
                              **_role("deployment.roles.prefill", lp),
                              "deployment.roles.attention.count": units,
                              "deployment.roles.ffn.count": units,
                              **_role("deployment.roles.attention", la),
                              **_role("deployment.roles.ffn", lf),
                              "deployment.micro_batches": mb}
                        words = (f"prefill {x}x{gp} GPUs ({layout_words(lp)}) + decode "
                                 + _afd_words(units, la, lf, mb))
                        out.append(Candidate("pd_afd", x * gp + units * unit, st, words))
    return out


GENERATORS = {"chunked": chunked_candidates, "pd": pd_candidates, "afd": afd_candidates,
              "pd_afd": pd_afd_candidates}


@dataclass(frozen=True)
class DecodeSide:
    """Where a kind's decode side lives in its config and in its memory plan."""

    prefix: str  # the config node with its layout and scheduler
    count_key: str  # how many instances / units of it
    memory_role: str  # its entry in summary["deployment"]["memory"]


DECODE = {"chunked": DecodeSide("deployment", "deployment.replicas", "replica"),
          "pd": DecodeSide("deployment.roles.decode", "deployment.roles.decode.count", "decode"),
          "afd": DecodeSide("deployment.roles.attention", "deployment.roles.attention.count",
                            "attention"),
          "pd_afd": DecodeSide("deployment.roles.attention", "deployment.roles.attention.count",
                               "attention")}


def with_caps(c: Candidate, running_per_gpu: int) -> Candidate:
    """Set the decode ranks' max_running_requests from the layout (running_per_gpu x tp).

    A TP group shares one batch, so a per-rank cap sized for one GPU (64 in the shipped
    configs) would silently cap a TP8 rank at 8 requests per GPU; the search sets it from the
    layout and reports it in the candidate's words.
    """
    role = DECODE[c.kind].prefix
    tp = int(c.settings.get(f"{role}.layout.tp", 1))
    cap = running_per_gpu * tp
    st = {**c.settings, f"{role}.scheduler.max_running_requests": cap}
    return Candidate(c.kind, c.gpus, st, f"{c.words}; decode cap {cap} requests per rank")


def generate_candidates(s: SearchConfig, num_experts: int | None) -> list[Candidate]:
    """Every candidate of the kinds in `s.kinds` (each within `s.gpus` GPUs, filling it)."""
    out: list[Candidate] = []
    for kind in s.kinds:
        out.extend(with_caps(c, s.running_per_gpu) for c in GENERATORS[kind](s, num_experts))
    return out
