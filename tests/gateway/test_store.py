"""The store on real SQLite: capped counts, keyset pages with equal times, safe search words."""

from __future__ import annotations

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
