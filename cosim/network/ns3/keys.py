"""CurveZMQ keys for `cosim-ns3-server` and its clients (pyzmq's zmq.auth certificate files).

A key directory, `cosim-ns3-server --keys DIR`, holds::

    DIR/server.key          the server's public key: give it to every client
    DIR/server.key_secret   the server's key pair (created on first use, mode 0600)
    DIR/authorized/*.key    public keys of the clients allowed in (anything else is refused)

`cosim-ns3-server keygen DIR [--name NAME]` writes a client pair, DIR/NAME.key and
DIR/NAME.key_secret; the client's public NAME.key goes into the server's DIR/authorized/.
Files are zmq.auth's own format (`zmq.auth.create_certificates`, `load_certificate`).
This module is shared by the server and the client (MIT; pyzmq only).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

import zmq.auth
from zmq.utils import z85

SERVER_NAME = "server"
AUTHORIZED = "authorized"


class KeysError(ValueError):
    """A key file or directory that cannot be used; the text names the file."""


def is_local_endpoint(endpoint: str) -> bool:
    """True for endpoints only this host can reach: ipc://, inproc://, tcp on loopback."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    if not endpoint.startswith("tcp://"):
        return False
    host = endpoint[len("tcp://"):].rsplit(":", 1)[0]
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # *, 0.0.0.0 is parsed above; names and interfaces count as remote


def _z85_key(key: bytes | None) -> bool:
    try:
        return key is not None and len(key) == 40 and len(z85.decode(key)) == 32
    except (ValueError, KeyError, TypeError, IndexError):
        return False


def _load(path: Path, what: str) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise KeysError(f"{what} {path} does not exist or is not a file")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as e:
        raise KeysError(f"{what} {path} is not a CurveZMQ certificate file ({e})") from None
    if not _z85_key(public):
        raise KeysError(f"{what} {path} holds no valid public key")
    if secret is not None and not _z85_key(secret):
        raise KeysError(f"{what} {path} holds an invalid secret key")
    return public, secret


def load_public_key(path: str | os.PathLike) -> bytes:
    """The public key (Z85, 40 bytes) of a .key or .key_secret file."""
    return _load(Path(path), "public key file")[0]


def load_key_pair(path: str | os.PathLike) -> tuple[bytes, bytes]:
    """(public, secret) of a .key_secret file written by keygen or create_certificates."""
    public, secret = _load(Path(path), "secret key file")
    if secret is None or len(secret) != 40:
        raise KeysError(f"secret key file {path} holds no secret key (is it the public "
                        ".key file? use the .key_secret one)")
    return public, secret


def _create(directory: Path, name: str) -> tuple[Path, Path]:
    public_file, secret_file = zmq.auth.create_certificates(directory, name)
    os.chmod(secret_file, 0o600)
    return Path(public_file), Path(secret_file)


def make_client_key(directory: str | os.PathLike, name: str = "client") -> tuple[Path, Path]:
    """Write a new client key pair DIR/NAME.key and DIR/NAME.key_secret (never overwrites)."""
    d = Path(directory)
    if not name or "/" in name or name.startswith("."):
        raise KeysError(f"key name {name!r} must be a plain file name")
    for suffix in (".key", ".key_secret"):
        if (d / f"{name}{suffix}").exists():
            raise KeysError(f"{d / (name + suffix)} exists: remove it or pick another --name")
    try:
        d.mkdir(parents=True, exist_ok=True)
        return _create(d, name)
    except OSError as e:
        raise KeysError(f"cannot write keys into {d}: {e}") from None


@dataclass(frozen=True)
class ServerKeys:
    public: bytes
    secret: bytes
    public_file: Path
    authorized: Path  # folder of the authorised clients' public .key files
    clients: int  # how many public keys it holds
    created: bool  # the pair was generated now


def server_keys(directory: str | os.PathLike) -> ServerKeys:
    """Load DIR's server key pair, generating it (and DIR/authorized/) if absent."""
    d = Path(directory)
    public_file, secret_file = d / f"{SERVER_NAME}.key", d / f"{SERVER_NAME}.key_secret"
    created = False
    try:
        if not secret_file.exists():
            if public_file.exists():
                raise KeysError(f"{public_file} exists without {secret_file.name}: restore "
                                "the secret file or remove both to make a new pair")
            d.mkdir(parents=True, exist_ok=True)
            _create(d, SERVER_NAME)
            created = True
        (d / AUTHORIZED).mkdir(exist_ok=True)
    except OSError as e:
        raise KeysError(f"cannot use key directory {d}: {e}") from None
    public, secret = load_key_pair(secret_file)
    clients = 0
    for f in sorted((d / AUTHORIZED).glob("*.key")):
        load_public_key(f)  # a broken file is named now, not skipped silently by ZAP
        clients += 1
    return ServerKeys(public, secret, public_file, d / AUTHORIZED, clients, created)
