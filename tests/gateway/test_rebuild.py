"""Rebuilding the gateway's store from a node's journal: `reman journal republish`, the node's
publisher, a real mosquitto and the gateway's ingest, as docs/operations.md describes it."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from click.testing import CliRunner

from edge.events import Events
from edge.journal.journal import Journal
from edge.mqtt.client import MqttClient
from edge.mqtt.publisher import Publisher
from gateway.store import InspectionFilter
from reman.cli import cli
from tests.support.journal_records import installed_config, make_record, messages_for
from tests.support.nodes import EventLog, fast_config
from tests.support.stations import station_id


@pytest.fixture
def station():
    return station_id()


@pytest.fixture
def journal(tmp_path, station):
    """A node's journal of five inspections (one overridden) whose outbox went out and was
    pruned: nothing in it would reach a gateway again."""
    store = Journal.open(tmp_path / "node/journal.db")
    for seq in range(1, 6):
        record = make_record(seq, f"HGP-{seq:06d}", ts=f"2026-11-28T08:0{seq}:00.000Z")
        record = record.model_copy(update={"station": station})
        store.record_inspection(record, messages_for(record))
    first = store.find(limit=1)[0]
    store.apply_override(first.id, 3, "cracked flange", "erin", make_messages=messages_for)
    store.outbox.mark_delivered([m.id for m in store.outbox.pending(limit=1000)])
    store.outbox.prune_delivered(0, now=time.time() + 1)
    assert store.outbox.depth()[0] == 0
    yield store
    store.close()


@pytest.fixture
async def publisher(mosquitto, journal, station):
    """The node's publisher draining the journal's outbox to the session broker."""
    events = Events(station, [EventLog()])
    client = MqttClient(station, fast_config(mosquitto.port), events)
    publisher = Publisher(journal.outbox, client, events, sync=journal.sync)
    await client.start()
    publisher.start()
    await client.wait_connected(10)
    yield publisher
    await publisher.stop()
    await client.stop()


async def test_republish_fills_an_empty_store_again(
    tmp_path, gateway, watcher, journal, publisher, station
):
    mine = InspectionFilter(station=station)
    assert gateway.store.count(mine) == (0, False)
    config = installed_config(tmp_path / "etc", journal.path, station)
    result = CliRunner().invoke(cli, ["journal", "republish", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("5 inspection(s) queued")
    # The running publisher finds the new rows on its own (it looks at least once a second);
    # the wait runs in a thread, so that the publisher's event loop goes on.
    await asyncio.to_thread(watcher.until, lambda: gateway.store.count(mine) == (5, False))
    await publisher.wait_drained(10)
    for record in journal.find():
        row = gateway.store.get(record.id)
        assert row is not None and json.loads(row["record"]) == json.loads(record.to_json())
        assert row["code"] == int(record.effective_code())
    overridden = [r for r in journal.find() if r.override]
    assert len(overridden) == 1 and gateway.store.get(overridden[0].id)["code"] == 3
