"""Ns3Backend failure paths that need no ns-3: missing wheel, unreachable server, bad config."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ns3_graphs import star  # noqa: E402

from cosim.network.flows import FlowBatch  # noqa: E402
from cosim.network.ns3 import client, loader  # noqa: E402


def test_without_the_wheel_the_error_says_what_to_do(monkeypatch):
    real = client.importlib.util.find_spec
    monkeypatch.setattr(client.importlib.util, "find_spec",
                        lambda name, *a: None if name == "ns3" else real(name, *a))
    with client.Ns3Backend(star(2)) as b, pytest.raises(client.Ns3Error) as e:
        b.simulate(FlowBatch.from_arrays([0], [1], [100]))
    assert "pip install 'cosim[ns3]'" in str(e.value)
    assert "network.ns3.endpoints" in str(e.value)


def test_loader_without_the_wheel_names_the_fix(monkeypatch):
    monkeypatch.setattr(loader.importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(loader.Ns3NotAvailable, match="network.ns3.endpoints"):
        loader.wheel_prefix()


def test_unreachable_server_times_out_after_the_retries():
    with socket.socket() as s:  # a port where nobody listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = {"endpoints": [f"tcp://127.0.0.1:{port}"], "timeout_s": 0.2,
           "start_timeout_s": 0.2, "retries": 1, "connect_timeout_s": 0.4}
    with client.Ns3Backend(star(2), cfg) as b, pytest.raises(client.Ns3Error, match="did not answer within 0.4 s"):
        b.simulate(FlowBatch.from_arrays([0], [1], [100]))


@pytest.mark.parametrize("cfg, needle", [({"frame_bytes": 65536}, "frame_bytes"),
                                         ({"transport": "udp"}, "transport")])
def test_bad_settings_name_the_field(cfg, needle):
    with pytest.raises(ValueError, match=needle):
        client.Ns3Backend(star(2), cfg)


@pytest.mark.skipif(client.importlib.util.find_spec("ns3") is None, reason="needs the ns3 wheel")
def test_server_that_exits_before_ready_is_reported_and_leaves_no_open_pipe():
    fds = Path("/proc/self/fd")
    before = len(list(fds.iterdir()))
    # An address that cannot be bound: the server exits with code 2 before its ready line.
    try:
        client._LocalServer(30.0, 10, bind="tcp://256.0.0.1:1")
    except client.Ns3Error as e:
        assert "exited with code 2 before it was ready" in str(e)
        # Checked while the traceback (and the half-built server object) is still alive.
        assert len(list(fds.iterdir())) == before
    else:
        pytest.fail("a server that cannot bind was reported ready")


def test_cli_with_an_unreachable_endpoint_exits_3_with_one_line(tmp_path):
    import os
    import subprocess

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    p = subprocess.run([sys.executable, "-c", "from cosim.cli import main; main()",
                        "network=ns3", f"network.ns3.endpoints=[tcp://127.0.0.1:{port}]",
                        "network.ns3.connect_timeout_s=1", "workload.num_requests=4",
                        "output.progress=false", f"hydra.run.dir={tmp_path}"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 3, p.stderr[-2000:]
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"tcp://127.0.0.1:{port}" in lines[0], p.stderr[-2000:]
