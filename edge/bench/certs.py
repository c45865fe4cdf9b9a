"""Self-signed OPC UA application certificates (for `reman bench certs` and the simulator).

The application URI goes into subjectAltName, as OPC UA requires; asyncua's cert_gen builds it.
"""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

from edge.errors import BenchError

DEFAULT_CLIENT_URI = "urn:reman-edge:client"


def make_certificate(
    cert_path: str | Path,
    key_path: str | Path,
    uri: str = DEFAULT_CLIENT_URI,
    host: str | None = None,
    *,
    server: bool = False,
    days: int = 3650,
) -> tuple[Path, Path]:
    """Write a self-signed certificate (DER, or PEM when the name ends .pem) and its private key
    (PEM) for an application with `uri` on `host`; return both paths."""
    cert_path, key_path = Path(cert_path), Path(key_path)
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
    try:
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        key_path.parent.mkdir(parents=True, exist_ok=True)
        encoding = Encoding.PEM if cert_path.suffix == ".pem" else Encoding.DER
        cert_path.write_bytes(cert.public_bytes(encoding))
        key_path.write_bytes(cert_gen.dump_private_key_as_pem(key))
        key_path.chmod(0o600)
    except OSError as exc:
        raise BenchError(f"cannot write certificate files: {exc}") from exc
    return cert_path, key_path


def _alt_names(uri: str, host: str) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = [x509.UniformResourceIdentifier(uri)]
    try:
        names.append(x509.IPAddress(ipaddress.ip_address(host)))
    except ValueError:
        names.append(x509.DNSName(host))
    if host != "localhost":
        names.append(x509.DNSName("localhost"))
    return names
