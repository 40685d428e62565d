"""Kind-scoped deployment keys: `kind_overrides.<kind>.<deployment key>=value`.

A `cosim -m` sweep over several deployment kinds (`deployment=chunked,afd`) gives every job
the same overrides, but the kinds have different schemas: `deployment.roles.attention...`
exists only in afd/pd_afd, so a chunked job rejects it ("Key 'attention' is not in struct").
Keys under `kind_overrides.<kind>` are deployment keys that apply only to jobs whose
`deployment.kind` is `<kind>`; they are merged into `deployment` with OmegaConf's struct
merge, so each is validated against its own kind's composed config and schema (an unknown
key is a ConfigError naming `kind_overrides.<kind>.<key>`). Entries of other kinds are
ignored by that job, except that their kind must exist. See docs/sweeps.md.

    cosim -m deployment=chunked,afd +kind_overrides.afd.roles.attention.layout.dp=4
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from cosim.errors import ConfigError

KEY = "kind_overrides"


def apply_kind_overrides(cfg: Any, kinds: Any = ()) -> Any:
    """`cfg` with `kind_overrides[cfg.deployment.kind]` merged into `cfg.deployment`.

    `kinds`: the deployment kinds that exist (a kind named in kind_overrides must be one of
    them or a dotted plug-in path, so a typo is an error rather than silently ignored); empty:
    no check. Returns `cfg` itself when there is nothing to apply; otherwise a merged copy
    (a DictConfig; a Config dataclass comes back as its DictConfig).
    """
    scoped = getattr(cfg, KEY, None) if not isinstance(cfg, DictConfig) else cfg.get(KEY)
    if not scoped:
        return cfg
    known = set(kinds)
    for kind, keys in scoped.items():
        where = f"{KEY}.{kind}"
        if known and kind not in known:
            raise ConfigError(where, f"unknown deployment kind {kind!r}; available: "
                              f"{', '.join(sorted(known))}")
        if not isinstance(keys, (dict, DictConfig)):
            raise ConfigError(where, "expected deployment keys, e.g. "
                              f"+{where}.replicas=2, got {keys!r}")
    if not isinstance(cfg, DictConfig):
        cfg = OmegaConf.structured(cfg)
    kind = cfg.deployment.kind
    if kind not in scoped:
        return cfg
    out = cfg.copy()
    OmegaConf.set_struct(out, True)  # a key the kind's schema lacks is an error
    # `options` stays free, as on the command line: its keys are checked per kind by
    # cosim.config.deployment_disagg.parse_options (an unknown one names deployment.options.<key>)
    OmegaConf.set_struct(out.deployment.options, False)
    patch = scoped[kind]
    try:
        out.deployment = OmegaConf.merge(out.deployment, patch)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", "") or ""
        rel = key[len("deployment."):] if key.startswith("deployment.") else key
        field = f"{KEY}.{kind}.{rel}" if rel else f"{KEY}.{kind}"
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(field, f"not valid for deployment kind {kind!r}: {msg}") from None
    return out
