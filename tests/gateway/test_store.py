"""The store on real SQLite: capped counts, keyset pages with equal times, safe search words,
SQLite failures raised as StoreError."""

from __future__ import annotations

import sqlite3

import pytest

from gateway.errors import StoreError
from gateway.store import Batch, InspectionFilter, Store
from tests.gateway.records import record


def _store(tmp_path, n: int, same_minute: bool = False) -> Store:
    store = Store(tmp_path / "g.db")
    store.write(
        Batch(
            inspections=[record(core_id=f"C{i}", minutes=0 if same_minute else i) for i in range(n)]
        )
    )
    return store


def test_count_stops_at_the_cap(tmp_path):
    store = _store(tmp_path, 7)
    assert store.count(InspectionFilter(), cap=5) == (5, True)
    assert store.count(InspectionFilter(), cap=7) == (7, False)


def test_pages_with_equal_times_neither_repeat_nor_skip(tmp_path):
    store = _store(tmp_path, 9, same_minute=True)
    seen, cursor = [], None
    while True:
        page = store.page(InspectionFilter(), limit=4, cursor=cursor)
        seen += [r["id"] for r in page.rows]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == 9 and len(set(seen)) == 9


def test_search_words_with_query_syntax_are_taken_literally(tmp_path):
    store = _store(tmp_path, 3)
    for q in ('C1" OR core_id:*', "NEAR(", "C1 AND", "*", "-"):
        store.page(InspectionFilter(q=q))  # no FTS syntax error reaches the user
    assert [r["core_id"] for r in store.page(InspectionFilter(q="C1")).rows] == ["C1"]


def test_store_rebuilt_from_a_replay_is_the_same(tmp_path):
    recs = [record(core_id=f"R{i}", minutes=i) for i in range(5)]
    first, second = Store(tmp_path / "a.db"), Store(tmp_path / "b.db")
    first.write(Batch(inspections=recs))
    for _ in range(2):  # a replay delivers everything again
        second.write(Batch(inspections=recs))
    assert first.page(InspectionFilter()).rows == second.page(InspectionFilter()).rows


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.page(InspectionFilter()),
        lambda s: s.get("x"),
        lambda s: s.code_counts(),
        lambda s: s.stations(),
        lambda s: s.write(Batch(inspections=[record(core_id="C9")])),
        lambda s: s.add_audit("st-1", "x", "2026-11-28T08:00:00Z", "erin", "confirm"),
        lambda s: s.forget_snapshots(["a.jpg"]),
    ],
    ids=["page", "get", "code_counts", "stations", "write", "add_audit", "forget_snapshots"],
)
def test_a_corrupt_database_file_is_a_store_error(tmp_path, call):
    store = _store(tmp_path, 2)
    store.close()  # the last connection: the WAL is checkpointed into g.db and removed
    with open(tmp_path / "g.db", "r+b") as f:
        f.write(b"junk" * 1024)  # the first page, SQLite header included
    with pytest.raises(StoreError, match="gateway store: cannot .*not a database") as info:
        call(store)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


def test_a_missing_table_is_a_store_error_saying_what_failed(tmp_path):
    store = _store(tmp_path, 1)
    with sqlite3.connect(tmp_path / "g.db") as raw:
        raw.execute("DROP TABLE audit")
    with pytest.raises(StoreError, match="cannot read the audit trail of x: no such table: audit"):
        store.audit("x")
