"""CurveZMQ authentication of cosim-ns3-server (pyzmq's ZAP authenticator), on loopback TCP.

The server tests start it with --no-warm-up (ping and shutdown need no ns-3), so they run in
a second or two; the ns3-marked one compares an authorised client's results with an ipc
server's, bit for bit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zmq

sys.path.insert(0, str(Path(__file__).parent))
from ns3_graphs import tree  # noqa: E402
from ns3_server_proc import ROOT, ServerProc, exchange  # noqa: E402

from cosim.config.network import CurveConfig, Ns3Config  # noqa: E402
from cosim.errors import ConfigError  # noqa: E402
from cosim.network.flows import FlowBatch  # noqa: E402
from cosim.network.ns3 import keys, wire  # noqa: E402
from cosim.network.ns3.client import Ns3Backend, Ns3Error, curve_keys  # noqa: E402
from cosim.network.ns3.server.main import Server  # noqa: E402

NOTHING_MS = 1500  # how long an unauthorised client waits for the nothing it must get


def _server_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cosim.network.ns3.server.main", *args],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)


@pytest.mark.parametrize("endpoint, local", [
    ("ipc:///tmp/x.sock", True), ("inproc://x", True), ("tcp://127.0.0.1:5555", True),
    ("tcp://127.0.0.1:*", True), ("tcp://127.9.0.1:1", True), ("tcp://localhost:5555", True),
    ("tcp://[::1]:5555", True), ("tcp://0.0.0.0:5555", False), ("tcp://*:5555", False),
    ("tcp://10.0.0.5:5555", False), ("tcp://eth0:5555", False), ("tcp://[::]:5555", False),
    ("tcp://example.org:5555", False)])
def test_only_loopback_and_ipc_count_as_local(endpoint, local):
    assert keys.is_local_endpoint(endpoint) is local


def test_a_remote_bind_without_keys_is_refused_with_one_line():
    p = _server_cli("--endpoint", "tcp://0.0.0.0:*", "--no-warm-up")
    assert p.returncode == 2 and p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "--keys" in lines[0] and "--insecure" in lines[0], p.stderr


def test_shutdown_is_refused_on_an_unauthenticated_remote_server():
    s = Server(allow_shutdown=False)
    r = wire.decode(s.handle(wire.encode("shutdown", request_id=1)), reply=True)
    assert r.header["ok"] is False and "refused" in r.header["error"] and not s.stop
    s = Server()
    r = wire.decode(s.handle(wire.encode("shutdown", request_id=1)), reply=True)
    assert r.header["ok"] is True and s.stop


def test_keygen_writes_a_pair_and_never_overwrites(tmp_path):
    p = _server_cli("keygen", str(tmp_path), "--name", "alice")
    assert p.returncode == 0, p.stderr
    public, secret = keys.load_key_pair(tmp_path / "alice.key_secret")
    assert keys.load_public_key(tmp_path / "alice.key") == public and len(secret) == 40
    assert (tmp_path / "alice.key_secret").stat().st_mode & 0o077 == 0
    again = _server_cli("keygen", str(tmp_path), "--name", "alice")
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1
    assert "alice.key" in again.stderr


def test_a_broken_authorised_key_is_named_at_start(tmp_path):
    keys.server_keys(tmp_path)
    (tmp_path / "authorized" / "bob.key").write_text("not a key\n")
    p = _server_cli("--endpoint", "tcp://127.0.0.1:*", "--keys", str(tmp_path), "--no-warm-up")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "bob.key" in p.stderr


@pytest.fixture(scope="module")
def keydir(tmp_path_factory):
    d = tmp_path_factory.mktemp("keys")
    server = keys.server_keys(d / "server")
    keys.make_client_key(d / "client", "alice")
    keys.make_client_key(d / "client", "mallory")  # a valid pair the server does not know
    (d / "server" / "authorized" / "alice.key").write_bytes(
        (d / "client" / "alice.key").read_bytes())
    assert server.created
    return d


def _pair(keydir, name):
    return keys.load_key_pair(keydir / "client" / f"{name}.key_secret")


def _nothing_back(sock) -> bool:
    sock.send_multipart(wire.encode("ping", request_id="probe"))
    return sock.poll(NOTHING_MS) == 0


def test_unauthorised_clients_get_nothing_and_authorised_ones_are_served(keydir):
    srv = ServerProc("--endpoint", "tcp://127.0.0.1:*", "--keys", str(keydir / "server"),
                     "--no-warm-up")
    try:
        assert srv.ready_line.endswith("auth=curve")
        server_public = keys.load_public_key(keydir / "server" / "server.key")
        alice, mallory = _pair(keydir, "alice"), _pair(keydir, "mallory")
        _, wrong_server = zmq.curve_keypair()
        for curve in (None,  # plain ZMTP, no keys at all
                      (server_public, *mallory),  # a key pair not in authorized/
                      (wrong_server, *alice)):  # the right pair, the wrong server key
            sock = srv.socket(curve)
            try:
                assert _nothing_back(sock), curve
            finally:
                sock.close()
        sock = srv.socket((server_public, *alice))
        try:
            r = exchange(sock, wire.encode("ping", request_id=1), timeout_s=30)
            assert r.header["ok"] and r.header["result"]["auth"] == "curve"
            assert exchange(sock, wire.encode("shutdown", request_id=2)).header["ok"]
        finally:
            sock.close()
        assert srv.proc.wait(timeout=30) == 0
    finally:
        srv.close()


def test_a_refused_client_is_told_which_key_to_fix(keydir, tmp_path):
    srv = ServerProc("--endpoint", "tcp://127.0.0.1:*", "--keys", str(keydir / "server"),
                     "--no-warm-up")
    keys.make_client_key(tmp_path, "impostor")
    mallory = {"server_public_key": str(keydir / "server" / "server.key"),
               "client_secret_key": str(keydir / "client" / "mallory.key_secret")}
    wrong_server = {"server_public_key": str(tmp_path / "impostor.key"),
                    "client_secret_key": str(keydir / "client" / "alice.key_secret")}
    try:
        for curve, needle in ((mallory, "refused this client's CurveZMQ key: copy .*mallory.key "),
                              (wrong_server, "CurveZMQ handshake failed: .*server_public_key")):
            with Ns3Backend(tree(), {"endpoints": [srv.endpoint], "curve": curve}) as b:
                with pytest.raises(Ns3Error, match=needle):
                    b.ping()
        assert srv.proc.poll() is None  # refused clients do not disturb the server
    finally:
        srv.close()


def test_curve_settings_name_the_field(tmp_path, keydir):
    with pytest.raises(ConfigError, match=r"^network.ns3.curve.client_secret_key: must be set"):
        Ns3Config(endpoints=["tcp://h:1"],
                  curve=CurveConfig(server_public_key=str(tmp_path))).validate()
    with pytest.raises(ConfigError, match=r"^network.ns3.curve.server_public_key: file "):
        Ns3Config(endpoints=["tcp://h:1"], curve=CurveConfig(
            server_public_key=str(tmp_path / "nope.key"),
            client_secret_key=str(keydir / "client" / "alice.key_secret"))).validate()
    good = {"server_public_key": str(keydir / "server" / "server.key"),
            "client_secret_key": str(keydir / "client" / "alice.key_secret")}
    with pytest.raises(ConfigError, match=r"^network.ns3.curve: keys are for servers"):
        Ns3Config(curve=CurveConfig(**good)).validate()
    Ns3Config(endpoints=["tcp://h:1"], curve=CurveConfig(**good)).validate()
    assert curve_keys(good).public_file == str(keydir / "client" / "alice.key")
    (tmp_path / "junk.key").write_text("junk\n")
    for over, needle in ((dict(client_secret_key=good["server_public_key"]),
                          "client_secret_key: .*holds no secret key"),
                         (dict(server_public_key=str(tmp_path / "junk.key")),
                          "server_public_key: .*junk.key is not a CurveZMQ")):
        with pytest.raises(Ns3Error, match=needle):
            curve_keys({**good, **over})


def test_cli_with_a_missing_key_file_exits_2_with_one_line(tmp_path):
    p = subprocess.run(
        [sys.executable, "-c", "from cosim.cli import main; main()", "network=ns3",
         "network.ns3.endpoints=[tcp://127.0.0.1:9]",
         f"network.ns3.curve.server_public_key={tmp_path}/server.key",
         f"network.ns3.curve.client_secret_key={tmp_path}/me.key_secret",
         "workload.num_requests=4", "output.progress=false", f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert p.returncode == 2, p.stderr[-2000:]
    lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "network.ns3.curve.server_public_key" in lines[0], lines


@pytest.mark.ns3
def test_an_authorised_remote_client_gets_the_same_results_as_ipc(keydir, tmp_path):
    pytest.importorskip("ns3", reason="the ns3 wheel (Linux x86-64) is not installed")
    graph = tree(leaves=2, per_leaf=2)
    rng = np.random.default_rng(7)
    src = rng.integers(0, 4, 12)
    flows = FlowBatch.from_arrays(src, (src + rng.integers(1, 4, 12)) % 4,
                                  rng.integers(1, 2_000_000, 12), rng.random(12) * 1e-5)
    curve = {"server_public_key": str(keydir / "server" / "server.key"),
             "client_secret_key": str(keydir / "client" / "alice.key_secret")}
    finish = {}
    for name, args, cfg in (
            ("curve", ("--endpoint", "tcp://127.0.0.1:*", "--keys", str(keydir / "server")),
             {"curve": curve}),
            ("ipc", ("--endpoint", f"ipc://{tmp_path}/ns3.sock"), {})):
        srv = ServerProc(*args)
        try:
            with Ns3Backend(graph, {"endpoints": [srv.endpoint], **cfg}) as b:
                r = b.simulate(flows)
                assert b.ping()[0]["auth"] == ("curve" if name == "curve" else "none")
            finish[name] = r.finish
        finally:
            srv.close()
    assert finish["curve"].tobytes() == finish["ipc"].tobytes()
    assert np.all(finish["curve"] > flows.start)
