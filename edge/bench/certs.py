"""Self-signed OPC UA application certificates (for `reman bench certs` and the simulator).

The application URI goes into subjectAltName, as OPC UA requires; asyncua's cert_gen builds it.
Made with sudo, the pair is given to the node's service user (`owner`, `default_owner`), which
must read the key: a key only root can read fails the node's secured connection at start.
"""

from __future__ import annotations

import grp
import ipaddress
import os
import pwd
import socket
from pathlib import Path

from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from edge.errors import BenchError

DEFAULT_CLIENT_URI = "urn:reman-edge:client"
# The user deploy/raspberrypi/install.sh runs the node as.
SERVICE_USER = "reman"


def make_certificate(
    cert_path: str | Path,
    key_path: str | Path,
    uri: str = DEFAULT_CLIENT_URI,
    host: str | None = None,
    *,
    server: bool = False,
    days: int = 3650,
    owner: str | None = None,
) -> tuple[Path, Path]:
    """Write a self-signed certificate (DER, or PEM when the name ends .pem) and its private key
    (PEM) for an application with `uri` on `host`; return both paths.

    The key is 0600. With `owner` ("USER" or "USER:GROUP") both files are given to that user;
    when a group is named the key is 0640, readable by its members too.
    """
    cert_path, key_path = Path(cert_path), Path(key_path)
    ids = owner_ids(owner) if owner else None
    host = host or socket.gethostname()
    key = cert_gen.generate_private_key()
    usage = [ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = cert_gen.generate_self_signed_app_certificate(
        key,
        f"reman-edge {'server' if server else 'client'}",
        {"organizationName": "reman-edge"},
        _alt_names(uri, host),
        usage,
        days=days,
    )
    encoding = Encoding.PEM if cert_path.suffix == ".pem" else Encoding.DER
    try:
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        key_path.parent.mkdir(parents=True, exist_ok=True)
        cert_path.write_bytes(cert.public_bytes(encoding))
        _write_private(key_path, cert_gen.dump_private_key_as_pem(key))
        if ids is not None:
            _hand_over(cert_path, key_path, ids, group_reads=":" in (owner or ""))
    except OSError as exc:
        raise BenchError(f"cannot write certificate files: {exc}") from exc
    return cert_path, key_path


def default_owner() -> str | None:
    """The node's service user when run as root and that user exists, else None (the caller's)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return None
    return SERVICE_USER


def owner_ids(owner: str) -> tuple[int, int]:
    """uid and gid for "USER" (its own group) or "USER:GROUP"; BenchError when either is unknown."""
    user, _, group = owner.partition(":")
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise BenchError(f"no user named {user!r}") from None
    if not group:
        return account.pw_uid, account.pw_gid
    try:
        return account.pw_uid, grp.getgrnam(group).gr_gid
    except KeyError:
        raise BenchError(f"no group named {group!r}") from None


def _write_private(path: Path, data: bytes) -> None:
    # Created 0600, so the key is never readable by others, not even for a moment.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    path.chmod(0o600)


def _hand_over(cert_path: Path, key_path: Path, ids: tuple[int, int], group_reads: bool) -> None:
    for path in (cert_path, key_path):
        os.chown(path, *ids)
    key_path.chmod(0o640 if group_reads else 0o600)


def _alt_names(uri: str, host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    if host != "localhost":
        names.append(x509.DNSName("localhost"))
    return names
