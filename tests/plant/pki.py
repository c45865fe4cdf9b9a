"""A throw-away CA for the plant: the plant broker's server certificate and one client
certificate per name (a station's bridge, the plant gateway); the CN is the user name there."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.support.pki import _issue, _name


@dataclass(frozen=True)
class PlantPki:
    ca: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]]  # CN -> (certificate, key)


def make_plant_pki(folder: Path, clients: list[str]) -> PlantPki:
    """A CA, a server certificate for 127.0.0.1 and localhost, and a client certificate per CN."""
    folder.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("reman test plant CA")
    now = datetime.datetime.now(datetime.timezone.utc)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    sans = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    server = _issue(
        ca_key, ca_name, "localhost", sans, ExtendedKeyUsageOID.SERVER_AUTH, folder, "server"
    )
    issued = {
        cn: _issue(ca_key, ca_name, cn, [], ExtendedKeyUsageOID.CLIENT_AUTH, folder, cn)
        for cn in clients
    }
    return PlantPki(folder / "ca.crt", *server, issued)
