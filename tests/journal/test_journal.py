"""The journal on real SQLite files: records with their outbox rows, seq, overrides, audit, pruning."""

from __future__ import annotations

import os
import sqlite3
import time

import pytest

from edge.contract import Credit, Disposition, Event, InspectionRecord
from edge.contract.timefmt import utc_now
from edge.decision.families import load_families
from edge.decision.rules import impact
from edge.errors import JournalError
from edge.events import Events
from edge.ids import new_id
from edge.journal.journal import SCHEMA_VERSION, Journal
from edge.journal.outbox import OutboxMessage
from tests.conftest import REPO
from tests.support.journal_records import STATION, make_record, messages_for

FAMILIES = load_families(REPO / "config/families")


@pytest.fixture
def journal(tmp_path):
    store = Journal.open(tmp_path / "journal.db", families=FAMILIES)
    yield store
    store.close()


def test_open_creates_schema_in_wal(journal):
    conn = journal.db.conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL, see the module docstring
    assert journal.schema_version == SCHEMA_VERSION
    assert {"inspections", "images", "overrides", "events", "outbox"} <= set(
        journal.db.table_names()
    )
    assert journal.check() == []


def test_record_with_outbox_and_images(journal, tmp_path):
    record = make_record(journal.next_seq())
    existing = tmp_path / "img" / "view1.jpg"
    existing.parent.mkdir()
    existing.write_bytes(b"\xff\xd8view1")
    journal.record_inspection(
        record,
        messages_for(record),
        [(tmp_path / "img" / "overlay.jpg", b"\xff\xd8overlay"), (existing, None)],
    )
    assert journal.get(record.id) == record
    pending = journal.outbox.pending()
    assert [(m.kind, m.inspection_id, m.msg_id) for m in pending] == [
        ("inspection", record.id, record.id),
        ("result", record.id, record.id),
    ]
    images = journal.images(record.id)
    assert [(os.path.basename(i["path"]), i["size"]) for i in images] == [
        ("overlay.jpg", 9),
        ("view1.jpg", 7),
    ]
    assert (tmp_path / "img" / "overlay.jpg").read_bytes() == b"\xff\xd8overlay"
    assert journal.check() == []


def test_failed_record_writes_nothing(journal):
    record = make_record(journal.next_seq())
    journal.record_inspection(record, messages_for(record))
    with pytest.raises(JournalError, match="recording inspection"):
        journal.record_inspection(record, messages_for(record))  # same id twice
    assert journal.count() == 1 and journal.outbox.depth()[0] == 2
    with pytest.raises(JournalError, match="image"):
        journal.record_inspection(
            make_record(2), messages_for(record), [("/nonexistent/x.jpg", None)]
        )
    assert journal.count() == 1 and journal.check() == []


def test_sync_and_full_synchronous(tmp_path):
    with Journal.open(tmp_path / "j.db", synchronous="FULL") as store:
        assert store.db.conn.execute("PRAGMA synchronous").fetchone()[0] == 2
        record = make_record(store.next_seq())
        store.record_inspection(record, messages_for(record))
        store.sync()
    with pytest.raises(JournalError, match="synchronous"):
        Journal.open(tmp_path / "k.db", synchronous="OFF")


def test_seq_is_monotonic_across_restarts(tmp_path):
    with Journal.open(tmp_path / "j.db") as store:
        seqs = [store.next_seq() for _ in range(3)]
        record = make_record(40)
        store.record_inspection(record, messages_for(record))
    with Journal.open(tmp_path / "j.db") as store:
        assert seqs == [1, 2, 3]
        assert store.next_seq() == 41


def test_find_filters(journal):
    for seq, core, code, ts in [
        (1, "HGP-1", Disposition.REUSE, "2026-11-28T08:00:00.000Z"),
        (2, "HGP-2", Disposition.RECYCLE, "2026-11-28T09:00:00.000Z"),
        (3, "HGP-1", Disposition.REMANUFACTURE, "2026-11-28T10:00:00.000Z"),
    ]:
        record = make_record(seq, core, code, ts=ts)
        journal.record_inspection(record, messages_for(record))
    assert [r.seq for r in journal.find()] == [1, 2, 3]
    assert [r.seq for r in journal.find(core="HGP-1")] == [1, 3]
    assert [r.seq for r in journal.find(since="2026-11-28T09:00:00Z")] == [2, 3]
    assert [r.seq for r in journal.find(since="2026-11-28T09:30:00+01:00")] == [2, 3]
    assert [r.seq for r in journal.find(decision="recycle")] == [2]
    assert [r.seq for r in journal.find(decision=2)] == [3]
    assert [r.seq for r in journal.find(limit=2)] == [2, 3]
    with pytest.raises(JournalError, match="unknown decision"):
        journal.find(decision="scrap")
    with pytest.raises(JournalError, match="not a time"):
        journal.find(since="yesterday")


def test_override_keeps_original_audits_and_republishes(journal):
    record = make_record(journal.next_seq(), impact=impact(FAMILIES.get("hydraulic-gear-pump"), 1))
    journal.record_inspection(record, messages_for(record))
    updated = journal.apply_override(
        record.id, 2, "shaft seal scored", "anna", command_id="c1", make_messages=messages_for
    )
    assert updated.decision == record.decision
    assert (updated.override.code, updated.override.user, updated.override.reason) == (
        Disposition.REMANUFACTURE,
        "anna",
        "shaft seal scored",
    )
    assert updated.override.credit == Credit.FULL  # kept when not given
    assert updated.impact.co2e_avoided_kg == pytest.approx(11.2)
    assert journal.get(record.id) == updated
    assert [r.seq for r in journal.find(decision="REMANUFACTURE")] == [record.seq]
    [audit] = journal.overrides(record.id)
    assert (audit.old_code, audit.new_code, audit.user, audit.command_id) == (1, 2, "anna", "c1")
    republished = journal.outbox.pending()[2:]
    assert [(m.kind, m.inspection_id) for m in republished] == [
        ("inspection", record.id),
        ("result", record.id),
    ]
    assert b'"code":2' in republished[1].payload
    assert journal.check() == []


def test_override_is_idempotent(journal):
    record = make_record(journal.next_seq())
    journal.record_inspection(record, messages_for(record))
    assert (
        journal.apply_override(
            record.id, 3, "cracked housing", "ben", command_id="c1", make_messages=messages_for
        )
        is not None
    )
    depth = journal.outbox.depth()[0]
    assert (
        journal.apply_override(
            record.id, 3, "cracked housing", "ben", command_id="c2", make_messages=messages_for
        )
        is None
    )
    assert (
        journal.apply_override(
            record.id, 2, "other", "eve", command_id="c1", make_messages=messages_for
        )
        is None
    )
    assert len(journal.overrides(record.id)) == 1 and journal.outbox.depth()[0] == depth
    second = journal.apply_override(record.id, 2, "crack is in the flange only", "ben", credit=2)
    assert (second.override.code, second.override.credit) == (
        Disposition.REMANUFACTURE,
        Credit.PARTIAL,
    )
    assert [(a.old_code, a.new_code) for a in journal.overrides(record.id)] == [(1, 3), (3, 2)]
    assert [o.reason for o in journal.override_history(record.id)] == [
        "cracked housing",
        "crack is in the flange only",
    ]


def test_each_changed_republish_is_the_next_revision(journal):
    record = make_record(journal.next_seq())
    journal.record_inspection(record, messages_for(record))
    assert journal.get(record.id).revision == 1
    first = journal.apply_override(record.id, 3, "cracked", "ben", make_messages=messages_for)
    assert journal.apply_override(record.id, 3, "cracked", "ben") is None  # unchanged: no revision
    second = journal.apply_override(record.id, 2, "flange only", "ben", make_messages=messages_for)
    assert (first.revision, second.revision, journal.get(record.id).revision) == (2, 3, 3)
    published = [
        InspectionRecord.model_validate_json(m.payload)
        for m in journal.outbox.pending()
        if m.kind == "inspection"
    ]
    assert [r.revision for r in published] == [1, 2, 3]


def test_override_errors(journal):
    with pytest.raises(JournalError, match="no inspection"):
        journal.apply_override("nope", 2, "r", "u")
    with pytest.raises(JournalError, match="1..4"):
        journal.apply_override("nope", 7, "r", "u")


def test_events_with_outbox(journal):
    events = Events(
        STATION,
        [
            lambda e: journal.record_event(
                e, OutboxMessage("event", "t", e.model_dump_json().encode(), msg_id=e.id)
            )
        ],
    )
    event = events.warning("bench_stale", "bench values are stale", node="leak")
    row = journal.db.conn.execute(
        "SELECT level, code, record FROM events WHERE id = ?", (event.id,)
    ).fetchone()
    assert row[:2] == ("warning", "bench_stale") and Event.model_validate_json(row[2]) == event
    [message] = journal.outbox.pending()
    assert message.inspection_id is None and message.msg_id == event.id
    assert journal.check() == []


def test_delivered_and_pruned_outbox_rows_keep_the_check_clean(journal):
    for seq in range(1, 4):
        record = make_record(seq)
        journal.record_inspection(record, messages_for(record))
    journal.outbox.mark_delivered([m.id for m in journal.outbox.pending()[:3]])
    assert journal.outbox.prune_delivered(older_than_s=-1) == 3
    assert journal.check() == []
    journal.db.conn.execute("UPDATE inspections SET outbox_count = 5 WHERE seq = 3")
    journal.db.conn.execute(
        "INSERT INTO outbox (msg_id, kind, topic, payload, qos, retain, inspection_id, created_at)"
        " VALUES ('x', 'result', 't', x'00', 1, 1, 'ghost', 0)"
    )
    journal.db.conn.commit()
    problems = journal.check()
    assert len(problems) == 2
    assert (
        "2 outbox rows, 0 pruned, 5 written" in problems[0]
        and "unknown inspection ghost" in problems[1]
    )


@pytest.mark.expect_errors("journal_inconsistent")
def test_open_refuses_an_inconsistent_journal_with_an_event(tmp_path):
    path = tmp_path / "j.db"
    with Journal.open(path) as store:
        record = make_record(1)
        store.record_inspection(record, messages_for(record))
        store.db.conn.execute("DROP TRIGGER outbox_pruned")
        store.db.conn.execute("DELETE FROM outbox")
        store.db.conn.commit()
    seen = []
    with pytest.raises(JournalError, match="integrity check"):
        Journal.open(path, Events(STATION, [seen.append]))
    assert [e.code for e in seen] == ["journal_inconsistent"]


def test_migrations_run_in_order_once(tmp_path, monkeypatch):
    from edge.journal import journal as module

    path = tmp_path / "j.db"
    with Journal.open(path) as store:
        record = make_record(store.next_seq())
        store.record_inspection(record, messages_for(record))
    ran = []

    current = module.SCHEMA_VERSION

    def add_station_note(conn):
        ran.append(current + 1)
        conn.execute("ALTER TABLE inspections ADD COLUMN note TEXT")

    monkeypatch.setattr(module, "MIGRATIONS", [*module.MIGRATIONS, add_station_note])
    monkeypatch.setattr(module, "SCHEMA_VERSION", current + 1)
    with Journal.open(path) as store:
        assert store.schema_version == current + 1 and store.get(record.id) == record
        assert "note" in store.db["inspections"].columns_dict
    with Journal.open(path) as store:
        assert ran == [current + 1]


def test_not_a_database_and_newer_schema(tmp_path):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(JournalError, match="garbage.db"):
        Journal.open(garbage)
    newer = tmp_path / "newer.db"
    conn = sqlite3.connect(newer)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(JournalError, match="newer than this software"):
        Journal.open(newer)


def test_prune_images_by_age_and_budget(journal, tmp_path):
    now = time.time()
    for seq in range(1, 5):
        record = make_record(seq)
        journal.record_inspection(
            record, messages_for(record), [(tmp_path / f"i{seq}.jpg", b"x" * 400_000)]
        )
    journal.db.conn.execute(
        "UPDATE images SET created = ? WHERE path LIKE '%i1.jpg'", (now - 40 * 86400,)
    )
    journal.db.conn.commit()
    assert (
        journal.prune_images(max_age_days=30, budget_mb=1.0, now=now) == 2
    )  # i1 by age, i2 by budget
    assert sorted(p.name for p in tmp_path.glob("i*.jpg")) == ["i3.jpg", "i4.jpg"]
    assert journal.count() == 4
    assert journal.prune_images(max_age_days=30, budget_mb=1.0, now=now) == 0
    pruned = [i["pruned_at"] is not None for r in journal.find() for i in journal.images(r.id)]
    assert pruned == [True, True, False, False]


def test_make_record_has_utc_ids():
    assert len(new_id()) == 26 and utc_now().endswith("Z")
