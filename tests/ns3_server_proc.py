"""A cosim-ns3-server child process for tests that talk to it with raw sockets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import zmq

from cosim.network.ns3 import wire
from cosim.network.ns3.server.main import READY_PREFIX

ROOT = Path(__file__).resolve().parents[1]


class ServerProc:
    """`python -m cosim.network.ns3.server.main ARGS`, ready (its endpoint read) on return."""

    def __init__(self, *args: str, start_timeout_s: float = 120.0):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cosim.network.ns3.server.main", "--parent-pid",
             str(os.getpid()), *args], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, text=True)
        line = self.proc.stdout.readline()  # the server prints it within its start time
        if not line.startswith(READY_PREFIX):
            self.proc.kill()
            _, err = self.proc.communicate(timeout=30)
            raise RuntimeError(f"server did not start: {line!r} {err[-2000:]!r}")
        self.ready_line = line.strip()
        self.endpoint = line.split("endpoint=", 1)[1].split()[0]
        self.ctx = zmq.Context()

    def socket(self, curve: tuple[bytes, bytes, bytes] | None = None) -> zmq.Socket:
        """A DEALER connected to the server; curve = (server_public, public, secret)."""
        s = self.ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            s.curve_serverkey, s.curve_publickey, s.curve_secretkey = curve
        s.connect(self.endpoint)
        return s

    def close(self) -> None:
        self.ctx.destroy(linger=0)
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)
        for f in (self.proc.stdout, self.proc.stderr):
            f.close()


def exchange(sock: zmq.Socket, frames: list, timeout_s: float = 60.0) -> wire.Message:
    sock.send_multipart(frames)
    assert sock.poll(int(timeout_s * 1000)), "server did not answer"
    return wire.decode(sock.recv_multipart(), reply=True)
