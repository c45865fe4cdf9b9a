"""MQTT ingest: the stations' messages, validated against the contract, into the store in batches.

    parse_message(topic, payload)  -> Parsed, or ContractViolation saying why it was refused
    BatchWriter(store, ...)        a thread that writes what it is given in batches
    RefusalThrottle(window_s)      the `message_refused` events for malformed messages, at most
                                   one per station and kind per window
    MqttIngest(broker, writer, frames=None, clocks=None)
                                   a paho-mqtt 2.x client subscribed to every station's output;
                                   also the publisher of commands (`override/set`, `label/set`,
                                   `frame/get`)

A malformed message is counted and logged, never fatal, and becomes a `message_refused` event of
the station whose topic it came on (throttled, so a station sending garbage cannot flood the
events table; the next stored event says how many were refused in between).

Snapshots (raw JPEG bytes) are written as files and tied to the station's latest inspection seen
before them (the node publishes the inspection, then its snapshot); the oldest files beyond the
retention limit are deleted.
A `frame` (the answer to `frame/get`) goes to the FrameCache, not the store (see gateway.frames).
`models` (the node's registry) and `shadow` (the shadow model's reports) are kept by
gateway.models_store, in the same transaction as the rest of their batch.
"""

from __future__ import annotations

import gc
import logging
import re
import secrets
import sys
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import BaseModel

from edge.contract import (
    AVAILABLE_OFFLINE,
    AVAILABLE_ONLINE,
    ContractViolation,
    Event,
    InspectionRecord,
    ModelsState,
    OverrideCommand,
    RecordsRequest,
    Result,
    ShadowReport,
    Stats,
    Topics,
    parse_json,
    parse_topic,
    station_wildcards,
)
from edge.contract.broker import BrokerConfig, build_client
from edge.contract.timefmt import normalize_ts, utc_now
from gateway.clock import ClockWatch
from gateway.errors import GatewayError, PublishError, StoreError
from gateway.frames import Frame, parse_frame
from gateway.store import Batch, Store

log = logging.getLogger("reman.gateway.ingest")

JPEG_MAGIC = b"\xff\xd8\xff"
MAX_JSON_BYTES = 1_000_000
AVAILABILITY = (AVAILABLE_ONLINE, AVAILABLE_OFFLINE)
REFUSED_MESSAGE_CHARS = 300
SESSION_EXPIRY_S = 7 * 24 * 3600  # a plant gateway's session outlasts a week away, as a node's


@dataclass(frozen=True)
class Parsed:
    """One valid message: its kind, station, model (or bytes/str) and when it arrived."""

    kind: str
    station: str
    value: Any
    received_ts: str


def parse_message(topic: str, payload: bytes, prefix: str = "reman") -> Parsed | None:
    """Validate one message; None for topics the gateway does not keep (commands, strangers).

    Raises ContractViolation for a message on a contract topic that breaks the contract.
    """
    where = parse_topic(topic, prefix)
    if where is None or where[1] in Topics.COMMANDS:
        return None
    station, kind = where
    if not payload and kind in ("available", "result", "models"):
        return None  # an empty retained message clears the topic; nothing to keep
    parser = _PARSERS.get(kind)
    if parser is None:
        return None  # subscribed to, but not kept by this gateway (yet)
    value = parser(payload)
    station_in_payload = getattr(value, "station", station)
    if station_in_payload != station:
        raise ContractViolation(
            f"payload names station {station_in_payload!r} on {station!r}'s topic"
        )
    _check_times(value)
    return Parsed(kind, station, value, utc_now())


def _check_times(value: Any) -> None:
    """The store sorts and filters by time: every time must be RFC 3339."""
    override = getattr(value, "override", None)
    for name, text in (
        ("ts", getattr(value, "ts", None)),
        ("override.ts", getattr(override, "ts", None)),
    ):
        if text is None:
            continue
        try:
            normalize_ts(text)
        except ValueError:
            raise ContractViolation(f"{name}: not an RFC 3339 time: {text[:40]!r}") from None


def _json_model(model: type[BaseModel]) -> Callable[[bytes], Any]:
    def parse(payload: bytes) -> Any:
        return parse_json(model, payload, max_bytes=MAX_JSON_BYTES)

    return parse


def _available(payload: bytes) -> str:
    text = payload.decode("ascii", errors="replace").strip()
    if text not in AVAILABILITY:
        raise ContractViolation(f"availability must be online or offline, got {text[:20]!r}")
    return text


def _snapshot(payload: bytes) -> bytes:
    if not payload.startswith(JPEG_MAGIC):
        raise ContractViolation("snapshot is not a JPEG")
    return payload


_PARSERS: dict[str, Callable[[bytes], Any]] = {
    "inspection": _json_model(InspectionRecord),
    "result": _json_model(Result),
    "stats": _json_model(Stats),
    "event": _json_model(Event),
    "available": _available,
    "snapshot": _snapshot,
    "frame": parse_frame,
    "models": _json_model(ModelsState),
    "shadow": _json_model(ShadowReport),
}


class IngestCounters:
    """Thread-safe counts for /metrics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.received: Counter[str] = Counter()
        self.malformed: Counter[str] = Counter()
        self.written = 0
        self.batches = 0
        self.write_errors = 0

    def count(self, name: str, kind: str, n: int = 1) -> None:
        """Add `n` to counter `name` (received or malformed) for `kind`."""
        with self._lock:
            getattr(self, name)[kind] += n

    def wrote(self, items: int) -> None:
        """One batch of `items` written."""
        with self._lock:
            self.written += items
            self.batches += 1

    def failed(self) -> None:
        """One batch failed to write."""
        with self._lock:
            self.write_errors += 1

    def snapshot(self) -> dict[str, Any]:
        """A consistent copy of every figure."""
        with self._lock:
            return {
                "received": dict(self.received),
                "malformed": dict(self.malformed),
                "written": self.written,
                "batches": self.batches,
                "write_errors": self.write_errors,
            }


WrittenHandler = Callable[[Batch], None]

YOUNG_GC_THRESHOLD = 50_000
"""Allocations between two collections of the youngest generation while a writer runs."""
SWITCH_INTERVAL_S = 0.001
"""sys.setswitchinterval while a writer runs (Python's default: 0.005); see tune_switching."""


def tune_collector(young: int = YOUNG_GC_THRESHOLD) -> None:
    """Run Python's cyclic collector less often (at least every `young` allocations; never
    more often than it already does).

    Under load thousands of parsed records wait in the writer's queue, each a tree of pydantic
    objects, and with Python's default (a young collection every 700 allocations) the collector
    walks them again and again: a quarter of the ingest's time in bench/gateway.py. Nothing the
    gateway keeps forms reference cycles it relies on the collector for; the cycles that do
    arise (tracebacks, frames) are collected a little later, a few MB at most.
    """
    first, second, third = gc.get_threshold()
    if first and first < young:
        gc.set_threshold(young, second, third)


def tune_switching(interval_s: float = SWITCH_INTERVAL_S) -> None:
    """Let a thread that wants the GIL have it after `interval_s` (never later than already).

    The writer spends its time in SQLite without the GIL and needs it back for a moment after
    each statement, while the MQTT thread parses records (pydantic, holding the GIL); with
    Python's default of 5 ms the writer waited up to that long at every batch. bench/gateway.py:
    ingest 13,900 records/s at 5 ms, 15,100/s at 1 ms.
    """
    if sys.getswitchinterval() > interval_s:
        sys.setswitchinterval(interval_s)


class BatchWriter:
    """Writes parsed messages to the store: up to `batch_size` per transaction, a partial batch
    after `batch_interval_s`. `on_written(batch)` and every `add_listener` listener run after
    each commit (for live pages), in the writer thread."""

    def __init__(
        self,
        store: Store,
        snapshots_dir: str | Path,
        *,
        batch_size: int = 1000,
        batch_interval_s: float = 0.2,
        snapshot_max_files: int = 5000,
        counters: IngestCounters | None = None,
        on_written: WrittenHandler | None = None,
    ):
        self.store = store
        self.snapshots_dir = Path(snapshots_dir)
        self.batch_size = batch_size
        self.batch_interval_s = batch_interval_s
        self.snapshot_max_files = snapshot_max_files
        self.counters = counters or IngestCounters()
        self.listeners: list[WrittenHandler] = [on_written] if on_written else []
        # What the writer has still to take, and the lock it waits on: it is woken for the first
        # message of a batch, a full batch and the stop, not for every message (a wake-up per
        # message had the writer and the MQTT thread trade the GIL at every record).
        self._items: deque[Parsed | None] = deque()
        self._ready = threading.Condition()
        self._stop_queued = False
        self._latest_inspection: dict[str, tuple[str, str]] = {}
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()
        self._pending = 0

    def start(self) -> None:
        """Start the writer thread (and tune the process's collector and thread switching for
        ingest: tune_collector, tune_switching)."""
        tune_collector()
        tune_switching()
        self.snapshots_dir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="gateway-writer", daemon=True)
        self._thread.start()

    @property
    def running(self) -> bool:
        """The writer thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def submit(self, item: Parsed) -> None:
        """Queue one message for writing (any thread)."""
        with self._idle:
            self._pending += 1
        self._put(item)

    def _put(self, item: Parsed | None) -> None:
        with self._ready:
            self._items.append(item)
            self._stop_queued = self._stop_queued or item is None
            if len(self._items) in (1, self.batch_size) or item is None:
                self._ready.notify()

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until everything submitted so far is written; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, then end the thread."""
        if self._thread is None:
            return
        self._put(None)
        self._thread.join(timeout_s)
        self._thread = None

    def _run(self) -> None:
        done = False
        while not done:
            items, done = self._collect()
            if items:
                self._write(items)

    def _collect(self) -> tuple[list[Parsed], bool]:
        with self._ready:
            while not self._items:
                self._ready.wait()
            deadline = time.monotonic() + self.batch_interval_s
            while len(self._items) < self.batch_size and not self._stop_queued:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._ready.wait(remaining)
            items: list[Parsed] = []
            while self._items and len(items) < self.batch_size:
                item = self._items.popleft()
                if item is None:
                    self._stop_queued = False  # for a writer started again
                    return items, True
                items.append(item)
            return items, False

    def _write(self, items: list[Parsed]) -> None:
        batch = self._batch(items)
        try:
            self.store.write(batch)
            self.counters.wrote(len(items))
            if batch.snapshots:
                self._enforce_retention()
        except (StoreError, OSError, ValueError):
            # The root of the writer thread: log, count, keep going with the next batch.
            log.exception("could not write %d message(s) to the gateway store", len(items))
            self.counters.failed()
        finally:
            with self._idle:
                self._pending -= len(items)
                self._idle.notify_all()
        self._notify(batch)

    def submit_event(self, event: Event) -> None:
        """Queue one of the gateway's own events about a station (any thread)."""
        self.submit(Parsed("event", event.station, event, event.ts))

    def add_listener(self, listener: WrittenHandler) -> None:
        """Call `listener(batch)` after every batch is committed (in the writer thread)."""
        self.listeners.append(listener)

    def _notify(self, batch: Batch) -> None:
        for listener in self.listeners:
            try:
                listener(batch)
            except Exception:  # noqa: BLE001 - a listener must not stop the writer
                log.exception("listener of written batches failed")

    def _batch(self, items: list[Parsed]) -> Batch:
        batch = Batch()
        for item in items:
            self._add(batch, item)
        return batch

    def _add(self, batch: Batch, item: Parsed) -> None:
        if item.kind == "inspection":
            batch.inspections.append(item.value)
            self._note_latest(item.value)
        elif item.kind == "result":
            batch.results.append((item.station, item.value, item.received_ts))
        elif item.kind == "stats":
            batch.stats.append(item.value)
        elif item.kind == "event":
            batch.events.append(item.value)
        elif item.kind == "available":
            batch.available.append((item.station, item.value, item.received_ts))
        elif item.kind == "snapshot":
            batch.snapshots.append(self._save_snapshot(item))
        elif item.kind == "models":
            batch.models.append((item.value, item.received_ts))
        elif item.kind == "shadow":
            batch.shadows.append(item.value)

    def _note_latest(self, record: InspectionRecord) -> None:
        known = self._latest_inspection.get(record.station)
        if known is None or record.ts >= known[1]:
            self._latest_inspection[record.station] = (record.id, record.ts)

    def _save_snapshot(self, item: Parsed) -> tuple[str, str, str, str | None]:
        latest = self._latest_inspection.get(item.station)
        stamp = item.received_ts.replace(":", "").replace("-", "").replace(".", "")
        name = f"{item.station}-{stamp}-{secrets.token_hex(3)}.jpg"
        (self.snapshots_dir / name).write_bytes(item.value)
        return name, item.station, item.received_ts, latest[0] if latest else None

    def _enforce_retention(self) -> None:
        old = self.store.snapshots_beyond(self.snapshot_max_files)
        for name in old:
            (self.snapshots_dir / name).unlink(missing_ok=True)
        if old:
            self.store.forget_snapshots(old)


class RefusalThrottle:
    """Turns refused messages into `message_refused` events: the first of a (station, kind) is
    an event, later ones within `window_s` of that event are only counted, and the first after
    the window is an event again, its detail `refused_since_last` saying how many were counted
    in between."""

    # Past this many (station, kind) entries, those whose window is over and that counted
    # nothing are dropped: they hold nothing the next refusal would need.
    MAX_ENTRIES = 256

    def __init__(self, window_s: float = 60.0):
        self.window_s = window_s
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], tuple[float, int]] = {}  # -> (stored at, counted)

    def refuse(self, station: str, kind: str, topic: str, reason: str) -> Event | None:
        """The event to store for this refusal, or None while its (station, kind) is throttled."""
        now = time.monotonic()
        with self._lock:
            stored_at, counted = self._last.get((station, kind), (None, 0))
            if stored_at is not None and now - stored_at < self.window_s:
                self._last[station, kind] = (stored_at, counted + 1)
                return None
            self._last[station, kind] = (now, 0)
            self._prune(now)
        return refused_event(station, kind, topic, reason, counted)

    def _prune(self, now: float) -> None:
        if len(self._last) <= self.MAX_ENTRIES:
            return
        for key, (stored_at, counted) in list(self._last.items()):
            if counted == 0 and now - stored_at >= self.window_s:
                del self._last[key]


def refused_event(station: str, kind: str, topic: str, reason: str, since_last: int) -> Event:
    """The `message_refused` event of `station` for one refused `kind` message."""
    message = re.sub(r"\s+", " ", f"{kind} refused: {reason}").strip()
    if len(message) > REFUSED_MESSAGE_CHARS:
        message = message[: REFUSED_MESSAGE_CHARS - 1] + "…"
    return Event(
        id=uuid.uuid4().hex,
        ts=utc_now(),
        station=station,
        level="warning",
        code="message_refused",
        message=message,
        detail={"kind": kind, "topic": topic, "refused_since_last": since_last},
    )


class FrameSink(Protocol):
    """Where the ingest hands the nodes' `frame` answers (gateway.frames.FrameCache)."""

    def put(self, frame: Frame) -> None: ...

    def refused(self, station: str, reason: str) -> None: ...


class MqttIngest:
    """The gateway's MQTT client: subscribes to every station's output, publishes commands.
    `frame` answers go to `frames` (dropped without one); refused messages become events as
    `refusals` allows."""

    def __init__(
        self,
        broker: BrokerConfig,
        writer: BatchWriter,
        counters: IngestCounters | None = None,
        frames: FrameSink | None = None,
        refusals: RefusalThrottle | None = None,
        clocks: ClockWatch | None = None,
    ):
        self.broker = broker
        self.writer = writer
        self.counters = counters or writer.counters
        self.frames = frames
        self.refusals = refusals or RefusalThrottle()
        self.clocks = clocks
        self.prefix = broker.topic_prefix
        self.connected = threading.Event()
        self._subscribe_mid: int | None = None
        self._client = self._build_client()

    @property
    def persistent(self) -> bool:
        """With a configured client id the broker keeps this gateway's session (subscriptions
        and the QoS 1 messages that arrive while it is away) for SESSION_EXPIRY_S; without one
        each start is a fresh session under a random id (a station's own gateway, which reads
        the retained state and misses nothing the node does not republish)."""
        return self.broker.client_id is not None

    def _build_client(self) -> paho.Client:
        client_id = self.broker.client_id or f"reman-gateway-{secrets.token_hex(4)}"
        client = build_client(self.broker, client_id=client_id, persistent=self.persistent)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        """Connect in the background; paho keeps retrying until the broker answers."""
        try:
            self._client.connect_async(self.broker.host, self.broker.port, **self._connect_args())
        except (OSError, ValueError) as exc:
            raise GatewayError(
                f"cannot connect to {self.broker.host}:{self.broker.port}: {exc}"
            ) from exc
        self._client.loop_start()

    def _connect_args(self) -> dict[str, Any]:
        args: dict[str, Any] = {"keepalive": self.broker.keepalive_s}
        if self.persistent and self.broker.protocol == "5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            args.update(clean_start=False, properties=props)
        return args

    def wait_connected(self, timeout_s: float = 10.0) -> bool:
        """True once subscribed to the stations' topics."""
        return self.connected.wait(timeout_s)

    def stop(self) -> None:
        """Disconnect and stop paho's thread."""
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("broker refused the connection: %s", reason_code)
            return
        result, mid = client.subscribe([(t, 1) for t in station_wildcards(self.prefix)])
        if result == MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._subscribe_mid = mid
        else:
            log.warning("cannot subscribe to the stations' topics: %s", result)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        # Connected means the broker has acknowledged the subscription: a record a station
        # publishes after that reaches the gateway.
        if mid != self._subscribe_mid:
            return
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            log.warning("broker refused the subscription to the stations' topics: %s", refused)
            return
        self.connected.set()
        log.info("subscribed to %s", ", ".join(station_wildcards(self.prefix)))

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected.clear()

    def _on_message(self, client, userdata, msg) -> None:
        self.handle(msg.topic, bytes(msg.payload))

    def handle(self, topic: str, payload: bytes) -> None:
        """Validate one message and queue it for writing; count, log and (throttled) queue a
        `message_refused` event when malformed."""
        try:
            parsed = parse_message(topic, payload, self.prefix)
        except ContractViolation as exc:
            self._refused(topic, exc)
            return
        if parsed is None:
            return
        self.counters.count("received", parsed.kind)
        if parsed.kind == "frame":
            if self.frames is not None:
                self.frames.put(parsed.value)
            return
        self.writer.submit(parsed)
        if parsed.kind == "stats" and self.clocks is not None:
            event = self.clocks.observe(parsed.value, parsed.received_ts)
            if event is not None:
                self.writer.submit_event(event)

    def _refused(self, topic: str, exc: ContractViolation) -> None:
        where = parse_topic(topic, self.prefix)
        self.counters.count("malformed", where[1] if where else "unknown")
        log.warning("malformed message on %s: %s", topic, exc)
        if where is None:
            return  # no station of the contract to tell it to
        station, kind = where
        if kind == "frame" and self.frames is not None:
            self.frames.refused(station, str(exc))
        event = self.refusals.refuse(station, kind, topic, str(exc))
        if event is not None:
            # Through the writer like every other store write, not from paho's thread.
            self.writer.submit_event(event)

    def publish_override(
        self, station: str, command: OverrideCommand, timeout_s: float = 5.0
    ) -> None:
        """Publish `override/set` to `station` (QoS 1) and wait for the broker's PUBACK."""
        self.publish_command(station, "override/set", command, timeout_s)

    def publish_command(
        self, station: str, kind: str, command: BaseModel, timeout_s: float = 5.0
    ) -> None:
        """Publish command `kind` (a Topics.COMMANDS topic) to `station`, QoS 1, not retained,
        and wait for the broker's PUBACK; PublishError when it is not acknowledged."""
        topic = Topics(station, self.prefix).topic(kind)
        what = f"{kind} for {getattr(command, 'id', station)}"
        info = self._client.publish(topic, command.model_dump_json(exclude_none=True), qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise PublishError(f"broker not connected; {what} not sent")
        try:
            info.wait_for_publish(timeout_s)
        except (RuntimeError, ValueError) as exc:
            raise PublishError(f"{what} not sent: {exc}") from exc
        if not info.is_published():
            raise PublishError(f"broker did not acknowledge {what} within {timeout_s} s")

    def ask_records(self, station: str, from_seq: int, to_seq: int) -> None:
        """Publish `records/get` to `station` for seqs `from_seq`..`to_seq` (gateway.gaps)."""
        user = (self.broker.client_id or "gateway")[:64]
        command = RecordsRequest(
            from_seq=from_seq, to_seq=to_seq, user=user, command_id=uuid.uuid4().hex
        )
        self.publish_command(station, "records/get", command)
