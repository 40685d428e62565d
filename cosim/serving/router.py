"""Routers: which instance of a pool serves a new request.

- round_robin: instances in turn.
- least_loaded: the instance with the fewest queued + running requests (lowest id on ties).
- prefix_aware: the instance whose KV cache holds the longest prefix of the request's prompt
  (ties: least loaded), unless the load is too uneven, when it routes least-loaded instead
  (the rule of SGLang's cache-aware router: a pool is imbalanced when
  max_load - min_load > `balance_abs` and max_load > `balance_rel` x min_load).
"""

from __future__ import annotations

from collections.abc import Sequence

from cosim.serving.instance import Instance
from cosim.workload.block_hashes import BlockHasher


class RoundRobinRouter:
    name = "round_robin"

    def __init__(self, instances: Sequence[Instance], **_):
        self.instances = list(instances)
        self._next = 0

    def pick(self, rid: int) -> Instance:
        inst = self.instances[self._next]
        self._next = (self._next + 1) % len(self.instances)
        return inst


class LeastLoadedRouter:
    name = "least_loaded"

    def __init__(self, instances: Sequence[Instance], **_):
        self.instances = list(instances)

    def pick(self, rid: int) -> Instance:
        return min(self.instances, key=lambda i: i.load)


class PrefixAwareRouter:
    name = "prefix_aware"

    def __init__(self, instances: Sequence[Instance], hasher: BlockHasher,
                 prompt_tokens: Sequence[int], balance_abs: int = 32, balance_rel: float = 1.5, **_):
        self.instances = list(instances)
        self.hasher = hasher
        self.prompt = prompt_tokens
        self.balance_abs = balance_abs
        self.balance_rel = balance_rel

    def pick(self, rid: int) -> Instance:
        insts = self.instances
        loads = [i.load for i in insts]
        lo, hi = min(loads), max(loads)
        if hi - lo > self.balance_abs and hi > self.balance_rel * lo:
            return insts[loads.index(lo)]
        B = self.hasher.block_tokens
        hashes = self.hasher.hashes(rid, 0, (self.prompt[rid] - 1) // B)
        best, best_key = insts[0], None
        for inst, load in zip(insts, loads, strict=True):
            key = (inst.prefix_match(hashes), -load)
            if best_key is None or key > best_key:
                best, best_key = inst, key
        return best


ROUTERS = {"round_robin": RoundRobinRouter, "least_loaded": LeastLoadedRouter,
           "prefix_aware": PrefixAwareRouter}


def make_router(name: str, instances: Sequence[Instance], **kwargs):
    """A router by name (deployment.router)."""
    try:
        cls = ROUTERS[name]
    except KeyError:
        from cosim.errors import ConfigError

        raise ConfigError("deployment.router",
                          f"unknown router {name!r}; use one of {', '.join(ROUTERS)}") from None
    return cls(instances, **kwargs)
