"""Fixtures for the MQTT tests: nodes (client + publisher + router) on real brokers."""

from __future__ import annotations

import pytest

from edge.events import Events
from edge.mqtt.client import MqttClient
from edge.mqtt.commands import CommandRouter
from edge.mqtt.publisher import Publisher
from tests.support.nodes import EventLog, Node, fast_config, open_outbox


@pytest.fixture
async def node_factory(tmp_path):
    """Make nodes bound to a broker's port; all stopped at the end."""
    made: list[Node] = []

    async def make(
        port: int,
        station: str = "st1",
        *,
        outbox=None,
        config=None,
        connect: bool = True,
        router_kw: dict | None = None,
        publisher_kw: dict | None = None,
    ) -> Node:
        log = EventLog()
        events = Events(station, [log])
        outbox = outbox or open_outbox(tmp_path / f"{station}-{len(made)}.db")
        client = MqttClient(station, config or fast_config(port), events)
        publisher = Publisher(outbox, client, events, **(publisher_kw or {}))
        router = CommandRouter(events, client.topics, **(router_kw or {}))
        client.on_command = router.handle
        node = Node(client, publisher, outbox, log, events, router)
        made.append(node)
        await client.start()
        publisher.start()
        if connect:
            await client.wait_connected(10)
        return node

    yield make
    for node in made:
        await node.stop()


@pytest.fixture
def subscribers():
    """Subscriber clients made by a test; all closed at the end."""
    made = []
    yield made
    for sub in made:
        sub.close()
