"""The SQLite backend: one file, WAL mode, a connection per thread, FTS5 for search.

One writer (the ingest's batch thread) and many readers (the web handlers, each thread with its
own connection); WAL mode lets them run together. Full-text search (FTS5) covers core ids and
the decision's reasons.

The schema's version is in `PRAGMA user_version`; a store from before version 1 (inspections
keyed by `id` alone) is migrated in place when opened, keeping every row.

A batch of rows for one `INSERT ... VALUES (?, ...)` goes to SQLite as one statement reading a
JSON array (`json_each`), not as one statement per row: the sqlite3 module lets go of the GIL
and takes it back for every statement it steps, and the ingest's parser (the MQTT thread) held
it meanwhile, so the writer waited at every row. Stored values are the same (SQLite's JSON
numbers and text are its integers, reals and text); a batch holding values JSON cannot carry
(bytes, NaN) goes row by row as before. bench/gateway.py: the store's upsert 35 us a row this
way, 45 us row by row, on one thread.
"""

from __future__ import annotations

import functools
import json
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlite_utils

from gateway.backends import Dialect, SearchPlan
from gateway.errors import StoreError

SCHEMA_VERSION = 1
"""`PRAGMA user_version` of the current schema; 0 is a store keyed by inspection id alone."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inspections (
    id TEXT NOT NULL, station TEXT NOT NULL, ts TEXT NOT NULL, seq INTEGER,
    core_id TEXT NOT NULL, family TEXT, code INTEGER NOT NULL, rules_code INTEGER NOT NULL,
    credit INTEGER, overridden INTEGER NOT NULL DEFAULT 0, override_ts TEXT,
    impact_known INTEGER, material_kept_kg REAL, co2e_avoided_kg REAL,
    reasons TEXT NOT NULL DEFAULT '', record TEXT NOT NULL, revision INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (station, id)
);
CREATE INDEX IF NOT EXISTS ix_insp_id ON inspections (id);
CREATE INDEX IF NOT EXISTS ix_insp_ts ON inspections (ts, id, station);
CREATE INDEX IF NOT EXISTS ix_insp_station_ts ON inspections (station, ts, id);
CREATE INDEX IF NOT EXISTS ix_insp_code_ts ON inspections (code, ts, id, station);
CREATE INDEX IF NOT EXISTS ix_insp_station_code_ts ON inspections (station, code, ts, id);
CREATE INDEX IF NOT EXISTS ix_insp_family_ts ON inspections (family, ts, id, station);
CREATE INDEX IF NOT EXISTS ix_insp_core ON inspections (core_id, ts);
CREATE INDEX IF NOT EXISTS ix_insp_station_seq ON inspections (station, seq);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY, station TEXT NOT NULL, inspection_id TEXT NOT NULL, ts TEXT NOT NULL,
    user TEXT NOT NULL, action TEXT NOT NULL, code INTEGER, label TEXT, reason TEXT,
    credit INTEGER, UNIQUE (station, inspection_id, action, ts, user)
);
CREATE TABLE IF NOT EXISTS stations (
    station TEXT PRIMARY KEY, available TEXT, available_ts TEXT, last_seen TEXT,
    stats TEXT, stats_ts TEXT, result TEXT, result_ts TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, station TEXT NOT NULL, ts TEXT NOT NULL, level TEXT NOT NULL,
    code TEXT NOT NULL, message TEXT NOT NULL, detail TEXT
);
CREATE INDEX IF NOT EXISTS ix_events_ts ON events (ts, id);
CREATE INDEX IF NOT EXISTS ix_events_station_ts ON events (station, ts, id);
CREATE TABLE IF NOT EXISTS snapshots (
    name TEXT PRIMARY KEY, station TEXT NOT NULL, ts TEXT NOT NULL, inspection_id TEXT
);
CREATE INDEX IF NOT EXISTS ix_snap_station_ts ON snapshots (station, ts);
CREATE INDEX IF NOT EXISTS ix_snap_inspection ON snapshots (inspection_id);
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY, username TEXT NOT NULL, credential TEXT NOT NULL,
    created_ts TEXT NOT NULL, expires_ts TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_sessions_user ON sessions (username);
"""

# Version 0 to 1: inspections and their audit keyed by (station, id), with the record's revision.
# New tables are filled from the old ones, which are then dropped (SQLite cannot change a primary
# key in place); rowids are kept. The full-text index is rebuilt afterwards (see Store._create).
_MIGRATE_TO_1 = """
DROP TABLE IF EXISTS inspections_fts;
CREATE TABLE inspections_v1 (
    id TEXT NOT NULL, station TEXT NOT NULL, ts TEXT NOT NULL, seq INTEGER,
    core_id TEXT NOT NULL, family TEXT, code INTEGER NOT NULL, rules_code INTEGER NOT NULL,
    credit INTEGER, overridden INTEGER NOT NULL DEFAULT 0, override_ts TEXT,
    impact_known INTEGER, material_kept_kg REAL, co2e_avoided_kg REAL,
    reasons TEXT NOT NULL DEFAULT '', record TEXT NOT NULL, revision INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (station, id)
);
INSERT INTO inspections_v1 (rowid, id, station, ts, seq, core_id, family, code, rules_code,
    credit, overridden, override_ts, impact_known, material_kept_kg, co2e_avoided_kg, reasons,
    record, revision)
SELECT rowid, id, station, ts, seq, core_id, family, code, rules_code, credit, overridden,
    override_ts, impact_known, material_kept_kg, co2e_avoided_kg, reasons, record,
    coalesce(json_extract(record, '$.revision'), 1)
FROM inspections;
DROP TABLE inspections;
ALTER TABLE inspections_v1 RENAME TO inspections;
CREATE TABLE audit_v1 (
    seq INTEGER PRIMARY KEY, station TEXT NOT NULL, inspection_id TEXT NOT NULL, ts TEXT NOT NULL,
    user TEXT NOT NULL, action TEXT NOT NULL, code INTEGER, label TEXT, reason TEXT,
    credit INTEGER, UNIQUE (station, inspection_id, action, ts, user)
);
INSERT INTO audit_v1 (seq, station, inspection_id, ts, user, action, code, label, reason, credit)
SELECT a.seq, coalesce(i.station, ''), a.inspection_id, a.ts, a.user, a.action, a.code, a.label,
    a.reason, a.credit
FROM audit a LEFT JOIN inspections i ON i.id = a.inspection_id;
DROP TABLE audit;
ALTER TABLE audit_v1 RENAME TO audit;
"""


def fts_query(text: str) -> str:
    """A user's search words as an FTS5 query: every word, as a quoted prefix."""
    words = [w for w in text.replace('"', " ").split() if w]
    return " ".join(f'"{w}" *' for w in words) or '""'


class SqliteDialect:
    """SQLite's SQL (see gateway.backends.Dialect)."""

    name = "sqlite"
    limit_all = "LIMIT -1"

    def greatest(self, first: str, second: str) -> str:
        return f"max({first}, {second})"

    def json_field(self, expr: str, key: str) -> str:
        return f"json_extract({expr}, '$.{key}')"

    def json_each(self, expr: str, key: str) -> str:
        return f"json_each({expr}, '$.{key}')"

    def search(self, text: str) -> tuple[str, list[Any]]:
        return (
            "rowid IN (SELECT rowid FROM inspections_fts WHERE inspections_fts MATCH ?)",
            [fts_query(text)],
        )

    def search_pages(self, searching: bool, few: bool) -> list[SearchPlan]:
        return []  # the FTS5 subquery leads the plan already


class _Transaction:
    """Statements on one sqlite3 connection inside its transaction."""

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self.conn.execute(sql, params).rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        batch = _from_json(sql) if len(rows) > 1 else None
        if batch is not None:
            try:
                values = json.dumps(rows, allow_nan=False)
            except (TypeError, ValueError):  # bytes, NaN: row by row
                pass
            else:
                self.conn.execute(batch, (values,))
                return
        self.conn.executemany(sql, rows)


_INSERT_VALUES = re.compile(
    r"\s*INSERT INTO (?P<table>\w+) \((?P<columns>[^()]*)\) VALUES \((?P<params>[?, ]*)\)(?P<tail>.*)",
    re.DOTALL | re.IGNORECASE,
)


@functools.lru_cache(maxsize=64)
def _from_json(sql: str) -> str | None:
    """`INSERT INTO t (a, b) VALUES (?, ?) <tail>` as one statement taking the rows as a JSON
    array of arrays; None for any other statement. `WHERE true` keeps an upsert's ON CONFLICT
    from being read as a join (SQLite's documented parsing ambiguity)."""
    match = _INSERT_VALUES.fullmatch(sql)
    if match is None:
        return None
    count = match["params"].count("?")
    if count != len(match["columns"].split(",")):
        return None
    values = ", ".join(f"json_extract(value, '$[{n}]')" for n in range(count))
    return (
        f"INSERT INTO {match['table']} ({match['columns']}) SELECT {values} FROM json_each(?)"
        f" WHERE true{match['tail']}"
    )


class SqliteDatabase:
    """The store's SQLite file at `path` (created with its tables and indexes when missing);
    each of `create_tables` is called with the connection after the store's own tables, for the
    tables of the modules beside the store (models, tokens)."""

    dialect: Dialect = SqliteDialect()
    errors: tuple[type[Exception], ...] = (sqlite3.Error,)

    def __init__(
        self,
        path: str | Path,
        create_tables: Sequence[Callable[[sqlite3.Connection], None]] = (),
    ):
        self.path = Path(path)
        self._create_tables = create_tables
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._create()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the gateway store {self.path}: {exc}") from exc

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection."""
        db = getattr(self._local, "db", None)
        if db is None:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout = 30000")
            # Per connection, so the writer thread's too: in WAL mode a commit then waits for
            # no fsync (a power cut may lose the last batches, which a station's gap requests
            # bring back; an application crash loses nothing).
            conn.execute("PRAGMA synchronous = NORMAL")
            db = sqlite_utils.Database(conn)
            self._local.db = db
        return db

    def rows(self, sql: str, params: Sequence[Any]) -> list[dict[str, Any]]:
        cur = self.db.conn.execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    @contextmanager
    def transaction(self) -> Iterator[_Transaction]:
        conn = self.db.conn
        with conn:
            yield _Transaction(conn)

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.conn.close()
            self._local.db = None

    def _create(self) -> None:
        db = self.db
        db.enable_wal()
        self._migrate(db.conn)
        db.conn.executescript(_SCHEMA)
        for create in self._create_tables:
            create(db.conn)
        if "inspections_fts" not in db.table_names():
            db.table("inspections").enable_fts(
                ["core_id", "reasons"], fts_version="FTS5", create_triggers=True
            )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring an older store to SCHEMA_VERSION in one transaction; mark a new one current."""
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the gateway store {self.path} has schema {version}, newer than this "
                f"software's {SCHEMA_VERSION}; upgrade reman-edge"
            )
        if version == SCHEMA_VERSION:
            return
        old = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'inspections'").fetchone()
        script = _MIGRATE_TO_1 if old else ""
        try:  # one transaction: a failed migration leaves the old store as it was
            conn.executescript(
                f"BEGIN IMMEDIATE; {script} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
            )
        except sqlite3.Error:
            if conn.in_transaction:
                conn.rollback()
            raise
