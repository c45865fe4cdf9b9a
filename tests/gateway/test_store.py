"""The store on real SQLite and a real PostgreSQL (every test that takes `make_store` runs on
both): capped counts, keyset pages with equal times, safe search words, database failures
raised as StoreError."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest

from edge.ports import free_port
from gateway.backends.postgres import MIGRATIONS
from gateway.config import StoreConfig
from gateway.errors import StoreError
from gateway.store import Batch, InspectionFilter, Store
from tests.gateway.records import overridden, record


def _filled(store: Store, n: int, same_minute: bool = False) -> Store:
    store.write(
        Batch(
            inspections=[record(core_id=f"C{i}", minutes=0 if same_minute else i) for i in range(n)]
        )
    )
    return store


def _store(tmp_path, n: int) -> Store:
    """A SQLite store in tmp_path (for the tests of SQLite's own failures)."""
    return _filled(Store(tmp_path / "g.db"), n)


def test_count_stops_at_the_cap(make_store):
    store = _filled(make_store(), 7)
    assert store.count(InspectionFilter(), cap=5) == (5, True)
    assert store.count(InspectionFilter(), cap=7) == (7, False)


def test_pages_with_equal_times_neither_repeat_nor_skip(make_store):
    store = _filled(make_store(), 9, same_minute=True)
    seen, cursor = [], None
    while True:
        page = store.page(InspectionFilter(), limit=4, cursor=cursor)
        seen += [r["id"] for r in page.rows]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert len(seen) == 9 and len(set(seen)) == 9


def test_search_words_with_query_syntax_are_taken_literally(make_store):
    store = _filled(make_store(), 3)
    for q in ('C1" OR core_id:*', "NEAR(", "C1 AND", "*", "-", "C1 & !", "':*|"):
        store.page(InspectionFilter(q=q))  # no FTS syntax error reaches the user
    assert [r["core_id"] for r in store.page(InspectionFilter(q="C1")).rows] == ["C1"]


def test_store_rebuilt_from_a_replay_is_the_same(make_store):
    recs = [record(core_id=f"R{i}", minutes=i) for i in range(5)]
    first, second = make_store("a"), make_store("b")
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


def test_a_missing_table_on_postgresql_is_a_store_error_saying_what_failed(postgres):
    url = postgres.create_database("missing_table")
    try:
        store = _filled(Store(url), 1)
        with psycopg.connect(url, autocommit=True) as raw:
            raw.execute("DROP TABLE audit")
        with pytest.raises(StoreError, match='cannot read the audit trail of x: .*"audit"'):
            store.audit("x")
        store.close()
    finally:
        postgres.drop_database("missing_table")


def test_an_unreachable_postgresql_is_a_store_error_without_the_password():
    with pytest.raises(StoreError, match="cannot open the gateway store") as info:
        Store(f"postgresql://reman:s3cret@127.0.0.1:{free_port()}/reman")
    assert "s3cret" not in str(info.value)


def test_a_postgresql_store_from_newer_software_is_refused(postgres):
    url = postgres.create_database("newer")
    try:
        Store(url).close()
        with psycopg.connect(url, autocommit=True) as raw:
            raw.execute(
                "INSERT INTO schema_migrations VALUES (99, 'later', '2030-01-01T00:00:00Z')"
            )
        latest = MIGRATIONS[-1][0]
        with pytest.raises(StoreError, match=f"schema 99, newer than this software's {latest}"):
            Store(url)
    finally:
        postgres.drop_database("newer")


def test_a_postgresql_store_of_schema_1_gets_the_later_steps_and_keeps_its_rows(postgres):
    url = postgres.create_database("older")
    try:
        with psycopg.connect(url, autocommit=True) as raw:  # as a first release left it
            raw.execute(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_ts TEXT NOT NULL)"
            )
            raw.execute(MIGRATIONS[0][2].encode())
            raw.execute("INSERT INTO schema_migrations VALUES (1, 'v1', '2026-11-01T00:00:00Z')")
        store = Store(url)
        batch = Batch()
        batch.inspections.append(record(station="st-old", rid="R-old"))
        store.write(batch)
        store.close()
        with psycopg.connect(url) as raw:
            versions = [r[0] for r in raw.execute("SELECT version FROM schema_migrations")]
            indexes = {r[0] for r in raw.execute("SELECT indexname FROM pg_indexes")}
        assert versions == [m[0] for m in MIGRATIONS]
        assert "ix_insp_station_seq" in indexes
        assert Store(url).max_seq_below("st-old", 10**9) is not None
    finally:
        postgres.drop_database("older")


def test_the_config_chooses_postgresql_by_url_and_reads_the_password_file(postgres, tmp_path):
    secret = tmp_path / "store-password"
    secret.write_text("s3cret\n")
    url = postgres.create_database("from_config")
    try:
        config = StoreConfig(url=url, password_file=str(secret), path=str(tmp_path / "unused.db"))
        assert config.secret_password() == "s3cret"  # trust auth: the server ignores it
        store = Store.from_config(config)
        assert store.backend == "postgresql" and not (tmp_path / "unused.db").exists()
        store.close()
    finally:
        postgres.drop_database("from_config")
    assert Store.from_config(StoreConfig(path=str(tmp_path / "g.db"))).backend == "sqlite"
    missing = StoreConfig(url=url, password_file=str(tmp_path / "nowhere"))
    with pytest.raises(StoreError, match="cannot read store.password_file"):
        missing.secret_password()


@pytest.mark.parametrize("few", [True, False])
def test_a_search_reads_the_same_pages_whichever_way_the_backend_plans_it(make_store, few):
    """PostgreSQL reads a search with few matches from its GIN index first, and one with many
    from the newest rows first (falling back to every match); each way gives the pages a plain
    keyset query gives, in order, across cursors."""
    store = make_store()
    batch = Batch()
    for n in range(40):  # cores C1200..C1239, a minute apart, on three stations
        batch.inspections.append(
            record(station=f"st-{n % 3}", core_id=f"C12{n:02d}", minutes=n, rid=f"R{n:03d}")
        )
    store.write(batch)
    for q, want in (("C123", 10), ("C12", 40), ("C1205", 1), ("C99", 0)):
        flt = InspectionFilter(q=q)
        expected = sorted(
            (r for r in batch.inspections if r.core_id.lower().startswith(q.lower())),
            key=lambda r: (r.ts, r.id, r.station),
            reverse=True,
        )
        assert len(expected) == want
        got, cursor = [], None
        while True:
            rows = store._keyset(flt, 6, cursor, few=few)
            got += [r["id"] for r in rows]
            if len(rows) < 6:
                break
            cursor = f"{rows[-1]['ts']}|{rows[-1]['id']}|{rows[-1]['station']}"
        assert got == [r.id for r in expected], q


def test_a_large_batch_holding_a_record_twice_keeps_what_one_by_one_delivery_keeps(make_store):
    # Large enough for PostgreSQL's COPY path; a node's replay can put a record, its override
    # and the record again into one batch, in any order.
    filler = [record(core_id=f"F{i}", minutes=i) for i in range(40)]
    base = record(core_id="TWICE")
    over = overridden(base, 3)
    later = record(core_id="LATER", rid="01LATER").model_copy(update={"revision": 1})
    later2 = later.model_copy(update={"revision": 2, "core_id": "LATER-2"})
    batch = [*filler[:20], over, base, later2, *filler[20:], base, later]
    together, one_by_one = make_store("together"), make_store("single")
    together.write(Batch(inspections=batch))
    for rec in batch:
        one_by_one.write(Batch(inspections=[rec]))
    rows = together.page(InspectionFilter(), limit=100).rows
    assert rows == one_by_one.page(InspectionFilter(), limit=100).rows
    by_core = {r["core_id"]: r for r in rows}
    assert len(rows) == 42
    assert by_core["TWICE"]["code"] == 3 and by_core["TWICE"]["overridden"] == 1
    assert "LATER" not in by_core and by_core["LATER-2"]["revision"] == 2


def test_postgresql_pages_are_planned_without_jit_or_parallel_workers(postgres):
    # A prefix search's row estimate is a guess far above the real count; with the server's
    # defaults it crosses jit_above_cost and starts workers (150 ms for one row at 10M rows).
    url = postgres.create_database("session_settings")
    try:
        store = _filled(Store(url), 30)
        rows = store.select(
            "SELECT current_setting('jit') AS jit, "
            "current_setting('max_parallel_workers_per_gather') AS workers",
            [],
        )
        assert rows == [{"jit": "off", "workers": "0"}]
        plan = "\n".join(
            r["QUERY PLAN"]
            for r in store.select(
                "EXPLAIN SELECT count(*) FROM inspections WHERE reasons LIKE ?", ["%wear%"]
            )
        )
        assert "Gather" not in plan
        store.close()
    finally:
        postgres.drop_database("session_settings")
