"""How both ends reach the broker: the settings (host, auth, TLS) and the one paho client builder.

    BrokerConfig, TlsConfig          the `mqtt:` section of station and gateway configs
    build_client(cfg, client_id=...)  a paho-mqtt 2.x client with auth, TLS, Last Will, TCP_NODELAY
                                      and a reconnect delay that doubles from a jittered minimum

The node and the gateway both build their client here, so TLS and authentication behave the same
on both sides. Unusable settings (an unreadable password file, a missing CA file) raise
BrokerSettingsError; callers add their own callbacks.
"""

from __future__ import annotations

import random
import socket
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from edge.contract.errors import BrokerSettingsError
from edge.contract.messages import DEFAULT_PREFIX

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike

# Each client scales its reconnect delays by its own factor in [1, 1 + JITTER): stations that
# lost one broker together come back spread out instead of in lockstep.
RECONNECT_JITTER = 0.5


class _Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TlsConfig(_Settings):
    """TLS to the broker."""

    ca_file: str | None = Field(
        default=None, description="CA certificate (PEM) that signed the broker's certificate."
    )
    cert_file: str | None = Field(
        default=None, description="Client certificate (PEM), for mutual TLS."
    )
    key_file: str | None = Field(default=None, description="Client private key (PEM).")
    check_hostname: bool = Field(
        default=True, description="Verify the broker's host name against its certificate."
    )


class BrokerConfig(_Settings):
    """How to reach the MQTT broker."""

    host: str = Field(default="127.0.0.1", description="Broker host name or address.")
    port: int = Field(
        default=1883, ge=1, le=65535, description="Broker TCP port (8883 for TLS by convention)."
    )
    protocol: Literal["5", "3.1.1"] = Field(default="5", description="MQTT protocol version.")
    client_id: str | None = Field(
        default=None,
        description="Client id; default reman-<station> (stable, for a persistent session).",
    )
    username: str | None = Field(default=None, description="User name.")
    password: SecretStr | None = Field(
        default=None, description="Password; write ${ENV_VAR}, never the password itself."
    )
    password_file: str | None = Field(
        default=None, description="File holding the password (alternative to password)."
    )
    tls: TlsConfig | None = Field(default=None, description="TLS settings; absent for plain TCP.")
    keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive, seconds.")
    reconnect_min_s: float = Field(default=0.5, gt=0, description="First reconnect delay, seconds.")
    reconnect_max_s: float = Field(default=30.0, gt=0, description="Reconnect delay cap, seconds.")
    topic_prefix: str = Field(
        default=DEFAULT_PREFIX,
        pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$",
        description="Topic prefix.",
    )

    def resolved_password(self) -> str | None:
        """The password from the value or the file, None when neither is set."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file:
            with open(self.password_file, encoding="utf-8") as fh:
                return fh.read().strip()
        return None


@dataclass(frozen=True)
class Will:
    """A Last Will: what the broker publishes when the client goes away without a DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


def build_client(
    cfg: BrokerConfig, *, client_id: str, persistent: bool = False, will: Will | None = None
) -> paho.Client:
    """A paho client for `cfg`, not yet connected; raise BrokerSettingsError on unusable settings.

    `persistent` keeps the session across reconnects on MQTT 3.1.1 (MQTT 5 sets the session
    expiry in its CONNECT properties instead, which the caller passes to `connect_async`).
    """
    if cfg.protocol == "5":
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    else:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv311,
            clean_session=not persistent,
        )
    if cfg.username:
        client.username_pw_set(cfg.username, _password(cfg))
    if cfg.tls is not None:
        client.tls_set_context(tls_context(cfg.tls))
    if will is not None:
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
    spread = 1.0 + random.random() * RECONNECT_JITTER
    client.reconnect_delay_set(  # paho's hints say int; it takes float seconds
        cfg.reconnect_min_s * spread,  # type: ignore[arg-type]
        max(cfg.reconnect_max_s, cfg.reconnect_min_s * spread),  # type: ignore[arg-type]
    )
    client.on_socket_open = _no_delay
    return client


def tls_context(tls: TlsConfig) -> ssl.SSLContext:
    """A client TLS context: the broker's CA, our certificate for mutual TLS, host-name checks."""
    try:
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=tls.ca_file)
        if tls.cert_file:
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise BrokerSettingsError(f"TLS settings unusable: {exc}") from exc
    ctx.check_hostname = tls.check_hostname
    return ctx


def _password(cfg: BrokerConfig) -> str | None:
    try:
        return cfg.resolved_password()
    except OSError as exc:
        raise BrokerSettingsError(
            f"cannot read the MQTT password file {cfg.password_file}: {exc}"
        ) from exc


def _no_delay(client: paho.Client, userdata: object, sock: SocketLike) -> None:
    """Send small packets (PUBACKs, short results) at once instead of waiting to coalesce them."""
    if not isinstance(sock, socket.socket):  # paho's websocket wrapper: keep the default
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # not a TCP socket (a Unix socket or proxy): keep the default
        pass
