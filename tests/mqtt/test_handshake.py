"""The PLC handshake over a real broker: result (retained, with seq) -> ack/set; timeouts are events."""

from __future__ import annotations

import asyncio

from edge.contract import AckCommand, Credit, Disposition, Result
from edge.journal.outbox import OutboxMessage
from edge.mqtt.handshake import Handshake
from tests.mqtt.test_client import publish_once
from tests.support.nodes import Subscriber, add


def result_message(station: str, seq: int) -> OutboxMessage:
    payload = Result(
        seq=seq, core=f"C{seq}", code=Disposition.REMANUFACTURE, credit=Credit.FULL
    ).to_payload()
    return OutboxMessage(
        "result", f"reman/{station}/result", payload, qos=1, retain=True, msg_id=f"r{seq}"
    )


async def handshake_node(node_factory, port: int, station: str, ack_timeout_s: float):
    holder: dict = {}
    node = await node_factory(
        port,
        station,
        router_kw={"on_ack": lambda c: holder["hs"].ack(c)},
        publisher_kw={"on_delivered": lambda row: holder["hs"].on_delivered(row)},
    )
    holder["hs"] = Handshake(node.events, ack_timeout_s)
    return node, holder["hs"]


async def wait_until(predicate, timeout_s: float = 10.0) -> None:
    async def loop() -> None:
        while not predicate():
            await asyncio.sleep(0.01)  # polling our own state, set by the broker's traffic

    await asyncio.wait_for(loop(), timeout_s)


async def test_plc_reads_the_retained_result_and_acknowledges(mosquitto, node_factory, subscribers):
    node, handshake = await handshake_node(node_factory, mosquitto.port, "hs-a", ack_timeout_s=30)
    add(node.outbox, [result_message("hs-a", 41)])
    node.publisher.notify()
    await wait_until(lambda: handshake.pending_seq == 41)
    # The PLC subscribes after the result went out: it is retained, so the PLC still reads it.
    plc = Subscriber(mosquitto.port, ["reman/hs-a/result"])
    subscribers.append(plc)
    seen = await asyncio.to_thread(plc.collect, lambda s: len(s) >= 1)
    assert (
        seen[0].retain and seen[0].payload == b'{"seq":41,"core":"C41","code":2,"credit":1,"err":0}'
    )
    await asyncio.to_thread(publish_once, mosquitto.port, "reman/hs-a/ack/set", b'{"seq":41}')
    await wait_until(lambda: handshake.pending_seq is None)
    await asyncio.to_thread(publish_once, mosquitto.port, "reman/hs-a/ack/set", b'{"seq":41}')
    await node.log.wait_for("ack_repeated")
    assert not node.log.of("ack_timeout")
    handshake.close()


async def test_missing_ack_is_an_event_and_a_late_ack_is_noted(mosquitto, node_factory):
    node, handshake = await handshake_node(node_factory, mosquitto.port, "hs-b", ack_timeout_s=0.2)
    add(node.outbox, [result_message("hs-b", 7)])
    node.publisher.notify()
    timeout = (await node.log.wait_for("ack_timeout"))[0]
    assert timeout.detail["seq"] == 7 and timeout.level == "warning"
    assert handshake.pending_seq is None
    await asyncio.to_thread(publish_once, mosquitto.port, "reman/hs-b/ack/set", b'{"seq":7}')
    assert (await node.log.wait_for("ack_late"))[0].detail["seq"] == 7
    await asyncio.to_thread(publish_once, mosquitto.port, "reman/hs-b/ack/set", b'{"seq":999}')
    assert (await node.log.wait_for("ack_unknown"))[0].detail["seq"] == 999
    handshake.close()


async def test_each_result_waits_for_its_own_ack():
    from edge.events import Events
    from tests.support.nodes import EventLog

    log = EventLog()
    handshake = Handshake(Events("hs-c", [log]), ack_timeout_s=60)
    for seq in (1, 2, 3):
        handshake.result_published(seq)
    handshake.result_published(2)  # a resend of the same result starts nothing new
    assert handshake.waiting == [1, 2, 3] and handshake.pending_seq == 3
    assert handshake.ack(AckCommand(seq=3))
    assert handshake.pending_seq == 2
    handshake.close()
    assert handshake.waiting == []


async def test_ack_arriving_before_the_puback_is_not_unknown():
    """A quick PLC may ack before the node has the broker's PUBACK for the result."""
    from edge.events import Events

    seen = []
    handshake = Handshake(Events("st1", [seen.append]), ack_timeout_s=0.2)
    assert handshake.ack(AckCommand(seq=7)) is False
    handshake.result_published(7)
    assert handshake.waiting == []
    unknown = asyncio.get_running_loop().create_future()
    handshake.events.add_sink(
        lambda e: e.code == "ack_unknown" and not unknown.done() and unknown.set_result(e)
    )
    handshake.ack(AckCommand(seq=99))
    event = await asyncio.wait_for(unknown, 5)
    assert event.detail["seq"] == 99
    assert [e.code for e in seen if e.code == "ack_unknown"] == ["ack_unknown"]
    handshake.close()
