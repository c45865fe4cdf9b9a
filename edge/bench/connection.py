"""Opening one OPC UA session to the bench: security, user, timeouts, and error wrapping.

Everything asyncua raises while connecting becomes a BenchError here (BenchUnavailable when the
server cannot be reached, BenchError when it refuses us), so callers catch `edge.errors` only.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto import security_policies

from edge.bench import trust
from edge.config.station import BenchConfig
from edge.errors import BenchError, BenchUnavailable

log = logging.getLogger("reman.bench")

CLIENT_NAME = "reman-edge bench client"
_MODES = {
    "Sign": ua.MessageSecurityMode.Sign,
    "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt,
}
_REFUSALS = (
    "BadUserAccessDenied",
    "BadIdentityTokenInvalid",
    "BadIdentityTokenRejected",
    "BadSecurityChecksFailed",
    "BadCertificateInvalid",
    "BadCertificateUntrusted",
    "BadSecurityPolicyRejected",
    "BadSecurityModeRejected",
    "BadCertificateUriInvalid",
)
# What asyncua and asyncio raise when a server is unreachable, slow, or refuses a request.
TRANSPORT_ERRORS = (OSError, TimeoutError, asyncio.TimeoutError, ConnectionError, EOFError)
UA_ERRORS = (ua.UaError, ua.UaStatusCodeError)


def bench_password(config: BenchConfig) -> str | None:
    """The password from the config value or its password_file (first line), or None."""
    if config.password is not None:
        return config.password.get_secret_value()
    if config.password_file:
        try:
            return Path(config.password_file).read_text(encoding="utf-8").splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            raise BenchError(
                f"cannot read bench password_file {config.password_file}: {exc}"
            ) from exc
    return None


async def make_client(config: BenchConfig) -> Client:
    """An unconnected asyncua Client set up from the bench config (no network yet unless
    security is on without a trusted server certificate, which asks the server for it)."""
    client = Client(
        config.endpoint, timeout=config.timeout_s, watchdog_intervall=min(1.0, config.timeout_s)
    )
    client.name = client.description = CLIENT_NAME
    client.application_uri = config.security.application_uri
    if config.username:
        client.set_user(config.username)
        password = bench_password(config)
        if password is not None:
            client.set_password(password)
    if config.security.policy != "None":
        await _apply_security(client, config)
    return client


async def _apply_security(client: Client, config: BenchConfig) -> None:
    sec = config.security
    for label, path in (
        ("certificate", sec.certificate),
        ("private_key", sec.private_key),
        ("server_certificate", sec.server_certificate),
    ):
        if path and not Path(path).is_file():
            raise BenchError(f"bench security {label} {path} does not exist")
    certificate, private_key = sec.certificate, sec.private_key
    assert certificate and private_key  # BenchSecurity requires both for a secured policy
    await client.set_security(
        security_policies.SecurityPolicyBasic256Sha256,
        certificate=certificate,
        private_key=private_key,
        server_certificate=sec.server_certificate,
        mode=_MODES[sec.mode],
    )


async def connect(config: BenchConfig) -> Client:
    """A connected, activated session, within timeout_s (twice over for the secure handshake).

    Raises BenchUnavailable when the server cannot be reached in time, BenchError when it
    refuses the user or certificate (naming the certificate file to fix).
    """
    made: list[Client] = []  # the client, once made, to close when connecting fails

    async def attempt() -> Client:
        made.append(await make_client(config))
        await made[0].connect(auto_reconnect=False)
        return made[0]

    try:
        return await asyncio.wait_for(attempt(), config.timeout_s * 2)
    except BenchError:
        raise
    except (*TRANSPORT_ERRORS, *UA_ERRORS, AssertionError) as exc:
        # AssertionError: asyncua 2.1's client, when a server answers OpenSecureChannel with a
        # ServiceFault, logs the status and then fails an assert on the missing response.
        if made:
            await close(made[0])
        raise await _connect_error(config, exc) from exc


async def _connect_error(config: BenchConfig, exc: BaseException) -> BenchError:
    """describe_error's error, unless a secured connect failed over a certificate: then one
    that names the file to fix (the pinned server certificate, or our client certificate)."""
    if config.security.policy == "None":
        if isinstance(exc, AssertionError):
            return BenchError(f"bench {config.endpoint} refused to open a channel")
        return describe_error(config.endpoint, exc)
    status = _status_name(exc)
    if trust.may_be_the_channel(exc, status):
        mismatch = await trust.pinned_mismatch(config)
        if mismatch:
            return BenchError(mismatch)
    if isinstance(exc, AssertionError):
        return BenchError(trust.channel_refusal(config))
    refusal = trust.certificate_refusal(config, status) if status else None
    return BenchError(refusal) if refusal else describe_error(config.endpoint, exc)


def describe_error(endpoint: str, exc: BaseException) -> BenchError:
    """One of our errors, with a message an integrator can act on, for an asyncua failure."""
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return BenchUnavailable(f"bench {endpoint} did not answer in time")
    name = _status_name(exc)
    if name in _REFUSALS:
        return BenchError(f"bench {endpoint} refused the connection: {name} ({exc})")
    if "No matching endpoints" in str(exc):
        return BenchError(
            f"bench {endpoint} offers no endpoint with this security policy and mode ({exc})"
        )
    if isinstance(exc, OSError | ConnectionError | EOFError):
        return BenchUnavailable(f"bench {endpoint} cannot be reached: {exc or type(exc).__name__}")
    return BenchError(f"bench {endpoint}: {name or type(exc).__name__}: {exc}")


def _status_name(exc: BaseException) -> str | None:
    code = getattr(exc, "code", None)
    if code is None:
        return None
    try:
        return ua.StatusCode(code).name
    except (TypeError, ValueError):
        return None


async def close(client: Client) -> None:
    """Close a session without raising, within a short bound (the server may be gone)."""
    try:
        await asyncio.wait_for(client.disconnect(), 2.0)
    except Exception:  # noqa: BLE001 - teardown of a possibly dead link; nothing to report
        log.debug("closing the bench session failed", exc_info=True)
        client.disconnect_socket()
