"""The bench client: the test bench's values over OPC UA, kept current for the station loop.

    client = BenchClient(config.bench, events)
    await client.start()              # returns at once; connects and reconnects in a task
    snap = await client.snapshot()    # every mapped value, each marked usable or not, and why
    trigger = await client.triggers.get()
    await client.write_back(code, credit, seq, err=0, core_id="C1", revision=1)
    await client.stop()

One task owns the link: connect, resolve node ids (namespace URIs against the server's
namespace array, at every connect), read once, then subscribe (or poll), and wait for the link
to go. Then it reconnects with capped backoff. Notification handlers only store values and queue
triggers, so they never block the event loop. Each change of link state is an event; the bench
never crashes the node: every failure becomes a BenchError, an event and a not-usable reading.

Write-back (edge.bench.writeback) sends a result as one consistent set: result_ready false, then
code, credit, err, revision, core id and seq in one Write request, then result_ready true. A
failed set is retried with doubling delays in the background (the caller waits for the first
try only); a newer result supersedes one still being retried. The PLC's ack arrives as a new
value of `ack_node` and goes to the handshake (`handshake.ack: opcua`).

While connected, the bench's clock (Server_ServerStatus_CurrentTime) is compared with the node's
every `clock_check_interval_s` (edge.bench.clock); the skew corrects source timestamps for the
staleness check, and a skew beyond `max_clock_skew_s` is one `clock_skew` event.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from asyncua import Client, ua

from edge.bench import connection, nodeids
from edge.bench.clock import ClockWatch
from edge.bench.data import (
    BenchReading,
    BenchSnapshot,
    BenchTrigger,
    Sample,
    judge,
    unknown_reading,
)
from edge.bench.link import Link, PollFeed, SubscriptionFeed, SubscriptionRefused
from edge.bench.writeback import AckSink, ResultWrite, Writer
from edge.config.station import BenchConfig
from edge.contract import AckCommand, LinkState
from edge.contract.timefmt import utc_now
from edge.errors import BenchError, BenchUnavailable, UnknownNode
from edge.events import Events, Level

log = logging.getLogger("reman.bench")

TRIGGER_QUEUE_SIZE = 16


class BenchClient:
    """Keeps the bench's mapped values current and turns its trigger edges into BenchTriggers."""

    def __init__(
        self,
        config: BenchConfig,
        events: Events,
        *,
        trigger_queue_size: int = TRIGGER_QUEUE_SIZE,
        handshake: AckSink | None = None,
    ):
        self.config = config
        self.events = events
        self.handshake = handshake  # takes acks from ack_node and hears of written results
        # Bounded; a trigger that finds it full is dropped with an event (drop_new).
        self.triggers: asyncio.Queue[BenchTrigger] = asyncio.Queue(maxsize=trigger_queue_size)
        self.mode: str | None = None  # subscribe or poll, once connected
        self.unknown: dict[str, str] = {}  # node id text -> why it cannot be used
        self.unit_mismatch: dict[str, str] = {}  # node id text -> the server's unit vs ours
        self._state = LinkState(
            state="disabled" if not config.enabled else "disconnected", since=utc_now()
        )
        self._samples: dict[str, Sample] = {}
        self._generation = 0
        self._link: Link | None = None
        self._trigger_prev: Any = None
        self._ack_prev: tuple[Any, Any] | None = None
        self.clock = ClockWatch(config.max_clock_skew_s, events)
        self._last_failure: str | None = None
        self._stop = asyncio.Event()
        self.writer = Writer(config, events, self._write, handshake, self._stop)
        self._ready = asyncio.Event()
        self._connected = asyncio.Event()
        self._changed = asyncio.Event()  # set and replaced on every stored value
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------ public API

    @property
    def state(self) -> LinkState:
        """The link's state (connected, connecting, disconnected, disabled) and since when."""
        return self._state

    async def start(self) -> None:
        """Start connecting in the background; returns at once. A disabled bench does nothing."""
        if not self.config.enabled or self._task is not None:
            return
        self._check_node_ids()
        self._stop.clear()
        self._set_state(
            "connecting", "info", "bench_connecting", f"connecting to {self.config.endpoint}"
        )
        self._task = asyncio.create_task(self._run(), name="bench-link")

    async def stop(self) -> None:
        """Close the link and end every task this client started."""
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            await _finish(task)
        for extra in list(self._tasks):
            await _finish(extra)
        await self.writer.stop()
        if self.config.enabled and self._state.state != "disconnected":
            self._set_state("disconnected", "info", "bench_stopped", "bench client stopped")

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        """Wait until the link is up; raise BenchUnavailable with the last failure on timeout."""
        bound_s = timeout_s if timeout_s is not None else self.config.timeout_s
        try:
            await asyncio.wait_for(self._connected.wait(), bound_s)
        except asyncio.TimeoutError:
            why = self._last_failure or "no answer yet"
            raise BenchUnavailable(f"bench {self.config.endpoint} not connected: {why}") from None

    async def snapshot(self, wait_ready: bool = False) -> BenchSnapshot:
        """Every mapped value now, each marked usable or not with a reason.

        With wait_ready and a result_ready_node, first wait up to result_ready_timeout_s for it
        to turn true; `ready` says whether it did.
        """
        ready = await self._wait_ready() if wait_ready and self.config.result_ready_node else None
        return BenchSnapshot(
            ts=utc_now(), link=self._state.state, readings=self._readings(), ready=ready
        )

    async def wait_reading(
        self, name: str, predicate: Callable[[BenchReading], bool], timeout_s: float
    ) -> BenchReading:
        """Wait until the reading for `name` satisfies `predicate`; return it.

        Raises BenchError when it does not within timeout_s (the last reading in the message).
        """
        try:
            return await asyncio.wait_for(self._reading_when(name, predicate), timeout_s)
        except asyncio.TimeoutError:
            last = self._readings().get(name)
            raise BenchError(
                f"bench value {name} not as expected within {timeout_s:g} s: {last}"
            ) from None

    async def _reading_when(
        self, name: str, predicate: Callable[[BenchReading], bool]
    ) -> BenchReading:
        while True:
            changed = self._changed
            reading = self._readings()[name]
            if predicate(reading):
                return reading
            await changed.wait()

    async def write_back(
        self,
        code: int,
        credit: int,
        seq: int,
        *,
        err: int = 0,
        core_id: str | None = None,
        revision: int = 1,
    ) -> bool:
        """Write a result to the writeback nodes (result_ready last); True when the first try
        succeeded. A failed try is an event and is retried in the background; never raises for
        a bench problem."""
        job = ResultWrite(code, credit, seq, err, core_id, revision)
        return await self.writer.submit(job)

    async def identity(self) -> tuple[str | None, str | None]:
        """The core id and part number on the bench now, read fresh; None for what is not known
        (no node configured, link down, bad status, empty)."""
        if self._state.state != "connected":
            return None, None
        generation = self._generation
        return (
            await self._fresh_string(self.config.core_id_node, generation),
            await self._fresh_string(self.config.part_number_node, generation),
        )

    # ------------------------------------------------------------ the link task

    async def _run(self) -> None:
        delay = self.config.reconnect_min_s
        while not self._stop.is_set():
            connected = await self._serve_once()
            if self._stop.is_set():
                break
            if connected:
                delay = self.config.reconnect_min_s
            await self._pause(delay)
            delay = min(delay * 2, self.config.reconnect_max_s)

    async def _serve_once(self) -> bool:
        """One connection, from connect to loss; True when it got connected."""
        try:
            link = await self._open_link()
        except BenchError as exc:
            self._connect_failed(exc)
            return False
        except Exception as exc:  # root of the link task: report, never crash the node
            log.exception("bench connect crashed")
            self._connect_failed(BenchError(f"bench connect failed: {type(exc).__name__}: {exc}"))
            return False
        try:
            await self._hold(link)
        finally:
            self._link = None
            self._connected.clear()
            self._ready.clear()  # a result-ready seen before the gap says nothing now
            await link.close()
        if not self._stop.is_set():
            self._set_state(
                "disconnected",
                "warning",
                "bench_disconnected",
                f"lost the bench at {self.config.endpoint}",
                reason=link.loss_reason,
            )
        return True

    async def _open_link(self) -> Link:
        client = await connection.connect(self.config)
        try:
            return await self._setup_link(client)
        except BaseException:
            await connection.close(client)
            raise

    async def _setup_link(self, client: Client) -> Link:
        self._generation += 1
        try:
            link = Link(client, self._generation, await client.get_namespace_array())
            link.nodes = self._resolve(link.namespaces)
            await self.clock.measure(client)
            self._store_all(link.generation, link.nodes, await link.read(list(link.nodes.values())))
            await self._check_units(link)
            await self._start_feed(link, self._known(link.nodes))
        except (*connection.TRANSPORT_ERRORS, *connection.UA_ERRORS) as exc:
            raise connection.describe_error(self.config.endpoint, exc) from exc
        return link

    async def _start_feed(self, link: Link, nodes: dict[str, ua.NodeId]) -> None:
        queued = {t for t in (self.config.trigger_node, self.config.result_ready_node) if t}
        if self.config.mode == "subscribe":
            feed = SubscriptionFeed(
                link, nodes, self._on_value, self.config.sampling_interval_ms, queued
            )
            try:
                link.feed = await feed.start()
                self.mode = "subscribe"
                return
            except SubscriptionRefused as exc:
                self.events.warning(
                    "bench_poll_fallback", f"bench refused subscriptions ({exc}); polling instead"
                )
        link.feed = PollFeed(link, nodes, self._on_value, self.config.poll_interval_s).start()
        self.mode = "poll"

    async def _hold(self, link: Link) -> None:
        self._link = link
        self._last_failure = None
        self._connected.set()
        self._set_state(
            "connected",
            "info",
            "bench_connected",
            f"connected to {self.config.endpoint}",
            mode=self.mode,
            unknown_nodes=sorted(self.unknown),
        )
        stop = asyncio.ensure_future(self._stop.wait())
        lost = asyncio.ensure_future(link.lost.wait())
        clock = asyncio.ensure_future(self.clock.watch(link, self.config.clock_check_interval_s))
        try:
            await asyncio.wait({stop, lost}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for fut in (stop, lost, clock):
                fut.cancel()
            await asyncio.gather(clock, return_exceptions=True)

    async def _pause(self, delay_s: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), delay_s)
        except asyncio.TimeoutError:
            pass

    def _connect_failed(self, exc: BenchError) -> None:
        message = str(exc)
        if message != self._last_failure:  # one event per distinct failure, not per retry
            # A bench that is off or rebooting is retried (a warning, like a missing broker); a
            # refusal (certificate, password, policy) will not mend itself (an error).
            level: Level = "warning" if isinstance(exc, BenchUnavailable) else "error"
            self.events.emit(level, "bench_connect_failed", message, endpoint=self.config.endpoint)
        self._last_failure = message
        if self._state.state != "disconnected":
            self._set_state("disconnected", "warning", "bench_disconnected", message)

    # ------------------------------------------------------------ node ids

    def _watched(self) -> set[str]:
        cfg = self.config
        roles = (
            cfg.trigger_node,
            cfg.core_id_node,
            cfg.part_number_node,
            cfg.result_ready_node,
            cfg.ack_node,
        )
        return {m.node_id for m in cfg.nodes.values()} | {t for t in roles if t}

    def _check_node_ids(self) -> None:
        for text in sorted(self._watched() | set(self.config.writeback.values())):
            try:
                nodeids.check_syntax(text)
            except UnknownNode as exc:
                self._mark_unknown(text, str(exc))

    def _resolve(self, namespaces: list[str]) -> dict[str, ua.NodeId]:
        nodes: dict[str, ua.NodeId] = {}
        for text in sorted(self._watched()):
            try:
                nodes[text] = nodeids.resolve(text, namespaces)
            except UnknownNode as exc:
                self._mark_unknown(text, str(exc))
        return nodes

    def _known(self, nodes: dict[str, ua.NodeId]) -> dict[str, ua.NodeId]:
        return {t: n for t, n in nodes.items() if t not in self.unknown}

    def _mark_unknown(self, text: str, reason: str) -> None:
        if self.unknown.get(text) != reason:
            self.events.error("bench_unknown_node", reason, node=text)
        self.unknown[text] = reason

    def _store_all(
        self, generation: int, nodes: dict[str, ua.NodeId], values: list[ua.DataValue]
    ) -> None:
        for text, dv in zip(nodes, values, strict=True):
            if dv.StatusCode is not None and dv.StatusCode.name in (
                "BadNodeIdUnknown",
                "BadNodeIdInvalid",
            ):
                self._mark_unknown(
                    text, f"node {text} does not exist on the bench ({dv.StatusCode.name})"
                )
                continue
            self.unknown.pop(text, None)
            self._on_value(text, dv, generation)

    async def _check_units(self, link: Link) -> None:
        """Compare configured units with the bench's EngineeringUnits, where it declares them.
        A mismatch makes the value unusable (a REVIEW reason), never silently converted."""
        expected = {
            m.node_id: m.unit
            for m in self.config.nodes.values()
            if m.unit and m.node_id in link.nodes and m.node_id not in self.unknown
        }
        try:
            declared = await link.engineering_units({t: link.nodes[t] for t in expected})
        except connection.UA_ERRORS as exc:  # a server without the property service: no check
            log.info("cannot read EngineeringUnits: %s", exc)
            return
        self.unit_mismatch = {}
        for text, unit in declared.items():
            if _unit_key(unit) != _unit_key(expected[text]):
                reason = f"bench reports {text} in {unit}, config expects {expected[text]}"
                self.unit_mismatch[text] = reason
                self.events.warning("bench_unit_mismatch", reason, node=text)

    # ------------------------------------------------------------ values

    def _on_value(self, text: str, dv: ua.DataValue, generation: int) -> None:
        """Store one value (a notification or a read); never blocks."""
        if generation != self._generation:
            return  # late notification from a closed connection
        sample = Sample.from_datavalue(dv, generation).first_seen(self._samples.get(text))
        self._samples[text] = sample
        self._changed.set()
        self._changed = asyncio.Event()
        if text == self.config.result_ready_node:
            (self._ready.set if sample.good and sample.value is True else self._ready.clear)()
        if text == self.config.trigger_node:
            self._on_trigger_value(sample)
        if text == self.config.ack_node:
            self._on_ack_value(sample)

    def _on_ack_value(self, sample: Sample) -> None:
        # A new (value, timestamp) is an ack; the first value ever seen is what the PLC acked
        # before this node started, not an ack of ours. Kept across reconnects, so an ack the
        # PLC wrote while the link was down is taken when it is back.
        value = sample.value
        if not sample.good or isinstance(value, bool) or not isinstance(value, int):
            return
        key = (value, sample.source_ts)
        prev, self._ack_prev = self._ack_prev, key
        if prev is None or key == prev or value <= 0 or self.handshake is None:
            return
        self.handshake.ack(AckCommand(seq=value), source="opcua")

    def _on_trigger_value(self, sample: Sample) -> None:
        # The last value is kept across reconnects: False before a gap and True after it is an
        # edge the bench made while we were away. The first value ever seen is no edge.
        value = bool(sample.value) if sample.good else None
        rising = self._trigger_prev is False and value is True
        if value is not None:
            self._trigger_prev = value
        if rising:
            self._spawn(self._queue_trigger(sample.generation))

    async def _queue_trigger(self, generation: int) -> None:
        core_id = await self._fresh_string(self.config.core_id_node, generation)
        part_number = await self._fresh_string(self.config.part_number_node, generation)
        trigger = BenchTrigger(core_id=core_id, part_number=part_number)
        try:
            self.triggers.put_nowait(trigger)
        except asyncio.QueueFull:
            self.events.warning(
                "bench_trigger_dropped", "a bench trigger found the queue full", core_id=core_id
            )

    async def _fresh_string(self, text: str | None, generation: int) -> str | None:
        """The node's value read now (the id may change in the same publish as the edge)."""
        if not text or text in self.unknown:
            return None
        link = self._link
        if link is not None and link.generation == generation and text in link.nodes:
            try:
                self._on_value(text, (await link.read([link.nodes[text]]))[0], generation)
            except (*connection.TRANSPORT_ERRORS, *connection.UA_ERRORS):
                log.info("reading %s for a trigger failed; using the last value", text)
        sample = self._samples.get(text)
        if sample is None or not sample.good or sample.value in (None, ""):
            return None
        return str(sample.value)

    def _readings(self) -> dict[str, BenchReading]:
        live = self._generation if self._state.state == "connected" else None
        note = f"bench {self._state.state} since {self._state.since}"
        out: dict[str, BenchReading] = {}
        for name, mapping in self.config.nodes.items():
            if mapping.node_id in self.unknown:
                out[name] = unknown_reading(mapping, self.unknown[mapping.node_id])
                continue
            max_age_s = mapping.max_age_s or self.config.max_age_s
            reading = judge(
                self._samples.get(mapping.node_id),
                mapping,
                max_age_s,
                live,
                note,
                skew_s=self.clock.skew_s,
            )
            if mapping.node_id in self.unit_mismatch:
                reading = replace(
                    reading,
                    value=None,
                    status="BadConfigurationError",
                    usable=False,
                    reason=self.unit_mismatch[mapping.node_id],
                )
            out[name] = reading
        return out

    async def _wait_ready(self) -> bool:
        try:
            await asyncio.wait_for(self._ready.wait(), self.config.result_ready_timeout_s)
            return True
        except asyncio.TimeoutError:
            return False

    # ------------------------------------------------------------ write-back

    async def _write(self, wanted: dict[str, ua.Variant]) -> None:
        """Write the variants to the writeback nodes named by key, in order, in one request."""
        link = self._link
        if link is None:
            raise BenchUnavailable(
                f"bench {self.config.endpoint} is not connected; write-back skipped"
            )
        texts = [self.config.writeback[k] for k in wanted]  # type: ignore[index]
        try:
            ids = [nodeids.resolve(t, link.namespaces) for t in texts]
            results = await link.write(ids, list(wanted.values()))
        except (*connection.TRANSPORT_ERRORS, *connection.UA_ERRORS) as exc:
            raise connection.describe_error(self.config.endpoint, exc) from exc
        failed = {t: r.name for t, r in zip(texts, results, strict=True) if not r.is_good()}
        if failed:
            raise BenchError(f"bench refused write-back: {failed}")

    # ------------------------------------------------------------ helpers

    def _set_state(self, state: str, level: str, code: str, message: str, **detail: Any) -> None:
        self._state = LinkState(state=state, since=utc_now())
        self._changed.set()  # readings depend on the link state too
        self._changed = asyncio.Event()
        self.events.emit(level, code, message, state=state, **detail)  # type: ignore[arg-type]

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)  # strong reference until done
        task.add_done_callback(self._tasks.discard)


def _unit_key(unit: str) -> str:
    """A unit compared loosely: spacing, the ohm sign and the micro sign do not matter."""
    for sign, plain in (
        (" ", ""),
        ("\u03a9", "Ohm"),
        ("\u2126", "Ohm"),
        ("\u00b5", "u"),
        ("\u03bc", "u"),
    ):
        unit = unit.replace(sign, plain)
    return unit


async def _finish(task: asyncio.Task[Any]) -> None:
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - the task's errors were reported
        pass
