"""Store-and-forward: in order, delivered only on PUBACK, across broker outages and node restarts."""

from __future__ import annotations

import asyncio
import json
import signal

import pytest

from edge.journal.outbox import OutboxMessage
from edge.mqtt.publisher import MAX_HANDED_BYTES
from edge.ports import free_port
from tests.mqtt.test_lastwill import start_node, wait_line
from tests.support.nodes import (
    Subscriber,
    add,
    as_invoker,
    fast_config,
    first_occurrences,
    messages,
    numbers,
    open_outbox,
)

TOTAL = 500


def durable_broker(broker_factory, tmp_path):
    """A broker that keeps sessions and queued messages across its own restart."""
    store = tmp_path / "broker-store"
    store.mkdir()
    return broker_factory(f"persistence true\npersistence_location {store}/\n{as_invoker()}")


def assert_all_in_order(seen, total: int = TOTAL) -> None:
    got = numbers(seen)
    assert first_occurrences(got) == list(range(total)), "messages lost or out of order"
    by_number: dict[int, bytes] = {}
    for m in (m for m in seen if m.topic.endswith("/inspection")):
        n = json.loads(m.payload)["n"]
        assert by_number.setdefault(n, m.payload) == m.payload, (
            "a duplicate differs from the original"
        )


def all_arrived(total: int = TOTAL):
    return lambda seen: len(set(numbers(seen))) >= total


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_drains_in_order_and_marks_delivered(mosquitto, node_factory, subscribers, protocol):
    station = "pub-a5" if protocol == "5" else "pub-a3"
    sub = Subscriber(mosquitto.port, [f"reman/{station}/#"])
    subscribers.append(sub)
    node = await node_factory(
        mosquitto.port, station, config=fast_config(mosquitto.port, protocol=protocol)
    )
    add(node.outbox, messages(station, 0, 300) + messages(station, 300, 310, kind="stats", qos=0))
    node.publisher.notify()
    await node.publisher.wait_drained(20)
    # QoS 0 stats may overtake QoS 1 records queued for the subscriber: wait for both.
    seen = await asyncio.to_thread(
        sub.collect,
        lambda s: all_arrived(300)(s) and sum(m.topic.endswith("/stats") for m in s) >= 10,
    )
    assert_all_in_order(seen, 300)
    assert node.outbox.depth() == (0, None)
    assert node.publisher.delivered == 310


async def test_broker_outage_during_a_stream_loses_nothing(
    broker_factory, tmp_path, node_factory, subscribers
):
    broker = durable_broker(broker_factory, tmp_path)
    sub = Subscriber(broker.port, ["reman/pub-b/inspection"], client_id="sub-pub-b", durable=True)
    subscribers.append(sub)
    node = await node_factory(broker.port, "pub-b")

    async def stream() -> None:  # a station producing records at its own pace
        for start in range(0, TOTAL, 5):
            add(node.outbox, messages("pub-b", start, start + 5))
            node.publisher.notify()
            await asyncio.sleep(0.005)

    producer = asyncio.create_task(stream())
    await asyncio.to_thread(sub.collect, lambda s: len(s) >= 100)
    await asyncio.to_thread(broker.stop)
    await node.log.wait_for("broker_disconnected")
    assert node.outbox.depth()[0] > 0
    await asyncio.sleep(3)  # the outage itself: the broker stays down for several seconds
    await asyncio.to_thread(broker.start)
    await producer
    seen = await asyncio.to_thread(sub.collect, all_arrived(), 30)
    assert_all_in_order(seen)
    await node.publisher.wait_drained(20)
    assert node.outbox.depth()[0] == 0


def test_node_restarted_mid_outage_sends_the_rest(broker_factory, tmp_path, subscribers):
    broker = durable_broker(broker_factory, tmp_path)
    sub = Subscriber(broker.port, ["reman/pub-c/inspection"], client_id="sub-pub-c", durable=True)
    subscribers.append(sub)
    db_path = tmp_path / "journal.db"
    outbox = open_outbox(db_path)
    add(outbox, messages("pub-c", 0, 200))
    first = start_node(broker.port, "pub-c", db_path)
    second = None
    try:
        wait_line(first, "connected")
        sub.collect(all_arrived(200))
        broker.stop()
        add(outbox, messages("pub-c", 200, TOTAL))  # recorded while the broker is away
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = start_node(broker.port, "pub-c", db_path)
        wait_line(second, "started")
        broker.start()
        wait_line(second, "connected")
        seen = sub.collect(all_arrived(), 30)
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.kill()
                proc.wait()
                proc.stdout.close()
    assert_all_in_order(seen)


async def test_full_outbox_drops_by_policy_with_an_event(node_factory):
    node = await node_factory(free_port(), "pub-d", connect=False, publisher_kw={"max_rows": 10})
    add(
        node.outbox,
        messages("pub-d", 0, 5, kind="result")
        + messages("pub-d", 5, 20, kind="stats", qos=0)
        + messages("pub-d", 20, 25),
    )
    node.publisher.notify()
    events = await node.log.wait_for("outbox_full")
    assert events[0].detail["dropped"] == {"stats": 15}
    assert node.outbox.depth()[0] == 10
    kinds = [r.kind for r in node.outbox.pending()]
    assert kinds == ["result"] * 5 + ["inspection"] * 5


@pytest.mark.expect_errors("outbox publisher failed", "publisher_failed")
async def test_a_failing_drain_is_reported_once_and_recovers(
    mosquitto, node_factory, subscribers, tmp_path
):
    sub = Subscriber(mosquitto.port, ["reman/pub-e/inspection"])
    subscribers.append(sub)
    node = await node_factory(mosquitto.port, "pub-e")
    with node.outbox.db.conn:  # the outbox table vanishes under the publisher (a real SQLite error)
        node.outbox.db.conn.execute("ALTER TABLE outbox RENAME TO outbox_away")
    node.publisher.notify()
    failed = (await node.log.wait_for("publisher_failed"))[0]
    assert "no such table" in failed.message
    with node.outbox.db.conn:
        node.outbox.db.conn.execute("ALTER TABLE outbox_away RENAME TO outbox")
    add(node.outbox, messages("pub-e", 0, 20))
    node.publisher.notify()
    seen = await asyncio.to_thread(sub.collect, all_arrived(20))
    assert_all_in_order(seen, 20)
    assert len(node.log.of("publisher_failed")) == 1


async def test_a_backlog_of_large_messages_is_handed_over_a_few_megabytes_at_a_time(
    mosquitto, node_factory, subscribers
):
    # 24 snapshot-sized messages (1 MiB each) waiting: paho never holds more than
    # MAX_HANDED_BYTES of them at once, and every one arrives, in order.
    station = "pub-big"
    sub = Subscriber(mosquitto.port, [f"reman/{station}/inspection"])
    subscribers.append(sub)
    node = await node_factory(mosquitto.port, station)
    pad = "x" * 2**20
    big = [
        OutboxMessage(
            "inspection",
            f"reman/{station}/inspection",
            json.dumps({"id": f"m{n:05d}", "n": n, "pad": pad}).encode(),
            msg_id=f"m{n:05d}",
        )
        for n in range(24)
    ]
    held: list[int] = []
    publish = node.client.publish

    def counting(topic, payload, qos=1, retain=False):
        mid = publish(topic, payload, qos=qos, retain=retain)
        held.append(node.publisher._inflight_bytes + len(payload))
        return mid

    node.client.publish = counting  # type: ignore[method-assign]
    node.publisher.client = node.client
    add(node.outbox, big)
    node.publisher.notify()
    await node.publisher.wait_drained(60)
    seen = await asyncio.to_thread(sub.collect, all_arrived(24))
    assert_all_in_order(seen, 24)
    assert len(held) >= 24
    total = sum(len(m.payload) for m in big)
    assert max(held) <= min(MAX_HANDED_BYTES + 2**20 + 100, total // 2), "all handed at once"
    assert node.outbox.depth() == (0, None)
