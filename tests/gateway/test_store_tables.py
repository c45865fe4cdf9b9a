"""The tables beside the inspections, on both backends: API tokens, model states, shadow reports
and model commands, events with their cursor, snapshots, logins, flags for labelling and the
reports' SQL (hour buckets, grades from the records' JSON)."""

from __future__ import annotations

import pytest

from edge.contract import Event, ModelCommand, ModelsState, ShadowReport
from gateway import labels, models_store, reports, tokens
from gateway.errors import AuthError
from gateway.store import Batch
from tests.gateway.records import record, ts_at


def _event(n: int, code: str = "note", **detail) -> Event:
    return Event(
        id=f"ev{n:03d}",
        ts=ts_at(n),
        station="st-1",
        level="warning" if n % 2 else "info",
        code=code,
        message=f"event {n} 100% sure",
        detail=detail,
    )


def test_tokens_are_made_verified_listed_and_revoked(make_store):
    store = make_store()
    text = tokens.create(store, "mes", "override")
    assert tokens.verify(store, text) == tokens.TokenUser("mes", "override")
    with pytest.raises(AuthError, match="exists; revoke it first"):
        tokens.create(store, "mes", "read")
    assert tokens.revoke(store, "mes") and not tokens.revoke(store, "mes")
    assert tokens.verify(store, text) is None
    again = tokens.create(store, "mes", "read")  # a revoked name may be used again
    assert tokens.verify(store, again) == tokens.TokenUser("mes", "read")
    listed = tokens.listed(store)
    assert sorted((t["name"], t["revoked_ts"] is None) for t in listed) == [
        ("mes", False),
        ("mes", True),
    ]


def test_model_states_shadow_reports_and_commands(make_store):
    store = make_store()
    newer = ModelsState(station="st-1", ts=ts_at(10), active="2", shadow=None, models=[])
    older = ModelsState(station="st-1", ts=ts_at(5), active="1", shadow=None, models=[])
    report = ShadowReport.model_validate(
        {
            "id": "I1",
            "station": "st-1",
            "ts": ts_at(1),
            "candidate": "2",
            "active": "1",
            "defects": {},
            "active_defects": {},
            "code": 2,
            "active_code": 1,
        }
    )
    store.write(Batch(models=[(newer, ts_at(11))], shadows=[report]))
    store.write(Batch(models=[(older, ts_at(12))], shadows=[report]))  # late and redelivered
    state, received = models_store.latest_state(store, "st-1")
    assert (state.active, received) == ("2", ts_at(11))
    assert [r.id for r in models_store.shadow_reports(store, "st-1")] == ["I1"]
    command = ModelCommand(
        action="promote", version="2", reason="better", user="ada", command_id="cmd-1"
    )
    models_store.add_command(store, "st-1", command, ts_at(20), "1")
    assert [c["user"] for c in models_store.commands(store, "st-1")] == ["ada"]
    assert models_store.command_outcome(store, "st-1", command.command_id) is None
    store.write(Batch(events=[_event(30, "model_promoted", command_id=command.command_id)]))
    outcome = models_store.command_outcome(store, "st-1", command.command_id)
    assert outcome is not None and outcome["code"] == "model_promoted"
    store.write(Batch(events=[_event(31, models_store.LABEL_EVENT, inspection_id="I1")]))
    assert [e["detail"]["inspection_id"] for e in models_store.label_events(store, "st-1")] == [
        "I1"
    ]


def test_events_page_by_cursor_and_filter(make_store):
    store = make_store()
    store.write(Batch(events=[_event(n) for n in range(7)]))
    store.write(Batch(events=[_event(3)]))  # a redelivered event is kept once
    seen, cursor = [], None
    while True:
        rows, cursor = store.events(limit=3, cursor=cursor)
        seen += [r["id"] for r in rows]
        if cursor is None:
            break
    assert seen == [f"ev{n:03d}" for n in reversed(range(7))]
    rows, _ = store.events(level="warning")
    assert [r["id"] for r in rows] == ["ev005", "ev003", "ev001"]
    assert rows[0]["message"] == "event 5 100% sure"


def test_snapshots_and_logins(make_store):
    store = make_store()
    rec = record(core_id="S1")
    snaps = [(f"s{n}.jpg", "st-1", ts_at(n), rec.id) for n in range(5)]
    store.write(Batch(inspections=[rec], snapshots=snaps))
    store.write(Batch(snapshots=[("s4.jpg", "st-1", ts_at(9), rec.id)]))  # replaced, not doubled
    assert store.snapshots_for(rec.id, "st-1") == [f"s{n}.jpg" for n in range(5)]
    assert store.latest_snapshot("st-1") == "s4.jpg"
    assert store.snapshots_beyond(2) == ["s2.jpg", "s1.jpg", "s0.jpg"]
    store.forget_snapshots(["s0.jpg", "s1.jpg"])
    assert store.snapshots_beyond(0) == ["s4.jpg", "s3.jpg", "s2.jpg"]
    store.add_session("x1", "erin", "cred", ts_at(0), ts_at(60))
    assert store.session("x1", ts_at(30))["username"] == "erin"
    assert store.session("x1", ts_at(61)) is None
    store.end_session("x1")
    assert store.session("x1", ts_at(30)) is None


def test_flags_for_labelling_and_the_reports_sql(make_store):
    store = make_store()
    recs = [record(core_id=f"G{n}", code=n % 4 + 1, minutes=n * 30) for n in range(6)]
    store.write(Batch(inspections=recs))
    store.add_audit("st-1", recs[0].id, ts_at(200), "olly", labels.FLAGGED)
    assert [f["flagged_by"] for f in labels.flagged(store)] == ["olly"]
    assert [f["id"] for f in labels.flagged(store, "st-1")] == [recs[0].id]
    since, until = ts_at(0), ts_at(180)
    hours = reports.decisions_per_hour(store, "st-1", since, until)
    assert [h["t"] for h in hours] == ["2026-11-28T08", "2026-11-28T09", "2026-11-28T10"]
    assert sum(sum(v for k, v in h.items() if k != "t") for h in hours) == 6
    grades = reports.grade_distribution(store, "st-1", since, until)
    assert grades and all(len(series) == 3 for series in grades.values())
    figures = reports.circularity(store, "st-1", since, until)
    assert figures.cores == 6 and figures.impact_known_cores == 6
    assert figures.material_kept_kg == pytest.approx(sum(4.2 for r in recs if r.impact.known))
