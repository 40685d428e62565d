"""make_backend: the network backend a config asks for, behind the result cache."""

from __future__ import annotations

from typing import Any

from cosim.errors import ConfigError
from cosim.network.fabric import FabricGraph
from cosim.network.flows import NetworkBackend


def backend_variant(network_cfg: Any) -> str:
    """The settings that change a backend's answers (part of the cache key)."""
    if network_cfg.backend == "analytical":
        a = network_cfg.analytical
        return f"analytical;frame_bytes={int(a.frame_bytes)};rtol={float(a.rtol):g}"
    if network_cfg.backend == "ns3":
        n = network_cfg.ns3
        return f"ns3;transport={n.transport};frame_bytes={int(n.frame_bytes)}"
    return str(network_cfg.backend)


def make_backend(network_cfg: Any, graph: FabricGraph) -> NetworkBackend:
    """Build the backend named by network_cfg.backend for `graph`, wrapped in the result
    cache when network_cfg.cache.enabled. Callers close() it when done."""
    kind = network_cfg.backend
    if kind == "analytical":
        from cosim.network.analytical import AnalyticalBackend

        inner: Any = AnalyticalBackend(graph, frame_bytes=network_cfg.analytical.frame_bytes,
                                       rtol=network_cfg.analytical.rtol)
    elif kind == "ns3":
        try:
            from cosim.network.ns3.client import Ns3Backend
        except ImportError as e:  # the client needs pyzmq only; say what is missing
            raise ConfigError("network.backend",
                              f"ns3 backend unavailable ({e}); install cosim with its "
                              "dependencies (pip install -e '.[ns3]')") from e
        inner = Ns3Backend(graph, network_cfg.ns3)
    else:
        raise ConfigError("network.backend",
                          f"no flow backend {kind!r} here; use analytical or ns3")
    cache_cfg = network_cfg.cache
    if not cache_cfg.enabled:
        return inner
    from cosim.network.cache import CachedBackend, ResultCache

    cache = ResultCache(cache_cfg.path, memory_entries=cache_cfg.memory_entries)
    return CachedBackend(inner, cache, graph.digest(), backend_variant(network_cfg),
                         grid_percent=cache_cfg.grid_percent, exact=cache_cfg.exact)
