"""ns-3 TCP transports (NewReno, DCTCP): the comparison option beside the lossless default."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ns3_graphs import star  # noqa: E402

from cosim.network.flows import FlowBatch  # noqa: E402

pytestmark = [pytest.mark.ns3, pytest.mark.slow]
pytest.importorskip("ns3", reason="the ns3 wheel (Linux x86-64) is not installed")

from cosim.network.ns3.client import Ns3Backend  # noqa: E402


@pytest.fixture(scope="module")
def servers():
    g = star(4)
    lossless = Ns3Backend(g)
    address = lossless.ping()[0] and lossless._endpoints[0].address
    # The TCP backends share the lossless backend's server (one process, three fabrics).
    tcp = Ns3Backend(g, {"transport": "tcp", "endpoints": [address]})
    dctcp = Ns3Backend(g, {"transport": "dctcp", "endpoints": [address]})
    yield g, lossless, tcp, dctcp
    for b in (tcp, dctcp, lossless):
        b.close()


@pytest.mark.parametrize("transport", ["tcp", "dctcp"])
def test_tcp_flows_complete_after_the_bound_and_repeat_exactly(servers, transport):
    g, lossless, tcp, dctcp = servers
    b = tcp if transport == "tcp" else dctcp
    size = np.array([4_000_000, 4_000_000, 1_000_000])
    flows = FlowBatch.from_arrays([0, 2, 3], [1, 1, 0], size, [0.0, 0.0, 5e-6])
    r = b.simulate(flows)
    again = b.simulate(flows)
    ref = lossless.simulate(flows)
    line = 100e9
    # Two flows into GPU 1 share its downlink: neither can beat the shared bound.
    assert r.finish[:2].max() >= size[:2].sum() * 8 / line
    assert np.all(r.finish - flows.start >= size * 8 / line)
    # TCP pays a handshake, slow start and ACK clocking: never faster than lossless.
    assert r.makespan >= ref.makespan * 0.999
    assert r.finish.tobytes() == again.finish.tobytes()
    assert r.stats["transport"] == transport
