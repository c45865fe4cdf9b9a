"""Helpers for the MQTT tests: an event log to await, a durable subscriber, a node in one object."""

from __future__ import annotations

import asyncio
import os
import queue
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import sqlite_utils

from edge.contract import Event
from edge.contract.broker import BrokerConfig
from edge.events import Events
from edge.journal.outbox import Outbox, OutboxMessage
from edge.mqtt.client import MqttClient
from edge.mqtt.commands import CommandRouter
from edge.mqtt.publisher import Publisher


class EventLog:
    """An Events sink whose events a test can await (on the loop that emits them)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def codes(self) -> list[str]:
        return [e.code for e in self.events]

    def of(self, code: str) -> list[Event]:
        return [e for e in self.events if e.code == code]

    async def wait_for(self, code: str, count: int = 1, timeout_s: float = 10.0) -> list[Event]:
        """Return once `count` events with `code` were emitted; TimeoutError otherwise."""

        async def until() -> None:
            while len(self.of(code)) < count:
                self._changed.clear()
                await self._changed.wait()

        try:
            await asyncio.wait_for(until(), timeout_s)
        except asyncio.TimeoutError:
            raise TimeoutError(
                f"{len(self.of(code))} of {count} {code!r} events; saw {self.codes()[-20:]}"
            ) from None
        return self.of(code)


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class Subscriber:
    """A paho client in its own thread; optionally a durable MQTT 3.1.1 session, TLS, password."""

    def __init__(
        self,
        port: int,
        topics: list[str],
        *,
        client_id: str = "",
        durable: bool = False,
        username: str | None = None,
        password: str | None = None,
        ca_file: str | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
    ):
        self.messages: queue.Queue[Received] = queue.Queue()
        self.seen: list[Received] = []
        self.topics = topics
        self._subscribed = queue.Queue()
        if durable:
            self.client = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=mqtt.MQTTv311,
                clean_session=False,
            )
        else:
            self.client = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
            )
        if username:
            self.client.username_pw_set(username, password)
        if ca_file:
            self.client.tls_set(
                ca_certs=ca_file,
                certfile=certfile,
                keyfile=keyfile,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.put(True)
        self.client.on_message = lambda c, u, m: self.messages.put(
            Received(m.topic, bytes(m.payload), bool(m.retain))
        )
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._subscribed.get(timeout=10)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            client.subscribe([(t, 1) for t in self.topics])

    def collect(self, until, timeout_s: float = 20.0) -> list[Received]:
        """Keep receiving until `until(seen)` is true; return everything seen."""
        deadline = time.monotonic() + timeout_s
        while not until(self.seen):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(
                    f"condition not met within {timeout_s} s; {len(self.seen)} messages seen"
                )
            try:
                self.seen.append(self.messages.get(timeout=min(remaining, 0.5)))
            except queue.Empty:
                continue
        return self.seen

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def open_outbox(path: Path) -> Outbox:
    """An outbox in its own SQLite file (WAL, so a node process and the test can share it)."""
    db = sqlite_utils.Database(path)
    db.conn.execute("PRAGMA journal_mode=WAL")
    Outbox.create(db)
    return Outbox(db)


def messages(
    station: str, start: int, stop: int, kind: str = "inspection", qos: int = 1
) -> list[OutboxMessage]:
    """Numbered messages whose payload and id are the number (for order checks)."""
    return [
        OutboxMessage(
            kind,
            f"reman/{station}/{kind}",
            f'{{"id":"m{n:05d}","n":{n}}}'.encode(),
            qos=qos,
            msg_id=f"m{n:05d}",
        )
        for n in range(start, stop)
    ]


def add(outbox: Outbox, msgs: list[OutboxMessage]) -> None:
    with outbox.db.conn:
        outbox.add(msgs)


def numbers(seen: list[Received]) -> list[int]:
    import json

    return [json.loads(m.payload)["n"] for m in seen if m.topic.endswith("/inspection")]


def first_occurrences(values: list[int]) -> list[int]:
    out, seen = [], set()
    for v in values:
        if v not in seen:
            seen.add(v)
            out.append(v)
    return out


def as_invoker() -> str:
    """Broker config line: as root, mosquitto would drop to a user that cannot read tmp_path."""
    return "user root\n" if os.geteuid() == 0 else ""


def fast_config(port: int, **kw) -> BrokerConfig:
    """Broker settings with a short reconnect delay, for outage tests."""
    return BrokerConfig(port=port, reconnect_min_s=0.1, reconnect_max_s=0.5, keepalive_s=5, **kw)


@dataclass
class Node:
    """The MQTT side of a node: client, publisher, command router, event log."""

    client: MqttClient
    publisher: Publisher
    outbox: Outbox
    log: EventLog
    events: Events
    router: CommandRouter | None = None
    extra: dict = field(default_factory=dict)

    async def stop(self) -> None:
        await self.publisher.stop()
        await self.client.stop()
