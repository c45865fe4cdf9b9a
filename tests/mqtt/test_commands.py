"""Commands over MQTT: hundreds of malformed payloads are refused with events, the node carries on."""

from __future__ import annotations

import asyncio
import json
import random

import paho.mqtt.client as mqtt
import pytest

from edge.contract import (
    AckCommand,
    FrameRequest,
    ModelCommand,
    OverrideCommand,
    Topics,
    TriggerCommand,
)
from edge.events import Events
from edge.mqtt.commands import CommandRouter
from tests.support.nodes import EventLog

KINDS = ("trigger/set", "ack/set", "override/set")


def malformed_payloads() -> list[tuple[str, bytes]]:
    """At least 200 (kind, payload) pairs that the contract refuses."""
    rng = random.Random(6)
    out: list[tuple[str, bytes]] = []
    for i in range(90):  # random bytes; a leading 0xff is never valid UTF-8
        out.append((KINDS[i % 3], b"\xff" + rng.randbytes(rng.randint(0, 200))))
    wrong = {
        "trigger/set": [
            b'{"core":123}',
            b'{"core":""}',
            b'{"core":"bad id with spaces"}',
            b'{"core":"' + b"C" * 65 + b'"}',
            b'{"extra":1}',
            b"[]",
            b"42",
            b'"C1"',
            b"null",
            b'{"core":"C1",}',
            b'{"core":null,"x":[]}',
        ],
        "ack/set": [
            b"",
            b"{}",
            b'{"seq":"7"x}',
            b'{"seq":-1}',
            b'{"seq":1.5}',
            b'{"seq":2147483648}',
            b'{"seq":null}',
            b'{"seq":[1]}',
            b'{"seq":NaN}',
            b'{"seq":Infinity}',
            b'{"seq":1,"extra":true}',
            b"true",
            b'{"seq":"7"}',
            b'{"seq":true}',
        ],
        "override/set": [
            b"{}",
            b'{"id":"x","code":0,"reason":"r","user":"u"}',
            b'{"id":"x","code":5,"reason":"r","user":"u"}',
            b'{"id":"","code":1,"reason":"r","user":"u"}',
            b'{"id":"x","code":1,"reason":"","user":"u"}',
            b'{"id":"x","code":1,"reason":"r"}',
            b'{"id":"x","code":"1","reason":"r","user":"u"}',
            b'{"id":"x","code":1,"reason":"r","user":"u","credit":9}',
            b'{"id":"x","code":1,"reason":"' + b"r" * 501 + b'","user":"u"}',
        ],
    }
    for kind, payloads in wrong.items():
        out += [(kind, p) for p in payloads]
    for kind in KINDS:
        out.append((kind, b'{"a":' * 5000 + b"1" + b"}" * 5000))  # deep nesting, too big
        out.append((kind, b"[" * 2000 + b"]" * 2000))  # deep nesting within the size limit
        out.append((kind, b"{" + b'"k":1,' * 100_000 + b'"z":2}'))  # huge
        out.append((kind, json.dumps({"core": "C1", "pad": "x" * 5000}).encode()))
        out.append((kind, b"\x00" * 10))
        out.append((kind, '{"core":"Ç1"}'.encode()))
    for i in range(60):  # truncated valid-looking JSON
        kind = KINDS[i % 3]
        text = {
            "trigger/set": b'{"core":"C1234"}',
            "ack/set": b'{"seq":12}',
            "override/set": b'{"id":"i1","code":3,"reason":"r","user":"u"}',
        }[kind]
        out.append((kind, text[: 1 + i % (len(text) - 1)]))
    return out


def test_there_are_at_least_200_malformed_payloads():
    assert len(malformed_payloads()) >= 200


async def test_malformed_commands_are_rejected_and_a_valid_one_still_works(mosquitto, node_factory):
    triggers: asyncio.Queue[TriggerCommand] = asyncio.Queue()
    node = await node_factory(
        mosquitto.port,
        "cmd-a",
        router_kw={
            "on_trigger": triggers.put_nowait,
            "on_ack": lambda c: None,
            "on_override": lambda c: None,
        },
    )
    bad = malformed_payloads()
    topics = Topics("cmd-a")
    await asyncio.to_thread(
        publish_all,
        mosquitto.port,
        [(topics.topic(k), p) for k, p in bad] + [(topics.trigger_set, b'{"core":"C77"}')],
    )
    assert (await asyncio.wait_for(triggers.get(), 20)).core == "C77"
    rejected = await node.log.wait_for("command_rejected", count=len(bad))
    assert node.router.rejected == len(bad) and node.router.accepted == 1
    assert node.client.connected
    first = rejected[0].detail
    assert (
        first["topic"].startswith("reman/cmd-a/") and first["reason"] and "payload_start" in first
    )
    assert all(len(e.detail["payload_start"]) <= 4 * 64 for e in rejected)


def publish_all(port: int, items: list[tuple[str, bytes]]) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in items]
        for info in infos:
            info.wait_for_publish(20)
    finally:
        client.disconnect()
        client.loop_stop()


def router(log: EventLog, **kw) -> CommandRouter:
    return CommandRouter(Events("cmd-b", [log]), Topics("cmd-b"), **kw)


def test_override_by_a_user_not_on_the_list_is_refused():
    log = EventLog()
    taken: list[OverrideCommand] = []
    r = router(log, on_override=taken.append, override_users=["alice"])
    assert not r.handle("override/set", b'{"id":"i1","code":3,"reason":"dent","user":"mallory"}')
    assert r.handle("override/set", b'{"id":"i1","code":3,"reason":"dent","user":"alice"}')
    assert [c.user for c in taken] == ["alice"]
    assert log.of("command_rejected")[0].detail["reason"] == "user 'mallory' may not override"


@pytest.mark.expect_errors("command handler for ack/set failed", "command_failed")
def test_handler_failure_is_an_event_and_the_router_carries_on():
    log = EventLog()

    def broken(command: AckCommand) -> None:
        raise RuntimeError("journal is busy")

    r = router(log, on_ack=broken)
    assert not r.handle("ack/set", b'{"seq":1}')
    assert log.codes() == ["command_failed"]
    assert "journal is busy" in log.events[0].message


async def test_async_handler_is_run_as_a_task():
    log = EventLog()
    done: asyncio.Future = asyncio.get_running_loop().create_future()

    async def on_trigger(command: TriggerCommand) -> None:
        done.set_result(command.core)

    r = router(log, on_trigger=on_trigger)
    assert r.handle("trigger/set", b"")
    assert await asyncio.wait_for(done, 5) is None


@pytest.mark.parametrize("kind", KINDS)
def test_a_command_without_a_handler_is_refused(kind):
    log = EventLog()
    r = router(log)
    payload = {
        "trigger/set": b"",
        "ack/set": b'{"seq":3}',
        "override/set": b'{"id":"i","code":1,"reason":"r","user":"u"}',
    }[kind]
    assert not r.handle(kind, payload)
    assert log.codes() == ["command_rejected"]


def test_frame_and_model_commands_are_schema_checked_and_model_changes_need_a_listed_user():
    log = EventLog()
    frames: list[FrameRequest] = []
    changes: list[ModelCommand] = []
    r = router(log, on_frame_request=frames.append, on_model=changes.append, override_users=["ada"])
    refused = [
        ("model/set", b'{"action":"promote","reason":"r","user":"ada"}'),  # no version
        ("model/set", b'{"action":"rollback","version":"3","reason":"r","user":"ada"}'),
        ("model/set", b'{"action":"delete","version":"3","reason":"r","user":"ada"}'),
        ("model/set", b'{"action":"promote","version":"3","reason":"","user":"ada"}'),
        ("model/set", b'{"action":"promote","version":"3","reason":"r","user":"mallory"}'),
        ("frame/get", b'{"id":"i1","user":"erin","view":0}'),
        ("frame/get", b'{"id":"i1"}'),
    ]
    for kind, payload in refused:
        assert not r.handle(kind, payload), payload
    assert r.handle("model/set", b'{"action":"promote","version":"3","reason":"r","user":"ada"}')
    assert r.handle("frame/get", b'{"id":"i1","user":"mallory"}')  # reading needs no listing
    assert [(c.action, c.version) for c in changes] == [("promote", "3")]
    assert [(f.id, f.view) for f in frames] == [("i1", 1)]
    reasons = [e.detail["reason"] for e in log.of("command_rejected")]
    assert len(reasons) == len(refused) and "user 'mallory' may not change models" in reasons


def test_records_requests_draw_on_a_budget_that_refills_and_refusals_are_one_event_a_minute():
    log = EventLog()
    now = [100.0]
    asked: list[tuple[int, int]] = []
    r = router(
        log,
        on_records_request=lambda c: asked.append((c.from_seq, c.to_seq)),
        records_per_minute=1200,
        clock=lambda: now[0],
    )

    def ask(first: int, last: int) -> bool:
        payload = json.dumps({"from_seq": first, "to_seq": last, "user": "gw"}).encode()
        return r.handle("records/get", payload)

    assert ask(1, 1000) and ask(1001, 1150)  # 1150 of 1200
    assert not ask(1151, 1300)  # 150 more: over
    assert not ask(1151, 1300) and not ask(1151, 1300)  # counted, no new event
    now[0] += 5  # 5 s refill 100: 150 held
    assert ask(1151, 1300)
    assert asked == [(1, 1000), (1001, 1150), (1151, 1300)]
    (first,) = log.of("command_rejected")
    assert first.detail["refused_since_last"] == 0 and "over the budget of 1200" in first.message
    now[0] += 60  # a minute after the first refusal event: the next refusal is an event again
    assert ask(1, 999) and not ask(1, 999)
    assert [e.detail["refused_since_last"] for e in log.of("command_rejected")] == [0, 2]
    assert r.rejected == 4 and r.accepted == 4
