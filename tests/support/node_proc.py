"""A node process for kill tests: connect with edge.mqtt.client, drain an outbox, run until killed.

    python -m tests.support.node_proc PORT STATION DB_PATH

Prints `started` once the client runs and `connected` once the broker accepted it.
"""

from __future__ import annotations

import asyncio
import sys

from edge.events import Events
from edge.mqtt.client import MqttClient
from edge.mqtt.publisher import Publisher
from tests.support.nodes import fast_config, open_outbox


async def main(port: int, station: str, db_path: str) -> None:
    events = Events(station)
    client = MqttClient(station, fast_config(port), events)
    publisher = Publisher(open_outbox(db_path), client, events)
    await client.start()
    publisher.start()
    print("started", flush=True)
    await client.wait_connected(30)
    print("connected", flush=True)
    await asyncio.Event().wait()  # until killed


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
