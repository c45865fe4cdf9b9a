"""Sparkplug B against a real mosquitto, every payload decoded by Eclipse Tahu's decoder."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import paho.mqtt.client as mqtt
import pytest

from edge.contract.sparkplug import REBIRTH, DataType, HostState, MetricValue, encode
from tests.conftest import REPO
from tests.support.journal_records import make_record
from tests.support.sparkplug import make_sparkplug_node, metrics_by_name, tahu_decode

GROUP = "spBv1.0/reman-test"


async def wait(listener, predicate, timeout_s: float = 15.0):
    """The first matching message, waited for off the event loop (the node runs on it)."""
    return await asyncio.to_thread(listener.wait_for, predicate, timeout_s)


def on(topic_part: str):
    return lambda m: f"/{topic_part}/" in m.topic


def count_of(listener, topic_part: str, n: int):
    return lambda m: len([x for x in listener.seen if f"/{topic_part}/" in x.topic]) >= n


def from_node(listener) -> list:
    """What the edge node published (not the commands and STATE the test sent)."""
    return [
        m
        for m in listener.drain()
        if m.topic.split("/")[2] in ("NBIRTH", "DBIRTH", "DDATA", "NDEATH")
    ]


def publish(broker, topic: str, payload: bytes, retain: bool = False) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()


def rebirth_command(value: bool = True) -> bytes:
    return encode([MetricValue(REBIRTH, DataType.BOOLEAN, value)], seq=0)


@pytest.fixture
async def sparkplug_nodes(tmp_path):
    made = []

    def make(port, **kw):
        node = make_sparkplug_node(tmp_path, port, **kw)
        made.append(node)
        return node

    yield make
    for node in made:
        await node.stop()


async def start(node) -> None:
    node.publisher.start()
    await node.client.start()


async def test_births_list_every_metric_with_types_units_and_bdseq(
    mosquitto, listener_factory, sparkplug_nodes
):
    listener = listener_factory(mosquitto, f"{GROUP}/#")
    node = sparkplug_nodes(mosquitto.port, node_id="births")
    await start(node)
    nbirth = await wait(listener, on("NBIRTH"))
    dbirth = await wait(listener, on("DBIRTH"))
    assert not nbirth.retain and nbirth.qos == 0 and dbirth.topic.endswith("/births/st1")
    n, d = tahu_decode([nbirth.payload, dbirth.payload])
    assert n["seq"] == 0 and d["seq"] == 1
    node_metrics = metrics_by_name(n)
    assert node_metrics["bdSeq"]["type"] == "Int64" and node_metrics["bdSeq"]["value"] == 0
    assert node_metrics["Node Control/Rebirth"] == {
        **node_metrics["Node Control/Rebirth"],
        "type": "Boolean",
        "value": False,
    }
    device = metrics_by_name(d)
    expected = {
        "Inspection/Id": "String",
        "Inspection/Seq": "Int64",
        "Core/Id": "String",
        "Core/Family": "String",
        "Decision/Code": "Int32",
        "Decision/Label": "String",
        "Decision/Credit": "Int32",
        "Model/Version": "String",
        "Rules/Version": "String",
        "Defects/corrosion/Area": "Float",
        "Defects/corrosion/Grade": "Int32",
        "Defects/corrosion/Confidence": "Float",
        "Defects/wear/Area": "Float",
        "Defects/coating_damage/Grade": "Int32",
        "Measurements/leak_rate_ml_min/Value": "Double",
        "Measurements/leak_rate_ml_min/Status": "String",
        "Measurements/flow_l_min/Value": "Double",
    }
    assert {name: device[name]["type"] for name in expected} == expected
    assert device["Defects/corrosion/Area"]["properties"]["engUnit"]["value"] == "%"
    assert device["Measurements/flow_l_min/Value"]["properties"]["engUnit"]["value"] == "l/min"
    assert device["Decision/Code"]["value"] is None  # nothing inspected yet


async def test_ddata_per_inspection_with_the_records_values(
    mosquitto, listener_factory, sparkplug_nodes
):
    listener = listener_factory(mosquitto, f"{GROUP}/#")
    node = sparkplug_nodes(mosquitto.port, node_id="data")
    await start(node)
    await node.client.wait_ready(10)
    records = [make_record(i, core_id=f"HGP-{i:04d}") for i in range(1, 4)]
    node.queue(records)
    await wait(listener, count_of(listener, "DDATA", 3))
    data = tahu_decode([m.payload for m in listener.seen if "/DDATA/" in m.topic])
    assert [p["seq"] for p in data] == [2, 3, 4]
    for record, payload in zip(records, data, strict=True):
        metrics = metrics_by_name(payload)
        assert metrics["Core/Id"]["value"] == record.core_id
        assert metrics["Inspection/Seq"]["value"] == record.seq
        assert (
            metrics["Decision/Code"]["value"] == 1 and metrics["Decision/Label"]["value"] == "REUSE"
        )
        assert metrics["Decision/Credit"]["value"] == 1
        assert metrics["Defects/corrosion/Grade"]["value"] == 1
        assert metrics["Defects/corrosion/Area"]["value"] == pytest.approx(0.1)
        assert metrics["Measurements/leak_rate_ml_min/Value"]["value"] == pytest.approx(3.2)
        assert metrics["Measurements/leak_rate_ml_min/Status"]["value"] == "Good"
        assert metrics["Model/Version"]["value"] == "1.0.0"
        assert metrics["Rules/Version"]["value"] == "0123456789ab"
        assert not any(m.get("isHistorical") for m in payload["metrics"])
    await node.publisher.wait_drained(10)
    assert node.outbox.pending(kinds=("sparkplug",)) == []


async def test_seq_wraps_past_255(mosquitto, listener_factory, sparkplug_nodes):
    listener = listener_factory(mosquitto, f"{GROUP}/#")
    node = sparkplug_nodes(mosquitto.port, node_id="wrap")
    await start(node)
    await node.client.wait_ready(10)
    node.queue([make_record(i) for i in range(1, 301)])
    await wait(listener, count_of(listener, "DDATA", 300), 30)
    data = tahu_decode([m.payload for m in listener.seen if "/DDATA/" in m.topic])
    assert [p["seq"] for p in data] == [(2 + i) % 256 for i in range(300)]
    seqs = [metrics_by_name(p)["Inspection/Seq"]["value"] for p in data]
    assert seqs == list(range(1, 301))


def _start_proc(port: int, node_id: str, tmp_path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.sparkplug_proc",
            str(port),
            node_id,
            str(tmp_path / "kill.sparkplug.json"),
            str(tmp_path / "kill.db"),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _ready_line(proc: subprocess.Popen) -> int:
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("ready"):
            return int(line.split()[1])
    raise AssertionError(f"the Sparkplug process exited ({proc.wait()}) before its births")


def test_ndeath_is_the_will_with_the_births_bdseq_and_a_restart_takes_the_next(
    mosquitto, listener_factory, tmp_path
):
    listener = listener_factory(mosquitto, f"{GROUP}/+/killed")
    proc = _start_proc(mosquitto.port, "killed", tmp_path)
    try:
        _ready_line(proc)
        first = listener.wait_for(on("NBIRTH"))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        death = listener.wait_for(on("NDEATH"))
        assert death.qos == 1 and not death.retain
        proc = _start_proc(mosquitto.port, "killed", tmp_path)
        _ready_line(proc)
        second = listener.wait_for(lambda m: "/NBIRTH/" in m.topic and m is not first)
    finally:
        proc.kill()
        proc.wait(10)
    born, died, reborn = tahu_decode([first.payload, death.payload, second.payload])
    bdseq = metrics_by_name(born)["bdSeq"]["value"]
    assert metrics_by_name(died)["bdSeq"]["value"] == bdseq
    assert metrics_by_name(reborn)["bdSeq"]["value"] == (bdseq + 1) % 256
    assert "seq" not in died


async def test_rebirth_by_ncmd_and_bad_commands_refused(
    mosquitto, listener_factory, sparkplug_nodes
):
    listener = listener_factory(mosquitto, f"{GROUP}/#")
    node = sparkplug_nodes(mosquitto.port, node_id="cmd")
    await start(node)
    await wait(listener, on("DBIRTH"))
    ncmd = f"{GROUP}/NCMD/cmd"
    await asyncio.to_thread(publish, mosquitto, ncmd, b"\xff\xff not protobuf")
    other = encode([MetricValue("Node Control/Reboot", DataType.BOOLEAN, True)], seq=0)
    await asyncio.to_thread(publish, mosquitto, ncmd, other)
    await asyncio.to_thread(publish, mosquitto, f"{GROUP}/DCMD/cmd/other-device", rebirth_command())
    refused = await node.log.wait_for("sparkplug_command_refused", 3)
    assert [e.detail["reason"] for e in refused] == [
        "malformed",
        "unknown_metric",
        "unknown_device",
    ]
    assert node.client.births == 1
    await asyncio.to_thread(publish, mosquitto, ncmd, rebirth_command())
    await node.log.wait_for("sparkplug_rebirth")
    await wait(listener, count_of(listener, "DBIRTH", 2))
    births = [m for m in listener.seen if "BIRTH" in m.topic]
    decoded = tahu_decode([m.payload for m in births])
    assert [p["seq"] for p in decoded] == [0, 1, 0, 1]
    assert (
        metrics_by_name(decoded[2])["bdSeq"]["value"]
        == metrics_by_name(decoded[0])["bdSeq"]["value"]
    )
    node.queue([make_record(7)])  # still running: data follows the rebirth
    data = await wait(listener, on("DDATA"))
    assert tahu_decode([data.payload])[0]["seq"] == 2


async def test_primary_host_state_holds_and_releases_births(
    broker_factory, listener_factory, sparkplug_nodes
):
    broker = broker_factory()
    state = "spBv1.0/STATE/scada"
    await asyncio.to_thread(publish, broker, state, HostState(False, 1).to_payload(), True)
    listener = listener_factory(broker, f"{GROUP}/#")
    node = sparkplug_nodes(broker.port, node_id="host", primary_host_id="scada")
    await start(node)
    await node.log.wait_for("sparkplug_connected")
    node.queue([make_record(1)])
    # a marker: once this refusal is seen, the retained STATE (sent at subscribe) was handled
    await asyncio.to_thread(publish, broker, f"{GROUP}/NCMD/host", b"marker")
    await node.log.wait_for("sparkplug_command_refused")
    assert node.client.births == 0 and not [m for m in listener.drain() if "BIRTH" in m.topic]
    await asyncio.to_thread(publish, broker, state, HostState(True, 2).to_payload(), True)
    await wait(listener, on("DDATA"))
    sent = from_node(listener)
    assert [m.topic.split("/")[2] for m in sent] == ["NBIRTH", "DBIRTH", "DDATA"]
    (data,) = tahu_decode([sent[2].payload])
    assert all(m["isHistorical"] for m in data["metrics"])  # it waited for the host
    await asyncio.to_thread(publish, broker, state, HostState(False, 3).to_payload(), True)
    await node.log.wait_for("sparkplug_host_offline")
    await asyncio.to_thread(publish, broker, state, HostState(True, 0).to_payload(), True)  # stale
    node.queue([make_record(2)])
    await asyncio.to_thread(publish, broker, f"{GROUP}/NCMD/host", b"marker")
    await node.log.wait_for("sparkplug_command_refused", 2)
    assert len([m for m in listener.drain() if "/DDATA/" in m.topic]) == 1
    await asyncio.to_thread(publish, broker, state, HostState(True, 4).to_payload(), True)
    await wait(listener, count_of(listener, "DDATA", 2))
    assert [m.topic.split("/")[2] for m in from_node(listener)[3:]] == ["NBIRTH", "DBIRTH", "DDATA"]


async def test_broker_outage_delivers_the_backlog_in_order_as_historical(
    broker_factory, listener_factory, sparkplug_nodes
):
    broker = broker_factory()
    state = "spBv1.0/STATE/scada"
    listener = listener_factory(broker, f"{GROUP}/#")
    node = sparkplug_nodes(broker.port, node_id="outage", primary_host_id="scada")
    await start(node)
    await node.log.wait_for("sparkplug_connected")
    await asyncio.to_thread(publish, broker, state, HostState(True, 1).to_payload(), True)
    node.queue([make_record(1), make_record(2)])
    await wait(listener, count_of(listener, "DDATA", 2))
    await asyncio.to_thread(broker.stop)
    await node.log.wait_for("sparkplug_disconnected")
    node.queue([make_record(i) for i in range(3, 23)])  # inspections during the outage
    await asyncio.to_thread(broker.start)
    await node.log.wait_for("sparkplug_connected", 2)
    # the host comes back after the broker (its STATE was lost with the broker's memory)
    after = listener_factory(broker, f"{GROUP}/#")
    await asyncio.to_thread(publish, broker, state, HostState(True, 2).to_payload(), True)
    await wait(after, count_of(after, "DDATA", 20), 20)
    node.queue([make_record(23)])
    await wait(after, count_of(after, "DDATA", 21))
    seen = from_node(after)
    assert [m.topic.split("/")[2] for m in seen[:2]] == ["NBIRTH", "DBIRTH"]
    births_and_data = tahu_decode([m.payload for m in seen])
    bdseq = [metrics_by_name(p)["bdSeq"]["value"] for p in births_and_data[:1]]
    first = tahu_decode([listener.seen[0].payload])[0]
    assert bdseq == [metrics_by_name(first)["bdSeq"]["value"] + 1]
    data = births_and_data[2:]
    assert [metrics_by_name(p)["Inspection/Seq"]["value"] for p in data] == list(range(3, 24))
    assert [p["seq"] for p in data] == list(range(2, 23))
    assert all(all(m["isHistorical"] for m in p["metrics"]) for p in data[:20])
    assert not any(m.get("isHistorical") for m in data[20]["metrics"])
