"""cosim: co-simulator for serving mixture-of-experts LLMs."""

__version__ = "0.1.0"


def simulate(*args, **kwargs):
    """Run one simulation and return its Result (see :mod:`cosim.api`)."""
    from cosim.api import simulate as _simulate

    return _simulate(*args, **kwargs)
