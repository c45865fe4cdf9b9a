"""Why a secured bench turned us away, in words an integrator can act on.

Two certificates must be trusted for a signed or encrypted session: ours by the server (its
administrator adds our client certificate file to the server's trusted list), and the server's
by us (bench.security.server_certificate, when pinned). Servers say little about which one
failed: asyncua's refuses our certificate at CreateSession (BadCertificateUntrusted), others at
OpenSecureChannel (BadSecurityChecksFailed, which asyncua 2.1's client turns into a bare
AssertionError), and a server that cannot decrypt our request because we encrypted for the wrong
certificate may answer BadTcpInternalError, close the socket or say nothing. So when a secured
connect fails, `pinned_mismatch` asks the server, over an unsecured channel, which certificate
it offers for our policy and mode and compares it with the pinned one; `certificate_refusal`
and `channel_refusal` name our client certificate when the server's answer is about one.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto import security_policies
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from edge.config.station import BenchConfig

_POLICY_URI = security_policies.SecurityPolicyBasic256Sha256.URI
_TRUST = "add that file to the bench server's trusted certificates"
# What a server answers about our client certificate, and what to do about it.
_CERTIFICATE_HINTS = {
    "BadCertificateUntrusted": _TRUST,
    "BadSecurityChecksFailed": _TRUST,
    "BadCertificateInvalid": f"check it is the file `reman bench certs` wrote, then {_TRUST}",
    "BadCertificateChainIncomplete": "give the server the issuing CA's certificate too",
    "BadCertificateRevoked": "the server revoked it; make a new one with `reman bench certs`",
    "BadCertificateTimeInvalid": "it has expired or is not valid yet; make a new one with "
    "`reman bench certs`",
    "BadCertificateUseNotAllowed": "its key usage is not a client's; make one with "
    "`reman bench certs`",
}
# Refusals that come after the secure channel opened, so the pinned certificate was fine.
_NOT_THE_CHANNEL = ("BadUserAccessDenied", "BadIdentityTokenInvalid", "BadIdentityTokenRejected")


def channel_refusal(config: BenchConfig) -> str:
    """The one-line message for a server that refused to open the secure channel without a
    status we can read (asyncua lost it): almost always our client certificate."""
    return (
        f"bench {config.endpoint} refused to open a secure channel with our client "
        f"certificate {config.security.certificate}: {_TRUST}"
    )


def certificate_refusal(config: BenchConfig, status: str) -> str | None:
    """The one-line message for a server that refused our client certificate with `status`,
    or None when `status` is not about a certificate."""
    hint = _certificate_hint(config, status)
    if hint is None:
        return None
    certificate = config.security.certificate
    return (
        f"bench {config.endpoint} refused our client certificate {certificate} ({status}): {hint}"
    )


def _certificate_hint(config: BenchConfig, status: str) -> str | None:
    if status == "BadCertificateUriInvalid":
        uri = config.security.application_uri
        return f"its subjectAltName URI must be bench.security.application_uri {uri}"
    return _CERTIFICATE_HINTS.get(status)


def may_be_the_channel(exc: BaseException, status: str | None) -> bool:
    """Whether a failed connect may have failed in the secure channel, where a wrong pinned
    server certificate shows (a timeout, a closed socket, a refusal); False for an unreachable
    server or a refused user."""
    if isinstance(exc, ConnectionRefusedError | socket.gaierror):
        return False
    return status not in _NOT_THE_CHANNEL


async def pinned_mismatch(config: BenchConfig) -> str | None:
    """The one-line message when the server offers, for our policy and mode, a certificate other
    than the pinned bench.security.server_certificate; None when it matches, nothing is pinned,
    or the server cannot be asked (within timeout_s)."""
    pinned_path = config.security.server_certificate
    if config.security.policy == "None" or not pinned_path:
        return None
    try:
        pinned = _der(Path(pinned_path).read_bytes())
        offered = await asyncio.wait_for(_offered_certificate(config), config.timeout_s)
    except (OSError, ValueError, EOFError, asyncio.TimeoutError, ua.UaError):
        return None  # no better answer than the connect failure itself
    if offered is None or offered == pinned:
        return None
    return (
        f"bench {config.endpoint} offers server certificate SHA-1 {_thumbprint(offered)}, "
        f"not the one pinned in bench.security.server_certificate {pinned_path} "
        f"(SHA-1 {_thumbprint(pinned)}): replace that file with the bench's certificate, "
        "or check the endpoint"
    )


async def _offered_certificate(config: BenchConfig) -> bytes | None:
    """The server's certificate on the endpoint with our policy and mode (DER), or None."""
    probe = Client(config.endpoint, timeout=config.timeout_s)
    mode = ua.MessageSecurityMode[config.security.mode]
    for endpoint in await probe.connect_and_get_server_endpoints():
        if endpoint.SecurityMode == mode and endpoint.SecurityPolicyUri == _POLICY_URI:
            return _first_certificate(endpoint.ServerCertificate or b"") or None
    return None


def _der(data: bytes) -> bytes:
    """A certificate file's bytes as DER (it may be PEM)."""
    if data.lstrip().startswith(b"-----BEGIN"):
        return x509.load_pem_x509_certificate(data).public_bytes(Encoding.DER)
    return _first_certificate(data)


def _first_certificate(der: bytes) -> bytes:
    """The leading certificate of a DER blob that may carry its chain after it."""
    if len(der) < 4 or der[1] != 0x82:  # a certificate is a SEQUENCE with a two-byte length
        return der
    return der[: int.from_bytes(der[2:4], "big") + 4]


def _thumbprint(der: bytes) -> str:
    """SHA-1 of the DER certificate, as OPC UA tools show it (upper-case hex)."""
    return hashlib.sha1(der).hexdigest().upper()  # noqa: S324 - a thumbprint, not security
