"""Ingest: contract validation, malformed messages counted, dedupe by id, batches, snapshots."""

from __future__ import annotations

import json

import pytest

from edge.contract import ContractViolation
from edge.contract.broker import BrokerConfig
from gateway.ingest import BatchWriter, MqttIngest, parse_message
from gateway.store import InspectionFilter
from tests.gateway.records import overridden, record

JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64 + b"\xff\xd9"


def test_valid_messages_parse_to_contract_models():
    rec = record(station="st-1")
    parsed = parse_message("reman/st-1/inspection", rec.to_json().encode())
    assert parsed.kind == "inspection" and parsed.value.id == rec.id
    assert parse_message("reman/st-1/available", b"offline").value == "offline"
    assert (
        parse_message(
            "reman/st-1/result", b'{"seq":1,"core":"C1","code":2,"credit":1,"err":0}'
        ).value.code
        == 2
    )
    assert parse_message("reman/st-1/snapshot", JPEG).value == JPEG


@pytest.mark.parametrize(
    "topic,payload,why",
    [
        ("reman/st-1/inspection", b"{not json", "not JSON"),
        ("reman/st-1/inspection", b'{"schema": 1}', "id"),
        ("reman/st-1/stats", b"[]", "(root)"),
        ("reman/st-1/available", b"maybe", "online or offline"),
        ("reman/st-1/snapshot", b"GIF89a", "JPEG"),
        ("reman/st-2/inspection", record(station="st-1").to_json().encode(), "names station"),
        ("reman/st-1/inspection", record(ts="yesterday").to_json().encode(), "RFC 3339"),
        (
            "reman/st-1/inspection",
            record().to_json().replace('"grade":8.1', '"grade":NaN').encode(),
            "NaN",
        ),
    ],
)
def test_malformed_messages_are_refused_with_a_reason(topic, payload, why):
    with pytest.raises(ContractViolation, match=why):
        parse_message(topic, payload)


def test_commands_and_foreign_topics_are_ignored():
    assert parse_message("reman/st-1/override/set", b"{}") is None
    assert parse_message("other/st-1/inspection", b"{}") is None
    assert parse_message("reman/st-1/available", b"") is None  # a cleared retained message


def _writer(tmp_path, make_store, **kw) -> BatchWriter:
    writer = BatchWriter(make_store(), tmp_path / "snaps", **kw)
    writer.start()
    return writer


def test_malformed_message_is_counted_and_ingest_goes_on(tmp_path, make_store):
    writer = _writer(tmp_path, make_store)
    ingest = MqttIngest(BrokerConfig(), writer)  # handle() needs no connection
    ingest.handle("reman/st-1/inspection", b"\x00garbage")
    ingest.handle("reman/st-1/inspection", record().to_json().encode())
    assert writer.flush()
    assert writer.counters.snapshot()["malformed"] == {"inspection": 1}
    assert writer.counters.snapshot()["received"] == {"inspection": 1}
    assert writer.store.count(InspectionFilter()) == (1, False)
    writer.stop()


def test_republished_inspection_is_stored_once_and_override_wins(tmp_path, make_store):
    writer = _writer(tmp_path, make_store)
    original = record(code=1, core_id="C2001")
    for item in (original, original, overridden(original, 3), original):
        writer.submit(parse_message("reman/st-1/inspection", item.to_json().encode()))
    assert writer.flush()
    rows = writer.store.page(InspectionFilter()).rows
    assert len(rows) == 1
    stored = json.loads(rows[0]["record"])
    assert rows[0]["code"] == 3 and stored["override"]["user"] == "erin"
    assert [a["action"] for a in writer.store.audit(original.id)] == ["override"]
    writer.stop()


def test_writes_in_batches_of_at_most_batch_size(tmp_path, make_store):
    writer = _writer(tmp_path, make_store, batch_size=10, batch_interval_s=5.0)
    sizes: list[int] = []
    writer.add_listener(lambda batch: sizes.append(len(batch)))
    for i in range(25):
        writer.submit(
            parse_message("reman/st-1/inspection", record(core_id=f"C{i}").to_json().encode())
        )
    writer.stop()  # writes the partial batch at once
    assert sum(sizes) == 25 and max(sizes) <= 10 and len(sizes) >= 3
    assert writer.counters.snapshot()["batches"] == len(sizes)
    assert writer.store.count(InspectionFilter()) == (25, False)


def test_snapshots_kept_as_files_within_the_retention_limit(tmp_path, make_store):
    writer = _writer(tmp_path, make_store, snapshot_max_files=10)
    rec = record(station="st-1")
    writer.submit(parse_message("reman/st-1/inspection", rec.to_json().encode()))
    for _ in range(12):
        writer.submit(parse_message("reman/st-1/snapshot", JPEG))
    assert writer.flush()
    files = sorted((tmp_path / "snaps").glob("*.jpg"))
    assert len(files) == 10
    assert all(f.read_bytes() == JPEG for f in files)
    assert len(writer.store.snapshots_for(rec.id)) == 10
    writer.stop()


def test_ingest_over_mqtt_keeps_every_kind(gateway, watcher, station_factory):
    station = station_factory("st-ingest")
    rec = record(station="st-ingest", core_id="C3001")
    station.publish("available", b"online", retain=True)
    station.inspection(rec)
    station.publish("snapshot", JPEG)
    station.publish(
        "stats",
        json.dumps(
            {
                "ts": "2026-11-28T08:00:00Z",
                "station": "st-ingest",
                "uptime_s": 5,
                "inspections": 1,
                "outbox_depth": 2,
            }
        ),
    )
    station.publish(
        "event",
        json.dumps(
            {
                "schema": 1,
                "id": "ev1",
                "ts": "2026-11-28T08:00:01Z",
                "station": "st-ingest",
                "level": "warning",
                "code": "bench_stale",
                "message": "bench values are stale",
            }
        ),
    )
    station.publish("inspection", b"{broken")
    store = gateway.store

    def all_there():
        st = {s["station"]: s for s in store.stations()}.get("st-ingest")
        return (
            st
            and st["available"] == "online"
            and st["stats"]
            and store.get(rec.id)
            and store.events("st-ingest")[0]
            and store.snapshots_for(rec.id)
            and gateway.counters.snapshot()["malformed"].get("inspection")
        )

    watcher.until(all_there)
    mine = {s["station"]: s for s in store.stations()}["st-ingest"]
    assert mine["stats"]["outbox_depth"] == 2
