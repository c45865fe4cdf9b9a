"""MQTT throughput: the outbox and publisher against raw paho QoS 1, and the drain after an outage.

    .venv/bin/python bench/mqtt.py [--messages 5000] [--rounds 3]

Starts its own mosquitto on a free loopback port (edge.mqtt.mosquitto). In each round, interleaved so
that load from other processes hits both alike:

- raw: one paho client publishes N QoS 1 messages (same payloads) and waits for every PUBACK, with
  the same in-flight window as ours (`window`: paho itself ignores the broker's Receive Maximum,
  so it is set to what ours uses);
- ours: the same N messages (built before the clock starts, as a node builds them with its
  records) are committed to an outbox (SQLite file, WAL) and drained by
  `edge.mqtt.publisher.Publisher` through `edge.mqtt.client.MqttClient`, each marked delivered on its
  PUBACK, with a durability sync (fsync of the WAL) per batch as the journal does, and at most
  the broker's Receive Maximum less one in flight (mosquitto says 20, so 19: `window`).

Then the outage: the broker is stopped, N messages are committed while it is away, the broker is
started again; the figure is messages per second from the reconnect to the last one marked
delivered, checked in order at a subscriber. Budget: at least 500 messages/s.

Prints JSON; the headline figures are `ours_msgs_per_s`, `raw_msgs_per_s`, `ratio` (ours/raw,
best round of each) and `outage_drain_msgs_per_s`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import sqlite_utils

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.contract.broker import BrokerConfig  # noqa: E402
from edge.events import Events  # noqa: E402
from edge.journal.outbox import Outbox, OutboxMessage  # noqa: E402
from edge.mqtt.client import HANDED_MAX, MqttClient  # noqa: E402
from edge.mqtt.mosquitto import MosquittoProcess, start_mosquitto  # noqa: E402
from edge.mqtt.publisher import Publisher  # noqa: E402

DRAIN_BUDGET_MSGS_PER_S = 500
WINDOW = HANDED_MAX  # the node's MqttClient default
STATION = "bench"


def payloads(count: int) -> list[bytes]:
    """Inspection-sized JSON payloads (about 600 bytes), numbered."""
    pad = "x" * 560
    return [json.dumps({"id": f"m{n:07d}", "n": n, "pad": pad}).encode() for n in range(count)]


# ---------------------------------------------------------------- raw paho


def raw_round(port: int, data: list[bytes], window: int) -> float:
    """Messages per second for bare paho QoS 1 with `window` messages in flight."""
    done = threading.Event()
    acked = [0]

    def on_publish(client, userdata, mid, reason_code, properties):
        acked[0] += 1
        if acked[0] == len(data):
            done.set()

    client = paho.Client(
        paho.CallbackAPIVersion.VERSION2, client_id="bench-raw", protocol=paho.MQTTv5
    )
    client.max_inflight_messages_set(window)
    client.max_queued_messages_set(0)
    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        start = time.perf_counter()
        for payload in data:
            client.publish(f"reman/{STATION}/raw", payload, qos=1)
        if not done.wait(120):
            raise RuntimeError(f"raw: {acked[0]} of {len(data)} acknowledged")
        return len(data) / (time.perf_counter() - start)
    finally:
        client.disconnect()
        client.loop_stop()


# ---------------------------------------------------------------- ours


class Station:
    """An outbox in a SQLite file, a client and a publisher, as the node wires them."""

    def __init__(self, folder: Path, port: int, name: str):
        self.path = folder / f"{name}.db"
        self.db = sqlite_utils.Database(self.path)
        self.db.conn.execute("PRAGMA journal_mode=WAL")
        self.db.conn.execute("PRAGMA synchronous=NORMAL")
        Outbox.create(self.db)
        self.outbox = Outbox(self.db)
        config = BrokerConfig(
            port=port, client_id=f"bench-{name}", reconnect_min_s=0.05, reconnect_max_s=0.2
        )
        self.client = MqttClient(STATION, config, Events(STATION), max_inflight=WINDOW)
        self.publisher = Publisher(self.outbox, self.client, self.client.events, sync=self.fsync)

    def fsync(self) -> None:
        wal = f"{self.path}-wal"
        if os.path.exists(wal):
            fd = os.open(wal, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def commit(self, messages: list[OutboxMessage]) -> None:
        with self.db.conn:
            self.outbox.add(messages)

    async def start(self) -> None:
        await self.client.start()
        await self.client.wait_connected(10)
        self.publisher.start()

    async def stop(self) -> None:
        await self.publisher.stop()
        await self.client.stop()


OURS_WINDOW: list[int] = []


def outbox_messages(data: list[bytes]) -> list[OutboxMessage]:
    """The payloads as the outbox messages a node builds with its records."""
    topic = f"reman/{STATION}/inspection"
    return [OutboxMessage("inspection", topic, p, msg_id=f"m{n}") for n, p in enumerate(data)]


async def ours_round(folder: Path, port: int, data: list[bytes], name: str) -> float:
    """Messages per second from commit to the last one marked delivered."""
    station = Station(folder, port, name)
    await station.start()
    OURS_WINDOW.append(station.client.wire_window)  # the broker's Receive Maximum less one
    messages = outbox_messages(data)  # the node's work, as it builds a record's messages
    try:
        start = time.perf_counter()
        station.commit(messages)
        station.publisher.notify()
        await station.publisher.wait_drained(120)
        return len(data) / (time.perf_counter() - start)
    finally:
        await station.stop()


# ---------------------------------------------------------------- outage


class Counter:
    """A subscriber that checks the numbers arrive in order (duplicates allowed)."""

    def __init__(self, port: int, total: int):
        self.total, self.next_n, self.out_of_order = total, 0, 0
        self.done = threading.Event()
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id="bench-sub",
            protocol=paho.MQTTv311,
            clean_session=False,
        )
        self.client.reconnect_delay_set(0.05, 0.2)  # type: ignore[arg-type]  # paho takes floats
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            f"reman/{STATION}/inspection", 1
        )
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        n = json.loads(message.payload)["n"]
        if n == self.next_n:
            self.next_n += 1
        elif n > self.next_n:
            self.out_of_order += 1
        if self.next_n == self.total:
            self.done.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def outage_drain(folder: Path, broker: MosquittoProcess, data: list[bytes]) -> dict:
    """Commit N messages while the broker is down; drain rate from the reconnect."""
    counter = Counter(broker.port, len(data))
    station = Station(folder, broker.port, "outage")
    await station.start()
    try:
        await asyncio.to_thread(broker.stop)
        station.commit(outbox_messages(data))
        station.publisher.notify()
        await asyncio.to_thread(broker.start)
        await station.client.wait_connected(30)
        start = time.perf_counter()
        await station.publisher.wait_drained(120)
        rate = len(data) / (time.perf_counter() - start)
        arrived = await asyncio.to_thread(counter.done.wait, 60)
    finally:
        await station.stop()
        counter.close()
    return {
        "outage_drain_msgs_per_s": round(rate),
        "outage_all_arrived_in_order": arrived and counter.out_of_order == 0,
    }


# ---------------------------------------------------------------- main


async def run(count: int, rounds: int) -> dict:
    data = payloads(count)
    with tempfile.TemporaryDirectory(prefix="reman-bench-mqtt-") as tmp:
        folder = Path(tmp)
        # The outage's subscriber may come back after the station: its session queues the
        # backlog meanwhile, up to the station broker's shipped limit (mosquitto's own is 1,000).
        broker = start_mosquitto(
            folder / "broker", persistence=True, extra_config="max_queued_messages 10000\n"
        )
        try:
            raw, ours = [], []
            for i in range(rounds):  # ours first: its window (the broker's word) is raw's too
                ours.append(await ours_round(folder, broker.port, data, f"round{i}"))
                raw.append(await asyncio.to_thread(raw_round, broker.port, data, OURS_WINDOW[-1]))
            outage = await outage_drain(folder, broker, data)
        finally:
            broker.stop()
    best_raw, best_ours = max(raw), max(ours)
    return {
        "messages": count,
        "rounds": rounds,
        "payload_bytes": len(data[0]),
        "window": OURS_WINDOW[-1],
        "raw_msgs_per_s": round(best_raw),
        "ours_msgs_per_s": round(best_ours),
        "ratio": round(best_ours / best_raw, 3),
        "raw_rounds": [round(r) for r in raw],
        "ours_rounds": [round(r) for r in ours],
        **outage,
        "outage_budget_msgs_per_s": DRAIN_BUDGET_MSGS_PER_S,
        "outage_within_budget": outage["outage_drain_msgs_per_s"] >= DRAIN_BUDGET_MSGS_PER_S,
    }


def main() -> None:
    """Run the benchmark and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000, help="messages per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of raw and ours")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.messages, args.rounds)), indent=2))


if __name__ == "__main__":
    main()
