"""A station's records are its own: the store keys them by (station, id), a payload must name its
topic's station, the higher revision wins whatever dates a payload carries, and a store from
before station keys opens with every row."""

from __future__ import annotations

import logging
import sqlite3

import sqlite_utils

from edge.contract import InspectionRecord
from gateway.store import SCHEMA_VERSION, Batch, InspectionFilter, Store
from tests.gateway.conftest import login
from tests.gateway.records import overridden, record


def _revised(rec: InspectionRecord, revision: int, override_ts: str | None = None):
    """`rec` as revision `revision`, its override dated `override_ts` when given."""
    update: dict = {"revision": revision}
    if override_ts is not None:
        assert rec.override is not None
        update["override"] = rec.override.model_copy(update={"ts": override_ts})
    return rec.model_copy(update=update)


def test_a_station_cannot_overwrite_another_stations_record(
    gateway, watcher, station_factory, caplog
):
    st_b, st_a = station_factory("st-b"), station_factory("st-a")
    real = record(station="st-b", core_id="C8001", code=1)
    st_b.inspection(real)
    watcher.until(lambda: gateway.store.get(real.id, "st-b"))

    claim = record(station="st-b", core_id="C8001", code=4, rid=real.id)
    st_a.publish("inspection", claim.to_json())  # B's station named on A's topic: refused
    forged = _revised(
        overridden(
            record(station="st-a", core_id="C8001", code=1, rid=real.id),
            3,
            user="mallory",
            reason="forged",
        ),
        99,
        "2099-01-01T00:00:00Z",
    )
    st_a.inspection(forged)  # a valid record of A's own that reuses B's id
    watcher.until(lambda: gateway.store.get(real.id, "st-a"))

    b_row = gateway.store.get(real.id, "st-b")
    assert (b_row["code"], b_row["overridden"]) == (1, 0)
    assert gateway.store.audit(real.id, "st-b") == []
    assert gateway.counters.snapshot()["malformed"] == {"inspection": 1}
    assert any(
        r.levelno == logging.WARNING and "names station 'st-b' on 'st-a'" in r.getMessage()
        for r in caplog.records
    )

    st_b.inspection(_revised(overridden(real, 2, user="erin", reason="scored seat"), 2))
    watcher.until(lambda: gateway.store.get(real.id, "st-b")["code"] == 2)
    assert [(a["user"], a["reason"]) for a in gateway.store.audit(real.id, "st-b")] == [
        ("erin", "scored seat")
    ]
    assert gateway.store.get(real.id, "st-a")["code"] == 3  # A's own row, not B's


def test_a_shared_id_is_named_with_its_station_on_the_dashboard(gateway, watcher, station_factory):
    alone = record(station="st-c", core_id="C8101")
    shared = [
        record(station=s, core_id=f"C82{i}", rid="01SHARED") for i, s in enumerate(["st-c", "st-d"])
    ]
    st_c = station_factory("st-c")
    st_c.inspection(alone)
    st_c.inspection(shared[0])
    station_factory("st-d").inspection(shared[1])
    watcher.until(lambda: gateway.store.get("01SHARED", "st-d") and gateway.store.get(alone.id))
    erin = login(gateway.url, "erin")
    html = {"accept": "text/html"}

    assert "C8101" in erin.get(f"/inspections/{alone.id}", headers=html).text  # as before
    assert "C8101" in erin.get(f"/inspections/st-c/{alone.id}", headers=html).text
    assert "C821" in erin.get("/inspections/st-d/01SHARED", headers=html).text
    assert erin.get(f"/inspections/st-d/{alone.id}").status_code == 404
    both = erin.get("/inspections/01SHARED", headers=html)
    assert both.status_code == 409
    assert "/inspections/st-c/01SHARED" in both.text and "/inspections/st-d/01SHARED" in both.text

    assert erin.get("/api/inspections/st-d/01SHARED").json()["record"]["core_id"] == "C821"
    assert erin.get(f"/api/inspections/{alone.id}").json()["record"]["station"] == "st-c"
    api_both = erin.get("/api/inspections/01SHARED")
    assert api_both.status_code == 409 and "/api/inspections/st-c/01SHARED" in api_both.text

    history = erin.get("/history", headers=html).text  # the links a person follows
    assert 'href="/inspections/st-c/01SHARED"' in history
    assert 'href="/inspections/st-d/01SHARED"' in history
    live = erin.get("/live/st-d", headers=html).text
    assert 'href="/inspections/st-d/01SHARED"' in live

    page = erin.get("/inspections/st-d/01SHARED").text
    assert 'action="/inspections/st-d/01SHARED/override"' in page
    token = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    done = erin.post("/inspections/st-d/01SHARED/confirm", data={"csrf_token": token})
    assert done.status_code == 303 and done.headers["location"] == "/inspections/st-d/01SHARED"
    assert [a["action"] for a in gateway.store.audit("01SHARED", "st-d")] == ["confirmed"]
    assert gateway.store.audit("01SHARED", "st-c") == []


def test_the_higher_revision_wins_whatever_the_dates_say(make_store):
    store = make_store()
    first = record(station="st-1", core_id="C8201", code=1)
    newest = _revised(overridden(first, 2, user="erin"), 3, "2026-11-28T10:00:00Z")
    stale = _revised(overridden(first, 4, user="olly"), 2, "2099-01-01T00:00:00Z")
    for rec in (first, newest, stale, first):
        store.write(Batch(inspections=[rec]))
    row = store.get(first.id, "st-1")
    assert (row["code"], row["revision"]) == (2, 3)
    assert InspectionRecord.model_validate_json(row["record"]).override.user == "erin"


def test_pages_with_one_id_at_two_stations_neither_repeat_nor_skip(make_store):
    store = make_store()
    store.write(
        Batch(inspections=[record(station=s, rid="01SAME", minutes=0) for s in ("st-1", "st-2")])
    )
    first = store.page(InspectionFilter(), limit=1)
    second = store.page(InspectionFilter(), limit=1, cursor=first.next_cursor)
    assert {first.rows[0]["station"], second.rows[0]["station"]} == {"st-1", "st-2"}
    assert second.next_cursor is None


# The store's tables before version 1, as the gateway created them (keyed by id alone).
_SCHEMA_0 = """
CREATE TABLE inspections (
    id TEXT PRIMARY KEY, station TEXT NOT NULL, ts TEXT NOT NULL, seq INTEGER,
    core_id TEXT NOT NULL, family TEXT, code INTEGER NOT NULL, rules_code INTEGER NOT NULL,
    credit INTEGER, overridden INTEGER NOT NULL DEFAULT 0, override_ts TEXT,
    impact_known INTEGER, material_kept_kg REAL, co2e_avoided_kg REAL,
    reasons TEXT NOT NULL DEFAULT '', record TEXT NOT NULL
);
CREATE INDEX ix_insp_ts ON inspections (ts, id);
CREATE INDEX ix_insp_station_ts ON inspections (station, ts, id);
CREATE TABLE audit (
    seq INTEGER PRIMARY KEY, inspection_id TEXT NOT NULL, ts TEXT NOT NULL, user TEXT NOT NULL,
    action TEXT NOT NULL, code INTEGER, label TEXT, reason TEXT, credit INTEGER,
    UNIQUE (inspection_id, action, ts, user)
);
"""


def _old_store(path) -> list[InspectionRecord]:
    recs = [record(station="st-1", core_id="C8301"), overridden(record(core_id="C8302"), 3)]
    conn = sqlite3.connect(path)
    conn.executescript(_SCHEMA_0)
    for r in recs:
        conn.execute(
            "INSERT INTO inspections (id, station, ts, seq, core_id, code, rules_code, overridden,"
            " reasons, record) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                r.id,
                r.station,
                r.ts,
                r.seq,
                r.core_id,
                int(r.effective_code()),
                int(r.decision.code),
                int(r.override is not None),
                r.decision.reasons[0].text,
                r.to_json(),
            ),
        )
    conn.execute(
        "INSERT INTO audit (inspection_id, ts, user, action) VALUES (?, ?, 'erin', 'override')",
        (recs[1].id, recs[1].override.ts),
    )
    conn.commit()
    sqlite_utils.Database(conn)["inspections"].enable_fts(
        ["core_id", "reasons"], fts_version="FTS5", create_triggers=True
    )
    conn.close()
    return recs


def test_a_store_from_before_station_keys_opens_with_every_row(tmp_path):
    recs = _old_store(tmp_path / "old.db")
    store = Store(tmp_path / "old.db")
    rows = store.page(InspectionFilter()).rows
    assert sorted(r["id"] for r in rows) == sorted(r.id for r in recs)
    assert {r["revision"] for r in rows} == {1}
    assert [(a["station"], a["user"]) for a in store.audit(recs[1].id)] == [("st-1", "erin")]
    assert [r["core_id"] for r in store.page(InspectionFilter(q="C8301")).rows] == ["C8301"]
    store.write(Batch(inspections=[recs[0].model_copy(update={"station": "st-9"})]))
    assert store.get(recs[0].id, "st-1") and store.get(recs[0].id, "st-9")
    assert [r["core_id"] for r in store.page(InspectionFilter(q="C8301")).rows] == ["C8301"] * 2
    store.close()
    again = Store(tmp_path / "old.db")  # opening a current store changes nothing
    assert again.count(InspectionFilter()) == (3, False)
    (version,) = again.db.conn.execute("PRAGMA user_version").fetchone()
    assert version == SCHEMA_VERSION
