"""A retained command is never obeyed: stored, published live, queued offline, or a clearing one.

Commands are requests made now. A retained `trigger/set` would start an inspection at every
reconnect; an empty retained message (how a PLC programmer clears one) would itself trigger; a
retained `override/set` would re-apply a person's override long after it was made.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from edge.contract import DecisionInfo, InspectionRecord, OverrideCommand
from edge.contract.timefmt import utc_now
from edge.events import Events
from edge.ids import new_id
from edge.journal.journal import Journal
from edge.mqtt.client import MqttClient
from tests.mqtt.test_client import publish_once
from tests.support.nodes import EventLog, fast_config


class CommandNode:
    """An MqttClient whose delivered commands land in a queue, and its event log."""

    def __init__(self, port: int, station: str, protocol: str = "5"):
        self.station = station
        self.port = port
        self.log = EventLog()
        self.received: asyncio.Queue = asyncio.Queue()
        self.client = MqttClient(
            station,
            fast_config(port, protocol=protocol),
            Events(station, [self.log]),
            on_command=lambda kind, payload: self.received.put_nowait((kind, payload)),
        )

    async def send(self, payload: bytes, retain: bool = False) -> None:
        topic = f"reman/{self.station}/trigger/set"
        await asyncio.to_thread(publish_once, self.port, topic, payload, retain)

    async def obeyed(self, payload: bytes) -> None:
        """Send a plain trigger and return once it arrived: everything sent before it was seen."""
        await self.send(payload)
        while True:
            kind, got = await asyncio.wait_for(self.received.get(), 10)
            assert kind == "trigger/set"
            if got == payload:
                return
            raise AssertionError(f"a command was obeyed that should not be: {got!r}")


@pytest.fixture
async def command_node(mosquitto):
    made: list[CommandNode] = []

    async def make(station: str, protocol: str = "5") -> CommandNode:
        node = CommandNode(mosquitto.port, station, protocol)
        made.append(node)
        await node.client.start()
        await node.client.wait_connected(10)
        return node

    yield make
    for node in made:
        await node.client.stop()
        await node.send(b"", retain=True)  # clear what a test left retained


@pytest.mark.parametrize("payload", [b'{"core":"LIVE"}', b""], ids=["trigger", "clearing"])
async def test_a_command_published_live_with_retain_is_refused(command_node, payload):
    node = await command_node(f"rt-live-{len(payload)}")
    await node.obeyed(b'{"core":"FIRST"}')  # subscribed
    await node.send(payload, retain=True)
    rejected = (await node.log.wait_for("command_rejected"))[0]
    await node.obeyed(b'{"core":"AFTER"}')  # nothing in between was handed on
    assert rejected.detail["reason"] == "retained" and rejected.level == "warning"
    assert rejected.detail["topic"] == f"reman/{node.station}/trigger/set"


async def test_a_retained_command_queued_while_offline_is_refused(mosquitto, command_node):
    node = await command_node("rt-queued")
    await node.obeyed(b'{"core":"FIRST"}')
    await node.client.stop()  # the broker keeps the session and queues for it
    await node.send(b'{"core":"QUEUED"}', retain=True)
    await node.send(b'{"core":"QUEUED-PLAIN"}')
    again = CommandNode(mosquitto.port, "rt-queued")
    await again.client.start()
    try:
        assert await asyncio.wait_for(again.received.get(), 10) == (
            "trigger/set",
            b'{"core":"QUEUED-PLAIN"}',
        )
        rejected = (await again.log.wait_for("command_rejected"))[0]
        assert rejected.detail["payload_start"] == '{"core":"QUEUED"}'
        await again.obeyed(b'{"core":"AFTER"}')
    finally:
        await again.client.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_a_stored_retained_command_is_never_obeyed(mosquitto, command_node, protocol):
    station = f"rt-stored-{protocol.replace('.', '')}"
    node = CommandNode(mosquitto.port, station)
    await node.send(b'{"core":"OLD"}', retain=True)  # stored before the node subscribes
    node = await command_node(station, protocol)
    await node.obeyed(b'{"core":"NEW"}')
    rejected = node.log.of("command_rejected")
    if protocol == "5":  # the broker was asked not to send it
        assert rejected == []
    else:  # 3.1.1 delivers it marked retained, and the node refuses it
        assert [e.detail["payload_start"] for e in rejected] == ['{"core":"OLD"}']


def _journal_record(journal: Journal, station: str, core: str) -> InspectionRecord:
    """A REMANUFACTURE record of `station` in `journal`, without an override."""
    record = InspectionRecord(
        id=new_id(),
        seq=journal.next_seq(),
        ts=utc_now(),
        station=station,
        core_id=core,
        decision=DecisionInfo(code=2, label="REMANUFACTURE", credit=1),
    )
    journal.record_inspection(record, [])
    return record


def _override(record: InspectionRecord, code: int, reason: str) -> bytes:
    return json.dumps({"id": record.id, "code": code, "reason": reason, "user": "erin"}).encode()


@pytest.mark.parametrize(
    "when, protocol",
    [("live", "5"), ("stored", "5"), ("stored", "3.1.1")],
    ids=["live", "stored-5", "stored-311"],
)
async def test_a_retained_override_is_never_applied(
    mosquitto, node_factory, tmp_path, when, protocol
):
    station = f"ro-{when}-{protocol.replace('.', '')}"
    topic = f"reman/{station}/override/set"
    journal = Journal.open(tmp_path / "journal.db")
    target, marker = (_journal_record(journal, station, c) for c in ("C7001", "C7002"))
    applied: asyncio.Queue = asyncio.Queue()

    def on_override(command: OverrideCommand) -> None:
        journal.apply_override(command.id, command.code, command.reason, command.user)
        applied.put_nowait(command.id)

    retained = _override(target, 4, "retained, not a request")
    send = lambda payload, retain=False: asyncio.to_thread(  # noqa: E731
        publish_once, mosquitto.port, topic, payload, retain
    )
    if when == "stored":
        await send(retained, retain=True)  # stored before the node subscribes
    node = await node_factory(
        mosquitto.port,
        station,
        outbox=journal.outbox,
        config=fast_config(mosquitto.port, protocol=protocol),
        router_kw={"on_override": on_override},
    )
    try:
        if when == "live":
            await send(retained, retain=True)
        await send(_override(marker, 3, "plain"))  # on the same topic, after the retained one
        assert await asyncio.wait_for(applied.get(), 10) == marker.id
    finally:
        await node.stop()
        await send(b"", retain=True)  # clear what this test left retained, once nobody listens

    assert applied.empty()
    kept = journal.get(target.id)
    assert kept.override is None and kept.decision.code == 2
    assert journal.overrides(target.id) == []
    assert journal.get(marker.id).override.code == 3
    rejected = node.log.of("command_rejected")
    if when == "stored" and protocol == "5":  # the broker was asked not to send it
        assert rejected == []
    else:  # delivered marked retained, and the node refuses it
        assert [(e.level, e.detail["reason"], e.detail["topic"]) for e in rejected] == [
            ("warning", "retained", topic)
        ]
    journal.close()
