"""The MQTT side with the real journal: record -> result and record out; override twice -> once."""

from __future__ import annotations

import asyncio
import json

import jsonschema

from edge.contract import DecisionInfo, InspectionRecord, OverrideCommand, Result, Topics
from edge.contract.timefmt import utc_now
from edge.ids import new_id
from edge.journal.journal import Journal
from edge.journal.outbox import OutboxMessage
from tests.conftest import REPO
from tests.mqtt.test_client import publish_once
from tests.support.nodes import Subscriber

STATION = "jf-a"
SCHEMAS = {
    kind: json.loads((REPO / f"docs/mqtt/{kind}.schema.json").read_text())
    for kind in ("inspection", "result")
}
TOPICS = Topics(STATION)


def inspection_messages(record: InspectionRecord) -> list[OutboxMessage]:
    result = Result.build(
        seq=record.seq,
        core=record.core_id,
        code=int(record.effective_code()),
        credit=int(record.effective_credit()),
    )
    return [
        OutboxMessage(
            "result", TOPICS.result, result.to_payload(), qos=1, retain=True, msg_id=record.id
        ),
        OutboxMessage(
            "inspection", TOPICS.inspection, record.to_json().encode(), qos=1, msg_id=record.id
        ),
    ]


def new_record(journal: Journal, core: str) -> InspectionRecord:
    return InspectionRecord(
        id=new_id(),
        seq=journal.next_seq(),
        ts=utc_now(),
        station=STATION,
        core_id=core,
        decision=DecisionInfo(code=2, label="REMANUFACTURE", credit=1),
    )


async def test_override_twice_changes_the_record_once(
    mosquitto, node_factory, subscribers, tmp_path
):
    journal = Journal.open(tmp_path / "journal.db")
    holder: dict = {}
    outcomes: asyncio.Queue = asyncio.Queue()

    def on_override(command: OverrideCommand) -> None:
        updated = journal.apply_override(
            command.id,
            command.code,
            command.reason,
            command.user,
            credit=command.credit,
            make_messages=inspection_messages,
        )
        holder["node"].publisher.notify()
        outcomes.put_nowait(updated)

    node = await node_factory(
        mosquitto.port,
        STATION,
        outbox=journal.outbox,
        router_kw={"on_override": on_override},
        publisher_kw={"sync": journal.sync},
    )
    holder["node"] = node
    gateway = Subscriber(mosquitto.port, [TOPICS.inspection, TOPICS.result])
    subscribers.append(gateway)

    record = new_record(journal, "C100")
    journal.record_inspection(record, inspection_messages(record))
    node.publisher.notify()
    await asyncio.to_thread(gateway.collect, lambda s: any(m.topic == TOPICS.inspection for m in s))

    override = json.dumps({"id": record.id, "code": 3, "reason": "crack", "user": "alice"}).encode()
    for _ in range(2):
        await asyncio.to_thread(publish_once, mosquitto.port, TOPICS.override_set, override)
    first, second = [await asyncio.wait_for(outcomes.get(), 10) for _ in range(2)]
    assert first is not None and second is None  # the repeat changed nothing
    # A later record is a marker: one node's messages keep their order, so a second republish
    # of the overridden record would arrive before it.
    marker = new_record(journal, "C101")
    journal.record_inspection(marker, inspection_messages(marker))
    node.publisher.notify()
    seen = await asyncio.to_thread(
        gateway.collect, lambda s: any(b'"C101"' in m.payload for m in s)
    )

    for m in seen:  # what a subscriber receives meets the published schemas
        jsonschema.validate(json.loads(m.payload), SCHEMAS[m.topic.rsplit("/", 1)[1]])
    records = [json.loads(m.payload) for m in seen if m.topic == TOPICS.inspection]
    overridden = [r for r in records if r["id"] == record.id and r.get("override")]
    assert len(overridden) == 1 and overridden[0]["override"]["code"] == 3
    assert overridden[0]["decision"]["code"] == 2  # the rules' decision stays
    results = [json.loads(m.payload) for m in seen if m.topic == TOPICS.result]
    assert [r["code"] for r in results if r["seq"] == record.seq] == [2, 3]
    assert len(journal.overrides(record.id)) == 1
    await node.publisher.wait_drained(10)
    assert journal.outbox.depth()[0] == 0
    journal.close()


def test_a_redelivered_older_override_does_not_undo_a_newer_one(tmp_path):
    from edge.events import Events
    from edge.mqtt.commands import CommandRouter

    journal = Journal.open(tmp_path / "journal.db")
    record = new_record(journal, "C200")
    journal.record_inspection(record, inspection_messages(record))

    def on_override(command: OverrideCommand):
        return journal.apply_override(
            command.id,
            command.code,
            command.reason,
            command.user,
            credit=command.credit,
            command_id=command.command_id,
        )

    router = CommandRouter(Events(STATION), TOPICS, on_override=on_override)
    first = {"id": record.id, "code": 3, "reason": "crack", "user": "alice", "command_id": "cmd-1"}
    second = {
        "id": record.id,
        "code": 1,
        "reason": "crack was dirt",
        "user": "bob",
        "command_id": "cmd-2",
    }
    for command in (first, second, first):  # QoS 1 redelivers the first after the second
        assert router.handle("override/set", json.dumps(command).encode())
    assert journal.get(record.id).override.code == 1
    assert [row.command_id for row in journal.overrides(record.id)] == ["cmd-1", "cmd-2"]
    journal.close()
