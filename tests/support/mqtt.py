"""A paho client for tests: subscribe, then wait for messages with a timeout (never sleep)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import paho.mqtt.client as mqtt


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    retain: bool
    qos: int


class Listener:
    """Collects every message on its subscriptions into a queue."""

    def __init__(
        self,
        host: str,
        port: int,
        topics: list[str] | str = "#",
        client_id: str = "",
        username: str | None = None,
        password: str | None = None,
    ):
        self.messages: queue.Queue[Message] = queue.Queue()
        self.seen: list[Message] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if username:
            self.client.username_pw_set(username, password)
        self._topics = [topics] if isinstance(topics, str) else topics
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a, **k: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise TimeoutError("listener did not subscribe within 10 s")

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        client.subscribe([(t, 1) for t in self._topics])

    def _on_message(self, client, userdata, msg):
        self.messages.put(Message(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos))

    def wait_for(self, predicate: Callable[[Message], bool], timeout_s: float = 10.0) -> Message:
        """The first message (seen before or arriving) that satisfies predicate."""
        for message in self.seen:
            if predicate(message):
                return message
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                topics = sorted({m.topic for m in self.seen})
                raise TimeoutError(f"no matching message within {timeout_s} s; saw topics {topics}")
            try:
                message = self.messages.get(timeout=remaining)
            except queue.Empty:
                continue
            self.seen.append(message)
            if predicate(message):
                return message

    def wait_topic(self, topic: str, timeout_s: float = 10.0) -> Message:
        """The first message on exactly this topic."""
        return self.wait_for(lambda m: m.topic == topic, timeout_s)

    def drain(self) -> list[Message]:
        """Everything received so far."""
        while True:
            try:
                self.seen.append(self.messages.get_nowait())
            except queue.Empty:
                return list(self.seen)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
