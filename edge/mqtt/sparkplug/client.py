"""The Sparkplug connection: a second MQTT client to the same broker, with NDEATH as its Will.

Why a second connection: MQTT allows one Last Will per connection, and the JSON contract's
connection already has one (`offline` on `available`, retained). Sparkplug needs NDEATH as the
Will of the session its NBIRTH opened, and a clean session (Sparkplug 3.0 requires Clean Start
for edge nodes), while the JSON connection keeps a persistent session for its commands.

Session, in order:
  CONNECT with Will NDEATH {bdSeq: n} (QoS 1, not retained), n from BdSeqStore
  SUBSCRIBE NCMD/<node>, DCMD/<node>/+, and spBv1.0/STATE/<host> when a primary host is set
  (primary host set: wait until its STATE says online; hold while it says offline)
  NBIRTH {bdSeq: n, Node Control/Rebirth: false} seq 0, DBIRTH {every device metric} seq 1
  `ready`: the publisher hands over DDATA rows, each encoded by `render` with the next seq
  (0..255, wrapping), `is_historical` on every metric of a row written before these births
  link lost: the next connect takes bdSeq n+1 (the Will is set again before paho reconnects)
  clean stop: NDEATH {bdSeq: n} published, then DISCONNECT

An NCMD writing `Node Control/Rebirth` = true republishes NBIRTH and DBIRTH (same bdSeq, seq
from 0). Any other command, a retained one, an unreadable one or a DCMD for another device is
refused with a `sparkplug_command_refused` warning; the node carries on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

from edge.contract.broker import BrokerConfig, Will, build_client
from edge.contract.errors import BrokerSettingsError, ContractViolation
from edge.contract.sparkplug import (
    BDSEQ,
    REBIRTH,
    DataType,
    HostState,
    MetricValue,
    SparkplugTopics,
    decode,
    encode,
    now_ms,
    value_of,
)
from edge.errors import BrokerError
from edge.events import Events
from edge.journal.outbox import OutboxRow
from edge.mqtt.sparkplug.bdseq import BdSeqStore
from edge.mqtt.sparkplug.metrics import Catalogue

log = logging.getLogger("reman.sparkplug")

SEQ_MODULUS = 256


class SparkplugClient:
    """One edge node's Sparkplug session; see the module docstring. A publisher `Link`."""

    def __init__(
        self,
        topics: SparkplugTopics,
        broker: BrokerConfig,
        events: Events,
        catalogue: Catalogue,
        bdseq: BdSeqStore,
        *,
        client_id: str,
        primary_host_id: str | None = None,
        max_inflight: int = 100,
    ):
        self.topics, self.broker, self.events = topics, broker, events
        self.catalogue, self.bdseq_store = catalogue, bdseq
        self.client_id = client_id
        self.primary_host_id = primary_host_id
        self.state_topic = SparkplugTopics.state(primary_host_id) if primary_host_id else None
        self.max_inflight = max_inflight
        self.receive_maximum: int | None = None
        self.on_ready: list[Callable[[], None]] = []
        self.on_published: Callable[[int, bool, str], None] | None = None
        self.ready = False  # births out, host online: DDATA may follow
        self.connected = False
        self.host_online = primary_host_id is None
        self.seq = 0  # the next payload seq
        self.births = 0  # NBIRTHs published since start, for tests and stats
        self.bdseq = bdseq.next()  # the value in the Will of the next (or current) connect
        self._session_bdseq = self.bdseq  # the value of the connected session
        self._state_ts = -1
        self._births_at = math.inf  # time.time() of the latest births
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready_event: asyncio.Event | None = None
        self._client = self._build_client()

    # ------------------------------------------------------------ set-up

    def _death(self, bdseq: int) -> bytes:
        return encode([MetricValue(BDSEQ, DataType.INT64, bdseq)], seq=None)

    def _will(self) -> Will:
        return Will(self.topics.ndeath, self._death(self.bdseq), qos=1, retain=False)

    def _build_client(self) -> paho.Client:
        try:
            client = build_client(self.broker, client_id=self.client_id, will=self._will())
        except BrokerSettingsError as exc:
            raise BrokerError(str(exc)) from exc
        client.max_inflight_messages_set(self.max_inflight + 2)
        client.max_queued_messages_set(0)
        client.on_connect = self._paho_connect
        client.on_disconnect = self._paho_disconnect
        client.on_publish = self._paho_publish
        client.on_message = self._paho_message
        return client

    async def start(self) -> None:
        """Begin connecting; paho retries until the broker accepts."""
        self._loop = asyncio.get_running_loop()
        self._ready_event = asyncio.Event()
        self._stopping = False
        try:
            self._client.connect_async(
                self.broker.host, self.broker.port, keepalive=self.broker.keepalive_s
            )
        except (OSError, ValueError) as exc:
            raise BrokerError(f"sparkplug: cannot connect to {self.broker.host}: {exc}") from exc
        self._client.loop_start()

    async def wait_ready(self, timeout_s: float | None = None) -> None:
        """Return once the births are out; BrokerError after `timeout_s`."""
        if self._ready_event is None:
            raise BrokerError("sparkplug: the client was not started")
        try:
            await asyncio.wait_for(self._ready_event.wait(), timeout_s)
        except asyncio.TimeoutError as exc:
            raise BrokerError(f"sparkplug: no births within {timeout_s} s") from exc

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Publish NDEATH when connected, disconnect, stop paho's thread."""
        self._stopping = True
        self.ready = False
        if self.connected:
            info = self._client.publish(self.topics.ndeath, self._death(self._session_bdseq), qos=1)
            await asyncio.to_thread(_wait_published, info, timeout_s)
        self._client.disconnect()
        await asyncio.to_thread(_join, self._client, timeout_s)
        self.connected = False

    # ------------------------------------------------------------ publishing

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> int:
        """Hand one message to paho; its mid. BrokerError when paho refuses it."""
        try:
            info = self._client.publish(topic, payload, qos=qos, retain=retain)
        except (ValueError, TypeError) as exc:
            raise BrokerError(f"sparkplug: cannot publish on {topic}: {exc}") from exc
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise BrokerError(f"sparkplug: cannot publish on {topic}: {paho.error_string(info.rc)}")
        return info.mid

    def render(self, row: OutboxRow) -> OutboxRow:
        """A `sparkplug` outbox row as the DDATA it becomes now (seq, is_historical)."""
        try:
            stored = json.loads(row.payload)
            values, timestamp_ms = dict(stored["values"]), int(stored["ts"])
        except (ValueError, KeyError, TypeError) as exc:
            raise BrokerError(f"sparkplug: outbox row {row.id} is unreadable: {exc}") from exc
        added = self.catalogue.add_missing(values)
        if added:  # every DDATA metric must be in a DBIRTH first
            log.info("sparkplug: new metrics %s; rebirth", ", ".join(added))
            self._birth()
        historical = row.created_at < self._births_at
        metrics = self.catalogue.data(values, timestamp_ms, historical)
        payload = encode(metrics, seq=self._next_seq())
        return dataclasses.replace(row, payload=payload, qos=0, retain=False)

    def _next_seq(self) -> int:
        seq, self.seq = self.seq, (self.seq + 1) % SEQ_MODULUS
        return seq

    def _birth(self) -> None:
        """NBIRTH then DBIRTH of the current session, seq from 0."""
        self.seq = 0
        now = now_ms()
        node = [
            MetricValue(BDSEQ, DataType.INT64, self._session_bdseq, timestamp_ms=now),
            MetricValue(REBIRTH, DataType.BOOLEAN, False, timestamp_ms=now),
        ]
        self.publish(self.topics.nbirth, encode(node, seq=self._next_seq(), timestamp_ms=now))
        device = self.catalogue.birth(now)
        self.publish(self.topics.dbirth, encode(device, seq=self._next_seq(), timestamp_ms=now))
        self._births_at = time.time()
        self.births += 1

    # ------------------------------------------------------------ paho thread -> loop

    def _to_loop(self, func: Callable, *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(func, *args)
        except RuntimeError:  # the loop closed between the check and the call
            pass

    def _paho_connect(self, client, userdata, flags, reason_code: ReasonCode, properties) -> None:
        if reason_code.is_failure:
            self._to_loop(self._refused, str(reason_code))
            return
        topics = [(self.topics.ncmd, 0), (self.topics.dcmd_any, 0)]
        if self.state_topic:
            topics.append((self.state_topic, 1))
        client.subscribe(topics)
        self._to_loop(self._connected, self.bdseq)

    def _paho_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        # Before paho reconnects (on this thread): the next session's Will carries the next bdSeq.
        if not self._stopping:
            try:
                self.bdseq = self.bdseq_store.next()
            except BrokerError as exc:  # keep counting in memory; the file catches up later
                log.warning("%s", exc)
                self.bdseq = (self.bdseq + 1) % 256
            will = self._will()
            client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        self._to_loop(self._lost, str(reason_code))

    def _paho_publish(self, client, userdata, mid: int, reason_code, properties) -> None:
        self._to_loop(self._published, mid, not reason_code.is_failure, str(reason_code))

    def _paho_message(self, client, userdata, message: paho.MQTTMessage) -> None:
        self._to_loop(self._message, message.topic, bytes(message.payload), bool(message.retain))

    # ------------------------------------------------------------ on the loop

    def _refused(self, reason: str) -> None:
        self.events.error(
            "sparkplug_refused", f"the broker refused the Sparkplug connection: {reason}"
        )

    def _connected(self, bdseq: int) -> None:
        self.connected = True
        self._session_bdseq = bdseq
        self.events.info(
            "sparkplug_connected",
            f"Sparkplug edge node {self.topics.node} connected (bdSeq {bdseq})",
            bdseq=bdseq,
        )
        if self.host_online:
            self._go_live()

    def _go_live(self) -> None:
        self._birth()
        self.ready = True
        if self._ready_event is not None:
            self._ready_event.set()
        for listener in self.on_ready:
            listener()

    def _hold(self) -> None:
        self.ready = False
        if self._ready_event is not None:
            self._ready_event.clear()

    def _lost(self, reason: str) -> None:
        was = self.connected
        self.connected = False
        self._hold()
        if self.primary_host_id is not None:
            self.host_online = False  # its retained STATE comes again with the subscription
        if was and not self._stopping:
            self.events.warning(
                "sparkplug_disconnected", f"lost the Sparkplug connection: {reason}", reason=reason
            )

    def _published(self, mid: int, ok: bool, reason: str) -> None:
        if self.on_published is not None:
            self.on_published(mid, ok, reason)

    def _message(self, topic: str, payload: bytes, retain: bool) -> None:
        if topic == self.state_topic:
            self._on_state(payload)
        elif topic == self.topics.ncmd:
            self._on_ncmd(topic, payload, retain)
        elif topic.startswith(self.topics.dcmd_prefix):
            self._on_dcmd(topic, payload)

    def _on_state(self, payload: bytes) -> None:
        try:
            state = HostState.parse(payload)
        except ContractViolation as exc:
            self.events.warning(
                "sparkplug_state_invalid", f"ignored the primary host's STATE: {exc}"
            )
            return
        if state.timestamp_ms < self._state_ts:
            return  # older than one already seen (Sparkplug 3.0: the newest wins)
        self._state_ts = state.timestamp_ms
        if state.online and not self.host_online:
            self.host_online = True
            self.events.info(
                "sparkplug_host_online", f"primary host {self.primary_host_id} is online"
            )
            if self.connected:
                self._go_live()
        elif not state.online and self.host_online:
            self.host_online = False
            self._hold()
            self.events.info(
                "sparkplug_host_offline",
                f"primary host {self.primary_host_id} is offline; Sparkplug data waits",
            )

    def _on_ncmd(self, topic: str, payload: bytes, retain: bool) -> None:
        if retain:
            self._refuse(topic, "retained", "a retained NCMD is not a command made now")
            return
        try:
            metrics = decode(payload).metrics
        except ContractViolation as exc:
            self._refuse(topic, "malformed", str(exc))
            return
        if not metrics:
            self._refuse(topic, "empty", "the NCMD holds no metric")
            return
        for metric in metrics:
            if metric.name != REBIRTH or metric.datatype != DataType.BOOLEAN:
                self._refuse(topic, "unknown_metric", f"cannot write {metric.name or '(alias)'!r}")
                return
        if any(value_of(metric) is True for metric in metrics):
            self._rebirth()

    def _rebirth(self) -> None:
        if not self.ready:
            log.info("sparkplug: rebirth asked while not live; the births follow when it is")
            return
        self.events.info("sparkplug_rebirth", "Node Control/Rebirth: NBIRTH and DBIRTH again")
        self._birth()

    def _on_dcmd(self, topic: str, payload: bytes) -> None:
        device = topic[len(self.topics.dcmd_prefix) :]
        if device != self.topics.device:
            self._refuse(topic, "unknown_device", f"this edge node has no device {device!r}")
        else:
            self._refuse(topic, "read_only", "the station's metrics are read-only")

    def _refuse(self, topic: str, reason: str, text: str) -> None:
        self.events.warning(
            "sparkplug_command_refused",
            f"refused a Sparkplug command on {topic}: {text}",
            topic=topic,
            reason=reason,
        )


def _wait_published(info: paho.MQTTMessageInfo, timeout_s: float) -> None:
    try:
        info.wait_for_publish(timeout_s)
    except (RuntimeError, ValueError):  # the link went away meanwhile; the Will says NDEATH
        pass


def _join(client: paho.Client, timeout_s: float) -> None:
    done = threading.Event()

    def stop() -> None:
        client.loop_stop()
        done.set()

    threading.Thread(target=stop, name="reman-sparkplug-stop", daemon=True).start()
    done.wait(timeout_s)
