"""The MQTT client: connection state on the broker's word, persistent session, both protocols."""

from __future__ import annotations

import asyncio
import subprocess

import paho.mqtt.client as mqtt
import pytest

from edge.contract.broker import BrokerConfig
from edge.errors import BrokerError
from edge.events import Events
from edge.mqtt.client import MqttClient
from edge.ports import free_port
from tests.support.nodes import EventLog, Subscriber, as_invoker, fast_config


def publish_once(port: int, topic: str, payload: bytes, retain: bool = False, **kw) -> None:
    """Publish one QoS 1 message from a separate client and wait for its PUBACK."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if "username" in kw:
        client.username_pw_set(kw["username"], kw.get("password"))
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


async def test_online_retained_after_connect_and_offline_on_clean_stop(
    mosquitto, node_factory, subscribers
):
    node = await node_factory(mosquitto.port, "cl-a")
    sub = Subscriber(mosquitto.port, ["reman/cl-a/available"])
    subscribers.append(sub)
    assert (await asyncio.to_thread(sub.collect, lambda s: len(s) >= 1))[0].payload == b"online"
    assert node.client.state.state == "connected" and node.client.state.since
    await node.client.stop()
    seen = await asyncio.to_thread(sub.collect, lambda s: s[-1].payload == b"offline")
    assert node.client.state.state == "disconnected"
    assert seen[-1].topic == "reman/cl-a/available"


async def test_failed_connect_is_not_connected_until_the_broker_answers(broker_factory, tmp_path):
    port = free_port()
    log = EventLog()
    client = MqttClient("cl-b", fast_config(port), Events("cl-b", [log]))
    await client.start()
    try:
        await log.wait_for("broker_unreachable")
        assert client.state.state == "connecting" and not client.connected
        with pytest.raises(BrokerError):
            await client.wait_connected(0.2)
        # Nobody listens yet; once a broker does on that port, the retry gets through.
        broker = broker_factory()
        broker.stop()
        broker.port = port
        broker.start()
        await client.wait_connected(10)
        assert client.connected
        assert log.codes().count("broker_unreachable") == 1  # one event per outage, not per retry
    finally:
        await client.stop()


@pytest.mark.expect_errors("broker_refused")
async def test_refused_login_is_an_event_and_never_connected(broker_factory, tmp_path):
    passwords = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(passwords), "cl-c", "right"], check=True)
    broker = broker_factory(f"allow_anonymous false\npassword_file {passwords}\n{as_invoker()}")
    log = EventLog()
    client = MqttClient(
        "cl-c", fast_config(broker.port, username="cl-c", password="wrong"), Events("cl-c", [log])
    )
    await client.start()
    try:
        events = await log.wait_for("broker_refused")
        assert "authori" in events[0].message.lower() or "bad user" in events[0].message.lower()
        assert not client.connected and client.connects == 0
    finally:
        await client.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_commands_sent_while_node_is_away_arrive_after_reconnect(mosquitto, protocol):
    """Persistent session and stable client id: the broker keeps QoS 1 commands for the node."""
    station = "cl-d5" if protocol == "5" else "cl-d3"
    received: asyncio.Queue = asyncio.Queue()
    config = BrokerConfig(
        port=mosquitto.port, protocol=protocol, reconnect_min_s=0.1, reconnect_max_s=0.5
    )
    first = MqttClient(
        station, config, Events(station), on_command=lambda k, p: received.put_nowait((k, p))
    )
    await first.start()
    await first.wait_connected(10)
    await first.stop()
    await asyncio.to_thread(
        publish_once, mosquitto.port, f"reman/{station}/trigger/set", b'{"core":"C9"}'
    )
    second = MqttClient(
        station, config, Events(station), on_command=lambda k, p: received.put_nowait((k, p))
    )
    assert second.client_id == first.client_id == f"reman-{station}"
    await second.start()
    try:
        assert await asyncio.wait_for(received.get(), 10) == ("trigger/set", b'{"core":"C9"}')
    finally:
        await second.stop()


async def test_broker_outage_changes_state_only_on_the_brokers_word(broker_factory, node_factory):
    broker = broker_factory()
    node = await node_factory(broker.port, "cl-e")
    broker.stop()
    await node.log.wait_for("broker_disconnected")
    assert node.client.state.state == "disconnected"
    broker.start()
    await node.log.wait_for("broker_connected", count=2)
    assert node.client.connected and node.client.connects == 2
