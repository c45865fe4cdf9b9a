"""The node's MQTT client on paho-mqtt 2.x: one persistent session per station.

paho runs its own network thread (`loop_start`); every paho callback hands its work to the
asyncio loop with `call_soon_threadsafe`, so state, events and command handling all happen on the
loop. The link state changes only on the broker's word: `connected` after a successful CONNACK,
`disconnected` when the broker or the network drops the link. A failed connect is a failed
connect (an event, and paho retries with a capped, doubling delay).

    MqttClient(station, config, events, on_command=...)
        await start()              connect in the background, retrying until the broker answers
        await wait_connected(t)    until the broker accepted the connection
        publish(...) -> mid        hand one message to paho (QoS 1 messages are resent by paho
                                   after a reconnect, with the same mid)
        ready, on_ready            connected and paho's resends of the last link already queued:
                                   new messages published now cannot overtake old ones
        on_published               (mid, ok, reason) for every PUBACK (QoS 1) or write (QoS 0)
        await stop()               publish `offline` (retained) and disconnect cleanly

In flight: paho keeps at most the broker's Receive Maximum less one QoS 1 messages on the wire
(`wire_window`; the one left is for `online`, sent ahead of the resends after a reconnect) and
queues the rest in order, sending the next one from its own thread as each PUBACK arrives. So a
publisher may hand over more than the broker takes at once without waiting on the event loop
between an acknowledgement and the next message. PUBACKs reach the loop in batches: while more
than half of `max_inflight` of our messages are unacknowledged, they wait on paho's side (the
pipe is full, nothing needs doing); once fewer are, or on a refusal, the loop is woken once for
all that arrived meanwhile.

The Last Will is `offline` (retained) on `<prefix>/<station>/available`; `online` (retained) is
published after every successful connect. Both bypass the outbox: they describe the link itself,
and must not queue behind a backlog.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.contract import AVAILABLE_OFFLINE, AVAILABLE_ONLINE, LinkState, Topics
from edge.contract.broker import BrokerConfig, Will, build_client
from edge.contract.errors import BrokerSettingsError
from edge.contract.timefmt import utc_now
from edge.errors import BrokerError
from edge.events import Events

log = logging.getLogger("reman.mqtt")

HANDED_MAX = 1000
"""Messages handed to paho and not yet acknowledged, at most (the publisher's window): paho keeps
the broker's Receive Maximum of them on the wire and the rest queued, so the loop wakes once per
500 PUBACKs and hands over 500 more at a time. bench/mqtt.py: 0.65-0.76 of raw paho at 1,000,
0.65 at 100 (each hand-over contends with paho's thread for its lock and the GIL), no better at
2,000-5,000. The publisher's byte budget (MAX_HANDED_BYTES) bounds a backlog of snapshots."""
SESSION_EXPIRY_S = 7 * 24 * 3600  # the broker keeps our subscriptions and queued commands a week
ONLINE = AVAILABLE_ONLINE.encode("ascii")
OFFLINE = AVAILABLE_OFFLINE.encode("ascii")

CommandHandler = Callable[[str, bytes], object]  # (kind, payload); what it returns is ignored
PublishedHandler = Callable[[int, bool, str], None]


class MqttClient:
    """A station's connection to the broker; see the module docstring."""

    def __init__(
        self,
        station: str,
        config: BrokerConfig,
        events: Events,
        on_command: CommandHandler | None = None,
        max_inflight: int = HANDED_MAX,
    ):
        self.config = config
        self.events = events
        self.topics = Topics(station, config.topic_prefix)
        self.client_id = config.client_id or f"reman-{station}"
        self.on_command = on_command
        self.on_published: PublishedHandler | None = None
        self.on_ready: list[Callable[[], None]] = []  # called on the loop when `ready` turns True
        self.ready = False  # connected, and paho's resends of the last link are queued
        self.receive_maximum: int | None = None  # the broker's limit on our unacknowledged QoS 1
        self._online_mid: int | None = None
        self.max_inflight = max_inflight
        self.state = LinkState(state="disconnected", since=utc_now())
        self.connects = 0  # successful CONNACKs since start, for tests and stats
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected: asyncio.Event | None = None
        self._stopping = False
        self._fail_reported = False
        self._acks: deque[tuple[int, bool, str]] = deque()  # PUBACKs not yet on the loop
        self._acks_scheduled = False
        self._handed = 0  # messages handed to paho (loop thread) ...
        self._answered = 0  # ... and PUBACKs or writes for them (paho's thread)
        self._client = self._build_client()

    # ------------------------------------------------------------ set-up

    @property
    def mqtt5(self) -> bool:
        """True for MQTT 5, False for 3.1.1."""
        return self.config.protocol == "5"

    def _build_client(self) -> paho.Client:
        will = Will(self.topics.available, OFFLINE)
        try:
            client = build_client(self.config, client_id=self.client_id, persistent=True, will=will)
        except BrokerSettingsError as exc:
            raise BrokerError(str(exc)) from exc
        client.max_inflight_messages_set(self.max_inflight + 2)  # + `online` and `offline`
        client.max_queued_messages_set(0)
        client.on_connect = self._paho_connect
        client.on_connect_fail = self._paho_connect_fail
        client.on_disconnect = self._paho_disconnect
        client.on_publish = self._paho_publish
        client.on_message = self._paho_message
        return client

    async def start(self) -> None:
        """Begin connecting; returns at once, paho keeps retrying until the broker accepts."""
        self._loop = asyncio.get_running_loop()
        self._connected = asyncio.Event()
        self._stopping = False
        kwargs: dict = {"keepalive": self.config.keepalive_s}
        if self.mqtt5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = SESSION_EXPIRY_S
            kwargs.update(clean_start=False, properties=props)
        try:
            self._client.connect_async(self.config.host, self.config.port, **kwargs)
        except (OSError, ValueError) as exc:
            raise BrokerError(
                f"cannot connect to {self.config.host}:{self.config.port}: {exc}"
            ) from exc
        self._set_state("connecting")
        self.events.info(
            "broker_connecting",
            f"connecting to {self.config.host}:{self.config.port}",
            client_id=self.client_id,
            protocol=self.config.protocol,
        )
        self._client.loop_start()

    async def wait_connected(self, timeout_s: float | None = None) -> None:
        """Return once the broker accepted the connection; BrokerError after `timeout_s`."""
        if self._connected is None:
            raise BrokerError("the MQTT client was not started")
        try:
            await asyncio.wait_for(self._connected.wait(), timeout_s)
        except asyncio.TimeoutError as exc:
            raise BrokerError(
                f"broker {self.config.host}:{self.config.port} did not accept within {timeout_s} s"
            ) from exc

    @property
    def wire_window(self) -> int:
        """The most QoS 1 messages paho keeps unacknowledged on the wire (see the docstring)."""
        return self._client.max_inflight_messages

    @property
    def connected(self) -> bool:
        """True between a successful CONNACK and the next disconnect."""
        return self.state.state == "connected"

    async def stop(self, timeout_s: float = 5.0) -> None:
        """Publish `offline` (retained) when connected, disconnect, and stop paho's thread."""
        self._stopping = True
        if self.connected:
            info = self._client.publish(self.topics.available, OFFLINE, qos=1, retain=True)
            await asyncio.to_thread(_wait_published, info, timeout_s)
        self.ready = False
        self._client.disconnect()
        await self._stop_network_thread(timeout_s)
        self._set_state("disconnected")

    async def _stop_network_thread(self, timeout_s: float) -> None:
        """Join paho's thread from a daemon thread of our own, waiting at most timeout_s.

        Not through the loop's executor: a join that never returns would then also block the
        executor's shutdown, and with it the node's exit.
        """
        loop = asyncio.get_running_loop()
        joined = loop.create_future()

        def resolve() -> None:
            if not joined.done():
                joined.set_result(None)

        def join() -> None:
            self._client.loop_stop()
            self._to_loop(resolve)

        threading.Thread(target=join, name="reman-mqtt-stop", daemon=True).start()
        try:
            await asyncio.wait_for(joined, timeout_s)
        except asyncio.TimeoutError:
            log.warning("paho's network thread did not stop within %.0f s", timeout_s)

    # ------------------------------------------------------------ publishing

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> int:
        """Hand a message to paho and return its mid; raise BrokerError when paho refuses it.

        A message handed over while the link is down stays queued in paho and goes out after the
        reconnect; `on_published` reports the broker's PUBACK for QoS 1, the write for QoS 0.
        """
        try:
            info = self._client.publish(topic, payload, qos=qos, retain=retain)
        except (ValueError, TypeError) as exc:
            raise BrokerError(f"cannot publish on {topic}: {exc}") from exc
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            raise BrokerError(f"cannot publish on {topic}: {paho.error_string(info.rc)}")
        self._handed += 1
        return info.mid

    # ------------------------------------------------------------ paho thread -> loop

    def _to_loop(self, func: Callable, *args) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(func, *args)
        except RuntimeError:  # the loop closed between the check and the call
            log.debug("loop closed; dropped %s", func)

    def _paho_connect(self, client, userdata, flags, reason_code: ReasonCode, properties) -> None:
        if reason_code.is_failure:
            self._to_loop(self._connect_refused, str(reason_code))
            return
        # Subscribe and announce from the network thread: paho sends these first on the new link.
        # Right after this callback paho resends the messages left unacknowledged by the last
        # link; the PUBACK of `online` can only come after those were queued, so it marks the
        # moment new messages may follow without overtaking them.
        client.subscribe(self._command_subscriptions())
        self._online_mid = client.publish(self.topics.available, ONLINE, qos=1, retain=True).mid
        receive_maximum = getattr(properties, "ReceiveMaximum", None) if properties else None
        if receive_maximum:
            _limit_wire(client, receive_maximum)
        self._to_loop(self._connect_accepted, bool(flags.session_present), receive_maximum)

    def _command_subscriptions(self) -> list[tuple[str, object]]:
        """The command topics at QoS 1; on MQTT 5 retained messages are neither sent nor hidden.

        A command is a request made now: a retained one would be obeyed again at every
        (re)subscribe. MQTT 5 lets us ask the broker not to send stored retained messages and to
        keep the retain flag of live ones, so `_paho_message` can refuse them. MQTT 3.1.1 marks
        only stored retained messages (sent at subscribe); a live retained publish arrives
        unmarked there, which is one reason the node defaults to MQTT 5.
        """
        topics = [self.topics.topic(kind) for kind in Topics.COMMANDS]
        if not self.mqtt5:
            return [(topic, 1) for topic in topics]
        options = SubscribeOptions(
            qos=1, retainAsPublished=True, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND
        )
        return [(topic, options) for topic in topics]

    def _paho_connect_fail(self, client, userdata) -> None:
        self._to_loop(self._connect_failed)

    def _paho_disconnect(
        self, client, userdata, flags, reason_code: ReasonCode, properties
    ) -> None:
        self._to_loop(self._link_lost, str(reason_code))

    def _paho_publish(
        self, client, userdata, mid: int, reason_code: ReasonCode, properties
    ) -> None:
        if mid == self._online_mid:
            self._online_mid = None
            self._to_loop(self._link_ready)
            return
        failed = reason_code.is_failure
        self._acks.append((mid, not failed, str(reason_code) if failed else ""))
        self._answered += 1
        # Only a count read across threads, so at worst one wake-up early or late by an ack.
        waiting = self._handed - self._answered
        if not self._acks_scheduled and (failed or waiting <= self.max_inflight // 2):
            self._acks_scheduled = True  # one wake-up for every PUBACK until the loop runs
            self._to_loop(self._published)

    def _paho_message(self, client, userdata, message: paho.MQTTMessage) -> None:
        kind = self._command_kind(message.topic)
        if kind is None:
            return
        if message.retain:  # stored, or published to be stored: not a request made now
            self._to_loop(self._retained_command, kind, bytes(message.payload))
        else:
            self._to_loop(self._command, kind, bytes(message.payload))

    def _command_kind(self, topic: str) -> str | None:
        for kind in Topics.COMMANDS:
            if topic == self.topics.topic(kind):
                return kind
        return None

    # ------------------------------------------------------------ on the loop

    def _connect_accepted(self, session_present: bool, receive_maximum: int | None) -> None:
        self.receive_maximum = receive_maximum
        self.connects += 1
        self._fail_reported = False
        self._set_state("connected")
        if self._connected is not None:
            self._connected.set()
        self.events.info(
            "broker_connected",
            f"connected to {self.config.host}:{self.config.port}",
            client_id=self.client_id,
            session_present=session_present,
        )

    def _connect_refused(self, reason: str) -> None:
        self.events.error(
            "broker_refused",
            f"the broker refused the connection: {reason}",
            host=self.config.host,
            port=self.config.port,
            reason=reason,
        )

    def _connect_failed(self) -> None:
        if self._fail_reported:  # one event per outage, not one per retry
            return
        self._fail_reported = True
        self.events.warning(
            "broker_unreachable",
            f"cannot reach the broker at {self.config.host}:{self.config.port}; retrying",
            host=self.config.host,
            port=self.config.port,
        )

    def _link_ready(self) -> None:
        self._published()  # acknowledgements of the last link first
        if not self.connected:
            return  # the link went away again before `online` was acknowledged
        self.ready = True
        for listener in self.on_ready:
            listener()

    def _link_lost(self, reason: str) -> None:
        self._published()  # what the broker acknowledged before the link went
        self.ready = False
        if self._connected is not None:
            self._connected.clear()
        was_connected = self.connected
        self._set_state("disconnected")
        if was_connected and not self._stopping:
            self.events.warning("broker_disconnected", f"lost the broker: {reason}", reason=reason)

    def _published(self) -> None:
        self._acks_scheduled = False  # before taking them: a PUBACK arriving now schedules anew
        acks, handler = self._acks, self.on_published
        while acks:
            mid, ok, reason = acks.popleft()
            if handler is not None:
                handler(mid, ok, reason)

    def _command(self, kind: str, payload: bytes) -> None:
        if self.on_command is not None:
            self.on_command(kind, payload)

    def _retained_command(self, kind: str, payload: bytes) -> None:
        self.events.warning(
            "command_rejected",
            f"refused {kind}: it carries the retain flag; publish commands without retain",
            topic=self.topics.topic(kind),
            reason="retained",
            size=len(payload),
            payload_start=payload[:64].decode("ascii", errors="backslashreplace"),
        )

    def _set_state(self, state: str) -> None:
        if state == self.state.state:
            return
        self.state = LinkState(state=state, since=utc_now())
        log.info("broker link %s", state)


def _limit_wire(client: paho.Client, receive_maximum: int) -> None:
    """Keep `online` and at most `receive_maximum - 1` more unacknowledged on the wire, from
    now on and for the resends after the next reconnect.

    paho's setter refuses while connected, out of doubt about a change between 0 (unlimited)
    and a limit, which this never makes (the limit is at least 1 both before and after); the
    attribute is what its publish and PUBACK handling read, on either thread.
    """
    client._max_inflight_messages = max(1, receive_maximum - 1)


def _wait_published(info: paho.MQTTMessageInfo, timeout_s: float) -> None:
    try:
        info.wait_for_publish(timeout_s)
    except (RuntimeError, ValueError):  # the link went away meanwhile; the Will says offline
        pass
