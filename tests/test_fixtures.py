"""The shared fixtures work: a paho client talks through the broker; asyncua serves values."""

from __future__ import annotations

import paho.mqtt.client as mqtt
from asyncua import Client


def test_paho_publishes_and_receives_through_fixture_broker(mosquitto, listener_factory):
    listener = listener_factory(mosquitto, "fixture/test")
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    publisher.connect(mosquitto.host, mosquitto.port)
    publisher.loop_start()
    try:
        publisher.publish("fixture/test", b"hello", qos=1).wait_for_publish(10)
        message = listener.wait_topic("fixture/test")
    finally:
        publisher.loop_stop()
        publisher.disconnect()
    assert message.payload == b"hello"


def test_broker_can_be_stopped_and_restarted_on_same_port(broker_factory, listener_factory):
    broker = broker_factory()
    port = broker.port
    broker.stop()
    broker.start()
    assert broker.port == port
    listener = listener_factory(broker, "after/restart")
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    publisher.connect(broker.host, broker.port)
    publisher.loop_start()
    publisher.publish("after/restart", b"1", qos=1).wait_for_publish(10)
    publisher.loop_stop()
    publisher.disconnect()
    assert listener.wait_topic("after/restart").payload == b"1"


async def test_asyncua_server_fixture_serves_values(opcua_server):
    server, nodes = opcua_server
    await nodes["leak_rate_ml_min"].write_value(3.25)
    async with Client(server.endpoint_url, timeout=5) as client:
        node = client.get_node(nodes["leak_rate_ml_min"].nodeid)
        assert await node.read_value() == 3.25
