"""Store-and-forward: drain the outbox to the broker, in order, marked delivered only on PUBACK.

One asyncio task reads `Outbox.pending()` in insertion order and hands each message to the MQTT
client, keeping at most `window` messages (and MAX_HANDED_BYTES of payload, for a backlog of
snapshots) handed over and not yet acknowledged. The link keeps what the broker allows on the
wire (the MqttClient: its Receive Maximum less one) and queues the rest in order, so the next
message leaves as soon as a PUBACK frees a place, without waiting for this task. A message is marked delivered when the broker acknowledges it (QoS 1 PUBACK; for QoS 0
when paho wrote it to the socket), never before. Under load the task wakes once half the window
was acknowledged and hands over as many again, and marks what was acknowledged in one
transaction per `MARK_BATCH` messages (or when nothing is left in flight, or once a second); with
little in flight it wakes at each acknowledgement, so a lone result is marked at once. A message
acknowledged and not yet marked when the node dies is sent again, as any unmarked one is.

Outages: while the link is down nothing new is handed over; paho keeps the messages already in
flight and resends them (DUP) after the reconnect, with the same mid, so their PUBACKs still find
their rows. A node restart loses paho's memory but not the outbox: every row not yet marked
delivered is sent again. Either way a consumer may see a message twice, always with the same
`id`, and never misses one.

Durability: before a batch leaves, the `sync` hook runs (the node passes `Journal.sync`, one fsync
of the WAL), so whatever reaches the PLC or the gateway survives a power cut on the node.

Wake-up: the node calls `notify()` after each journal commit; the task otherwise sleeps (and
checks the outbox bounds once a second).

Two publishers may drain one outbox, each its own kinds through its own link: the JSON contract
through the MqttClient (`exclude=("sparkplug",)`), Sparkplug DDATA through the Sparkplug client
(`kinds=("sparkplug",)`, `render=` encoding each row when it leaves, `bounds=False` since the
other one enforces them, `rewind_on_ready=True` since QoS 0 messages a link lost are not resent
by paho: whatever was handed over and not confirmed written goes again, in order).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from edge.config.station import RetentionConfig
from edge.errors import BrokerError, RemanError
from edge.events import Events
from edge.journal.outbox import Dropped, Outbox, OutboxRow

log = logging.getLogger("reman.publisher")

BOUNDS_INTERVAL_S = 1.0
MARK_BATCH = 500  # acknowledged messages marked delivered per transaction while the pipe is full
MAX_HANDED_BYTES = 8 * 2**20  # payload bytes handed to the link and not yet acknowledged, at most
DEFAULT_MAX_ROWS = 100_000
DEFAULT_MAX_AGE_S = 72 * 3600.0

DeliveredHandler = Callable[[OutboxRow], None]
Render = Callable[[OutboxRow], OutboxRow]


class Link(Protocol):
    """What a publisher needs of an MQTT connection (MqttClient, SparkplugClient)."""

    ready: bool
    receive_maximum: int | None
    max_inflight: int
    on_ready: list[Callable[[], None]]
    on_published: Callable[[int, bool, str], None] | None

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int: ...


class Publisher:
    """Drains one outbox through one MqttClient; see the module docstring."""

    def __init__(
        self,
        outbox: Outbox,
        client: Link,
        events: Events,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        window: int | None = None,
        on_delivered: DeliveredHandler | None = None,
        sync: Callable[[], None] | None = None,
        kinds: tuple[str, ...] | None = None,
        exclude: tuple[str, ...] = (),
        render: Render | None = None,
        bounds: bool = True,
        rewind_on_ready: bool = False,
    ):
        self.outbox = outbox
        self.kinds, self.exclude = kinds, exclude  # which rows this publisher drains
        self.render = render  # the row as it leaves (e.g. Sparkplug's seq), None: as stored
        self.bounds = bounds
        self.client = client
        self.events = events
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self.window = window or client.max_inflight
        self.on_delivered = on_delivered
        self.sync = sync  # e.g. Journal.sync: make committed rows durable before they leave
        self._sync_failed = False
        self._durable_id = 0  # outbox rows up to this id are known durable
        self.delivered = 0  # messages acknowledged since start
        self._inflight: dict[int, OutboxRow] = {}  # paho mid -> row
        self._inflight_bytes = 0  # their payloads' bytes (snapshots are large: MAX_HANDED_BYTES)
        self._acked: list[OutboxRow] = []
        self._cursor = 0  # highest outbox id handed to paho
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()  # set while nothing is undelivered
        self._task: asyncio.Task | None = None
        self._bounds_at = float("-inf")
        client.on_published = self._on_published
        if rewind_on_ready:
            client.on_ready.append(self.rewind)
        client.on_ready.append(self._wake.set)  # a backlog goes out as soon as the link is back

    @classmethod
    def from_config(
        cls, outbox: Outbox, client: Link, events: Events, retention: RetentionConfig, **kw
    ) -> Publisher:
        """A publisher bounded by a RetentionConfig (outbox_max_rows, outbox_max_age_h)."""
        return cls(
            outbox,
            client,
            events,
            max_rows=retention.outbox_max_rows,
            max_age_s=retention.outbox_max_age_h * 3600.0,
            **kw,
        )

    # ------------------------------------------------------------ lifecycle

    def start(self) -> asyncio.Task:
        """Start the drain task (the client should be started too); returns the task."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="outbox-publisher")
        return self._task

    async def stop(self) -> None:
        """Stop draining; rows not yet acknowledged stay in the outbox for next time."""
        if self._task is None:
            return
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._flush_acked()
        self._task = None

    def rewind(self) -> None:
        """Forget what is in flight: rows not yet confirmed are handed over again, in order."""
        if self._inflight:
            self._cursor = min(row.id for row in self._inflight.values()) - 1
            self._inflight.clear()
            self._inflight_bytes = 0

    def notify(self) -> None:
        """New rows were committed to the outbox: drain them now."""
        self._idle.clear()
        self._wake.set()

    # ------------------------------------------------------------ figures

    def depth(self) -> tuple[int, float | None]:
        """(undelivered messages, age in seconds of the oldest or None)."""
        return self.outbox.depth()

    @property
    def inflight(self) -> int:
        """Messages handed to the broker and not yet acknowledged."""
        return len(self._inflight)

    async def wait_drained(self, timeout_s: float = 30.0) -> None:
        """Return once every committed row was acknowledged; BrokerError after `timeout_s`."""
        self.notify()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except asyncio.TimeoutError as exc:
            raise BrokerError(
                f"outbox not drained within {timeout_s} s (depth {self.depth()[0]})"
            ) from exc

    # ------------------------------------------------------------ the task

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._drain_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # root of the task: report, back off, carry on draining
                failures += 1
                log.exception("outbox publisher failed")
                if failures == 1:
                    self.events.error(
                        "publisher_failed",
                        f"the outbox publisher failed and retries: {exc}",
                        error=exc,
                    )
                await asyncio.sleep(min(30.0, 0.5 * 2 ** min(failures, 6)))

    async def _drain_once(self) -> None:
        if len(self._acked) >= MARK_BATCH or not self._inflight or self._bounds_due():
            self._flush_acked()
        self._check_bounds()
        sent = self._send_some() if self.client.ready else 0
        if sent == 0:
            if not self._inflight and not self._acked and not self._pending(1):
                self._idle.set()
            await self._sleep()

    async def _sleep(self) -> None:
        # A timer rather than wait_for: this runs once per batch of PUBACKs, and wait_for
        # would wrap each wait in a task of its own.
        if not self._wake.is_set():
            timer = asyncio.get_running_loop().call_later(BOUNDS_INTERVAL_S, self._wake.set)
            try:
                await self._wake.wait()
            finally:
                timer.cancel()
        self._wake.clear()

    def _send_some(self) -> int:
        # Refill as soon as anything was acknowledged: a pipe kept full lets TCP acknowledge
        # with data instead of waiting (Nagle and delayed ACKs stall a half-empty one).
        room = self._window() - len(self._inflight)
        if room <= 0:
            return 0
        rows = self._pending(room, self._cursor)
        if not rows or not self._synced(rows[-1].id):
            return 0
        done = 0  # handed over, or found unsendable and skipped
        for row in rows:
            if self._inflight_bytes >= MAX_HANDED_BYTES and self._inflight:
                break  # a backlog of snapshots: the rest once these are acknowledged
            try:
                out = self.render(row) if self.render is not None else row
                mid = self.client.publish(out.topic, out.payload, qos=out.qos, retain=out.retain)
            except BrokerError as exc:
                self._unsendable(row, exc)
                done += 1
                continue
            self._inflight[mid] = row
            self._inflight_bytes += len(row.payload)
            self._cursor = row.id
            done += 1
        return done

    def _pending(self, limit: int, after_id: int = 0) -> list[OutboxRow]:
        return self.outbox.pending(limit, after_id, kinds=self.kinds, exclude=self.exclude)

    def _window(self) -> int:
        """Messages handed to the link and not yet acknowledged, at most; the link keeps those
        on the wire within the broker's Receive Maximum and queues the rest in order."""
        return self.window

    def _synced(self, last_id: int) -> bool:
        """Make rows up to `last_id` durable first; False (one event per streak) when that fails."""
        if self.sync is None or last_id <= self._durable_id:
            return True
        newest = self.outbox.newest_id()  # everything committed before the sync becomes durable
        try:
            self.sync()
        except RemanError as exc:
            if not self._sync_failed:
                self.events.error(
                    "outbox_sync_failed",
                    f"cannot make the journal durable; holding messages back: {exc}",
                    error=exc,
                )
            self._sync_failed = True
            return False
        self._sync_failed = False
        self._durable_id = newest
        return True

    def _unsendable(self, row: OutboxRow, exc: BrokerError) -> None:
        # paho refuses only what it can never encode; skipping it keeps the rest flowing.
        self.events.error(
            "publish_unsendable",
            f"message {row.msg_id or row.id} cannot be published: {exc}",
            topic=row.topic,
            outbox_id=row.id,
            msg_id=row.msg_id,
        )
        self._cursor = row.id
        self.outbox.mark_delivered([row.id])

    def _on_published(self, mid: int, ok: bool, reason: str) -> None:
        row = self._inflight.pop(mid, None)
        if row is None:  # `online`/`offline`, or a mid from before a restart of this publisher
            return
        self._inflight_bytes -= len(row.payload)
        if not ok:
            # The broker answered and will not take it (e.g. not authorised): resending cannot help.
            self.events.error(
                "publish_refused",
                f"the broker refused {row.topic}: {reason}",
                topic=row.topic,
                outbox_id=row.id,
                msg_id=row.msg_id,
                reason=reason,
            )
        self._acked.append(row)
        # Wake the task once half the window is free (or for a refusal): a full pipe keeps
        # flowing meanwhile, and acknowledgements are marked and refilled in batches.
        if not ok or len(self._inflight) <= self.window // 2:
            self._wake.set()

    def _flush_acked(self) -> None:
        if not self._acked:
            return
        rows, self._acked = self._acked, []
        self.outbox.mark_delivered([r.id for r in rows])
        self.delivered += len(rows)
        if self.on_delivered is not None:
            for row in rows:
                self.on_delivered(row)

    # ------------------------------------------------------------ bounds

    def _check_bounds(self) -> None:
        if not self.bounds or not self._bounds_due():
            return
        self._bounds_at = time.monotonic()
        dropped = self.outbox.enforce_bounds(self.max_rows, self.max_age_s)
        if dropped.total:
            self._report_dropped(dropped)

    def _bounds_due(self) -> bool:
        return time.monotonic() - self._bounds_at >= BOUNDS_INTERVAL_S

    def _report_dropped(self, dropped: Dropped) -> None:
        if dropped.by_rows:
            self.events.warning(
                "outbox_full",
                f"outbox reached {self.max_rows} undelivered messages; dropped the oldest "
                f"{sum(dropped.by_rows.values())} (stats, snapshots, events first; results never)",
                max_rows=self.max_rows,
                dropped=dropped.by_rows,
            )
        if dropped.by_age:
            self.events.warning(
                "outbox_expired",
                f"dropped {sum(dropped.by_age.values())} undelivered messages older "
                f"than {self.max_age_s / 3600:g} h",
                max_age_s=self.max_age_s,
                dropped=dropped.by_age,
            )
