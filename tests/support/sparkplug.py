"""Sparkplug test helpers: a Sparkplug edge node on a real outbox, and Tahu's decoder.

Every payload a test checks is decoded by Eclipse Tahu's JavaScript `sparkplug-payload` (run by
Node.js from tests/peers), not by our own codec: `tahu_decode([payload, ...])`.
"""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge.config.station import NodeMapping
from edge.contract import InspectionRecord, Topics
from edge.contract.broker import BrokerConfig
from edge.contract.sparkplug import SparkplugTopics
from edge.events import Events
from edge.journal.outbox import Outbox, OutboxMessage
from edge.mqtt.publisher import Publisher
from edge.mqtt.sparkplug.bdseq import BdSeqStore
from edge.mqtt.sparkplug.client import SparkplugClient
from edge.mqtt.sparkplug.metrics import KIND, Catalogue, ddata_companion
from tests.support.nodes import EventLog, open_outbox

PEERS = Path(__file__).resolve().parents[1] / "peers"
DECODER = PEERS / "decode_sparkplug.js"
MEASUREMENTS = {
    "leak_rate_ml_min": NodeMapping(node_id="ns=2;s=LeakRate", unit="ml/min"),
    "flow_l_min": NodeMapping(node_id="ns=2;s=Flow", unit="l/min"),
}


def tahu_decode(payloads: list[bytes]) -> list[dict]:
    """Each payload decoded by Tahu's sparkplug-payload; skips the test without Node.js."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js (`node`) is not installed: Tahu's Sparkplug decoder cannot run")
    if not (PEERS / "node_modules" / "sparkplug-payload").is_dir():
        pytest.skip(
            "tests/peers/node_modules lacks sparkplug-payload: run `scripts/bootstrap test`"
        )
    lines = "".join(base64.b64encode(p).decode() + "\n" for p in payloads)
    done = subprocess.run(
        [node, str(DECODER)], input=lines, capture_output=True, text=True, timeout=60, cwd=PEERS
    )
    assert done.returncode == 0, done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(out) == len(payloads), done.stderr
    for item in out:
        assert "error" not in item, item
    return out


def metrics_by_name(payload: dict) -> dict[str, dict]:
    """A decoded payload's metrics by name."""
    return {m["name"]: m for m in payload.get("metrics", [])}


@dataclass
class SparkplugNode:
    """A Sparkplug client and its publisher on a real outbox; `queue()` writes records."""

    client: SparkplugClient
    publisher: Publisher
    outbox: Outbox
    log: EventLog
    topics: SparkplugTopics

    def queue(self, records: list[InspectionRecord]) -> None:
        """Write each record's `inspection` message with its Sparkplug companion, in order."""
        json_topics = Topics(records[0].station) if records else None
        messages = [
            OutboxMessage("inspection", json_topics.inspection, r.to_json().encode(), msg_id=r.id)
            for r in records
            if json_topics is not None
        ]
        with self.outbox.db.conn:
            self.outbox.add(self.outbox.expand(messages))
        self.publisher.notify()

    async def stop(self) -> None:
        await self.publisher.stop()
        await self.client.stop()


def make_sparkplug_node(
    tmp_path: Path,
    port: int,
    *,
    node_id: str = "edge-1",
    device_id: str = "st1",
    primary_host_id: str | None = None,
    state_file: Path | None = None,
    outbox: Outbox | None = None,
) -> SparkplugNode:
    """A Sparkplug edge node (not started) publishing to the broker on `port`."""
    log = EventLog()
    events = Events(device_id, [log])
    topics = SparkplugTopics("reman-test", node_id, device_id)
    outbox = outbox or open_outbox(tmp_path / f"{node_id}.db")
    outbox.companions.append(ddata_companion(topics.ddata))
    broker = BrokerConfig(port=port, reconnect_min_s=0.1, reconnect_max_s=0.5, keepalive_s=5)
    client = SparkplugClient(
        topics,
        broker,
        events,
        Catalogue(MEASUREMENTS),
        BdSeqStore(state_file or tmp_path / f"{node_id}.sparkplug.json"),
        client_id=f"spb-{node_id}",
        primary_host_id=primary_host_id,
    )
    publisher = Publisher(
        outbox, client, events, kinds=(KIND,), render=client.render, rewind_on_ready=True
    )
    return SparkplugNode(client, publisher, outbox, log, topics)
