"""The disaggregated deployments' part of the `deployment` group (pd, afd, pd_afd).

DeploymentConfig (cosim/config/deployment.py) describes each role's instances in
`roles.<name>` (count, layout, scheduler) and keeps deployment-specific knobs in `options`.
This module says which roles each kind needs and parses `options` into typed dataclasses,
rejecting unknown keys and bad values with the dotted field name.

Roles:
- pd: `prefill` and `decode` (each: count instances of its layout).
- afd: `attention` (M = tp * dp GPUs per unit: DP attention, KV cache, dense layers) and `ffn`
  (N = ep * moe_tp GPUs per unit: routed experts); `count` = AFD units, equal for both.
- pd_afd: `prefill` plus `attention` and `ffn` (decode runs as AFD).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from cosim.errors import ConfigError, require

KV_TRANSFER_MODES = ("whole", "layerwise")
FIRST_TOKEN_ON = ("prefill", "decode")
SHARED_EXPERTS_ON = ("attention", "ffn")

ROLES = {
    "pd": ("prefill", "decode"),
    "afd": ("attention", "ffn"),
    "pd_afd": ("prefill", "attention", "ffn"),
}


@dataclass
class PDOptions:
    """How a request's KV cache moves from its prefill instance to its decode instance."""

    # whole: the KV cache leaves after the last prefill chunk; layerwise: each layer's KV
    # leaves as soon as the last chunk's layer is done (overlaps with the rest of the forward)
    kv_transfer: str = "whole"
    # decode: the user sees the first token once the decode instance has the KV and streams it
    # (SGLang / Dynamo P/D); prefill: the prefill instance streams it at prefill end.
    first_token_on: str = "decode"

    def validate(self, prefix: str) -> None:
        require(self.kv_transfer in KV_TRANSFER_MODES, f"{prefix}.kv_transfer",
                f"expected one of {KV_TRANSFER_MODES}, got {self.kv_transfer!r}")
        require(self.first_token_on in FIRST_TOKEN_ON, f"{prefix}.first_token_on",
                f"expected one of {FIRST_TOKEN_ON}, got {self.first_token_on!r}")


@dataclass
class AFDOptions:
    """Attention-FFN disaggregation knobs."""

    # Alias of deployment.micro_batches (where the knob lives); given here, it overrides it.
    micro_batches: int | None = None
    shared_experts_on: str = "attention"  # attention | ffn: where the shared expert runs
    # A2F / F2A activations on the wire (MegaScale-Infer sends bf16; fp8 halves A2F)
    a2f_dtype: str = "fp8"
    f2a_dtype: str = "bfloat16"
    # Attention tp > 1: every layer ends with an all-reduce of the hidden states over the TP
    # group (Megatron-LM's row-parallel output projection, arXiv 1909.08053 section 3), priced
    # by the run's comm model inside the attention stage; false leaves it free (the model
    # before it was priced). docs/deployments/afd.md.
    attention_tp_allreduce: bool = True

    def validate(self, prefix: str) -> None:
        m = self.micro_batches
        require(isinstance(self.attention_tp_allreduce, bool), f"{prefix}.attention_tp_allreduce",
                f"must be true or false, got {self.attention_tp_allreduce!r}")
        require(m is None or (isinstance(m, int) and 1 <= m <= 16), f"{prefix}.micro_batches",
                f"must be an integer in 1..16 (or unset: deployment.micro_batches), got {m!r}")
        require(self.shared_experts_on in SHARED_EXPERTS_ON, f"{prefix}.shared_experts_on",
                f"expected one of {SHARED_EXPERTS_ON}, got {self.shared_experts_on!r}")
        for name in ("a2f_dtype", "f2a_dtype"):
            v = getattr(self, name)
            require(v in ("bfloat16", "fp8"), f"{prefix}.{name}", f"expected bfloat16 or fp8, got {v!r}")


@dataclass
class PDAFDOptions(PDOptions, AFDOptions):
    """pd_afd: P/D prefill instances in front of AFD decode."""

    def validate(self, prefix: str) -> None:
        PDOptions.validate(self, prefix)
        AFDOptions.validate(self, prefix)


OPTIONS = {"pd": PDOptions, "afd": AFDOptions, "pd_afd": PDAFDOptions}


def parse_options(kind: str, options: dict[str, Any] | None, prefix: str = "deployment.options"):
    """Typed options of a disaggregated kind; unknown keys raise ConfigError naming the key."""
    cls = OPTIONS[kind]
    known = {f.name for f in fields(cls)}
    given = dict(options or {})
    for key in given:
        if key not in known:
            raise ConfigError(f"{prefix}.{key}",
                              f"unknown option for deployment {kind!r}; known: {', '.join(sorted(known))}")
    opts = cls(**given)
    opts.validate(prefix)
    return opts


def validate_disagg(cfg: Any, prefix: str = "deployment") -> None:
    """Check roles and options of a pd / afd / pd_afd DeploymentConfig."""
    kind = cfg.kind
    roles = dict(cfg.roles or {})
    need = ROLES[kind]
    for name in need:
        require(name in roles, f"{prefix}.roles.{name}",
                f"deployment {kind!r} needs roles {', '.join(need)}")
    for name in roles:
        require(name in need, f"{prefix}.roles.{name}",
                f"deployment {kind!r} has no role {name!r}; roles: {', '.join(need)}")
    if "attention" in roles:
        a, f = roles["attention"], roles["ffn"]
        require(f.count == a.count, f"{prefix}.roles.ffn.count",
                f"an AFD unit pairs one attention and one FFN group: count must equal "
                f"roles.attention.count={a.count}, got {f.count}")
        la, lf = a.layout, f.layout
        require(la.ep == 1 and la.moe_tp == 1, f"{prefix}.roles.attention.layout.ep",
                "attention GPUs hold no routed experts in AFD; leave ep and moe_tp at 1")
        require(lf.tp == 1 and lf.dp == 1, f"{prefix}.roles.ffn.layout.dp",
                "FFN GPUs run no attention in AFD; leave tp and dp at 1 (use ep, moe_tp)")
    parse_options(kind, cfg.options, f"{prefix}.options")
