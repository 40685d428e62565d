"""A local ns-3 server that dies, before or after its readiness line, is started again a
bounded number of times; each restart is logged and counted (Ns3Backend.restarts, and
summary.json's network_server_restarts)."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ns3_graphs import tree  # noqa: E402

from cosim.network.flows import FlowBatch  # noqa: E402

pytestmark = pytest.mark.ns3
pytest.importorskip("ns3", reason="the ns3 wheel (Linux x86-64) is not installed")

from cosim.network.ns3 import client  # noqa: E402

FLOWS = FlowBatch.from_arrays([0, 1, 2], [3, 3, 0], [200_000, 100_000, 50_000])


def _wait_dead(server: client._LocalServer) -> None:
    """Wait (bounded) until the killed server process has exited."""
    for _ in range(200):
        if not server.alive():
            return
        time.sleep(0.05)


@pytest.fixture
def killed_before_ready(monkeypatch):
    """The first `n` local servers are SIGKILLed before their readiness line is read."""
    real = client._LocalServer._wait_ready
    killed: list[int] = []

    def install(n: int) -> list[int]:
        def wait_ready(self, timeout_s):
            if len(killed) < n:
                killed.append(self.proc.pid)
                self.proc.send_signal(signal.SIGKILL)
            return real(self, timeout_s)

        monkeypatch.setattr(client._LocalServer, "_wait_ready", wait_ready)
        return killed

    return install


def test_a_server_killed_before_ready_is_started_again_logged_and_counted(
        killed_before_ready, caplog):
    killed = killed_before_ready(1)
    with caplog.at_level(logging.WARNING, logger=client.__name__), \
            client.Ns3Backend(tree(leaves=2, per_leaf=2), {"retries": 2}) as b:
        got = b.simulate(FLOWS)
        assert killed and b.restarts == 1 and got.stats["restarts"] == 1
        assert b.server_pids() != killed
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "failed to start" in lines[0] and "exited with code -9 " \
        "before it was ready" in lines[0] and "(2 of 3)" in lines[0], lines
    assert np.all(got.finish > 0)


def test_starts_are_bounded_by_retries(killed_before_ready):
    killed = killed_before_ready(10)
    with client.Ns3Backend(tree(leaves=2, per_leaf=2), {"retries": 1}) as b, \
            pytest.raises(client.Ns3Error, match=r"before it was ready.*started 2 time\(s\)"):
        b.simulate(FLOWS)
    assert len(killed) == 2


def test_a_server_that_dies_between_batches_is_restarted_and_counted(caplog):
    with caplog.at_level(logging.WARNING, logger=client.__name__), \
            client.Ns3Backend(tree(leaves=2, per_leaf=2), {"retries": 2}) as b:
        first = b.simulate(FLOWS)
        (pid,) = b.server_pids()
        os.kill(pid, signal.SIGKILL)
        _wait_dead(b._endpoints[0].local)
        again = b.simulate(FLOWS)
        assert b.restarts == 1 and np.array_equal(first.finish, again.finish)
    assert any("exited with code -9 while idle" in r.getMessage() for r in caplog.records)


def test_summary_counts_the_restarts_of_a_run(killed_before_ready, tmp_path, monkeypatch):
    from cosim.api import simulate

    monkeypatch.setenv("COSIM_CACHE_DIR", str(tmp_path / "cache"))
    killed = killed_before_ready(1)
    res = simulate(["network=ns3", "workload.num_requests=4", "output.progress=false"])
    assert killed and res.summary["network_server_restarts"] == 1
    assert res.summary["requests_completed"] == 4
