"""The gateway's store: a SQLite copy of the stations' output, for viewing.

The stations' journals are the system of record. Writing is idempotent: an inspection is keyed
by its station and `id` (one station cannot touch another's records), so replaying a station's
messages (or deleting the database and letting the nodes republish) rebuilds the same rows. A
republished inspection replaces the stored one when its `revision` (which the node raises each
time it changes the record) is higher; at an equal revision (nodes from before revisions send 1
always) it does unless it would drop an override. Dates inside a payload never decide.

The schema's version is in `PRAGMA user_version`; a store from before version 1 (inspections
keyed by `id` alone) is migrated in place when opened, keeping every row. Logins (`sessions`) are
kept here too, so a logout or a changed account ends a session for good.

One writer (the ingest's batch thread) and many readers (the web handlers, each thread with its
own connection); WAL mode lets them run together. Full-text search (FTS5) covers core ids and
the decision's reasons.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlite_utils

from edge.contract import (
    Credit,
    Event,
    InspectionRecord,
    ModelsState,
    OverrideInfo,
    Result,
    ShadowReport,
    Stats,
)
from edge.contract.timefmt import normalize_ts
from gateway import models_store, tokens
from gateway.errors import AmbiguousInspection, StoreError

COUNT_CAP = 10_000
"""Counts of filtered inspections stop here (an exact COUNT over a million rows is too slow)."""

_INSPECTION_COLUMNS = (
    "id",
    "station",
    "ts",
    "seq",
    "core_id",
    "family",
    "code",
    "rules_code",
    "credit",
    "overridden",
    "override_ts",
    "impact_known",
    "material_kept_kg",
    "co2e_avoided_kg",
    "reasons",
    "record",
    "revision",
)

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

_UPSERT = (
    f"INSERT INTO inspections ({', '.join(_INSPECTION_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _INSPECTION_COLUMNS)}) "
    "ON CONFLICT(station, id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _INSPECTION_COLUMNS if c not in ("station", "id"))
    + " WHERE excluded.revision > inspections.revision"
    " OR (excluded.revision = inspections.revision"
    " AND excluded.overridden >= inspections.overridden)"
)


@dataclass(frozen=True)
class InspectionFilter:
    """The History filters (every one optional). Times are RFC 3339; `code` is the effective code."""

    station: str | None = None
    since: str | None = None
    until: str | None = None
    code: int | None = None
    family: str | None = None
    q: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        """SQL condition and parameters for these filters."""
        parts: list[str] = []
        params: list[Any] = []
        for column, value in (
            ("station", self.station),
            ("code", self.code),
            ("family", self.family),
        ):
            if value is not None and value != "":
                parts.append(f"{column} = ?")
                params.append(value)
        if self.since:
            parts.append("ts >= ?")
            params.append(normalize_ts(self.since))
        if self.until:
            parts.append("ts < ?")
            params.append(normalize_ts(self.until))
        if self.q and self.q.strip():
            parts.append(
                "rowid IN (SELECT rowid FROM inspections_fts WHERE inspections_fts MATCH ?)"
            )
            params.append(fts_query(self.q))
        return (" AND ".join(parts) or "1"), params


def fts_query(text: str) -> str:
    """A user's search words as an FTS5 query: every word, as a quoted prefix."""
    words = [w for w in text.replace('"', " ").split() if w]
    return " ".join(f'"{w}" *' for w in words) or '""'


@dataclass
class Page:
    """One page of inspections, newest first, with the cursor of the next page."""

    rows: list[dict[str, Any]]
    next_cursor: str | None
    count: int
    count_capped: bool


@dataclass
class Batch:
    """What the ingest hands the store in one transaction."""

    inspections: list[InspectionRecord] = field(default_factory=list)
    results: list[tuple[str, Result, str]] = field(default_factory=list)
    stats: list[Stats] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    available: list[tuple[str, str, str]] = field(default_factory=list)
    snapshots: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    models: list[tuple[ModelsState, str]] = field(default_factory=list)  # (state, received_ts)
    shadows: list[ShadowReport] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(
            len(v)
            for v in (
                self.inspections,
                self.results,
                self.stats,
                self.events,
                self.available,
                self.snapshots,
                self.models,
                self.shadows,
            )
        )


@contextmanager
def _sql_errors(what: str) -> Iterator[None]:
    """Raise a sqlite3.Error leaving the block as StoreError, saying `what` could not be done."""
    try:
        yield
    except sqlite3.Error as exc:
        raise StoreError(f"gateway store: cannot {what}: {exc}") from exc


def inspection_row(record: InspectionRecord) -> tuple[Any, ...]:
    """The stored columns of one record, in _INSPECTION_COLUMNS order."""
    impact = record.impact
    reasons = " ".join(r.text for r in record.decision.reasons)
    if record.override:
        reasons = f"{reasons} {record.override.reason}"
    return (
        record.id,
        record.station,
        normalize_ts(record.ts),
        record.seq,
        record.core_id,
        record.family,
        int(record.effective_code()),
        int(record.decision.code),
        int(record.effective_credit()),
        1 if record.override else 0,
        normalize_ts(record.override.ts) if record.override else None,
        None if impact is None else int(impact.known),
        impact.material_kept_kg if impact and impact.known else None,
        impact.co2e_avoided_kg if impact and impact.known else None,
        reasons,
        record.to_json(),
        record.revision,
    )


class Store:
    """The gateway store at `path` (created with its tables and indexes when missing)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._local = threading.local()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._create()
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the gateway store {self.path}: {exc}") from exc

    # ------------------------------------------------------------ connections

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's connection."""
        db = getattr(self._local, "db", None)
        if db is None:
            with _sql_errors(f"open {self.path}"):
                conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
                conn.execute("PRAGMA busy_timeout = 30000")
            db = sqlite_utils.Database(conn)
            self._local.db = db
        return db

    def _create(self) -> None:
        db = self.db
        db.enable_wal()
        db.conn.execute("PRAGMA synchronous = NORMAL")
        self._migrate(db.conn)
        db.conn.executescript(_SCHEMA)
        models_store.create_tables(db.conn)
        tokens.create_tables(db.conn)
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

    def close(self) -> None:
        """Close this thread's connection."""
        db = getattr(self._local, "db", None)
        if db is not None:
            with _sql_errors("close the connection"):
                db.conn.close()
            self._local.db = None

    # ------------------------------------------------------------ writing

    def write(self, batch: Batch) -> None:
        """Write one batch in one transaction (idempotent; see the module docstring)."""
        conn = self.db.conn
        with _sql_errors("write a batch"):
            with conn:
                self._write_inspections(conn, batch.inspections)
                self._write_station_facts(conn, batch)
                conn.executemany(
                    "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            e.id,
                            e.station,
                            normalize_ts(e.ts),
                            e.level,
                            e.code,
                            e.message,
                            json.dumps(e.detail),
                        )
                        for e in batch.events
                    ],
                )
                conn.executemany(
                    "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?, ?)", batch.snapshots
                )
                models_store.write(conn, batch.models, batch.shadows)

    def _write_inspections(self, conn: sqlite3.Connection, records: list[InspectionRecord]) -> None:
        conn.executemany(_UPSERT, [inspection_row(r) for r in records])
        audit = [
            (
                r.station,
                r.id,
                r.override.ts,
                r.override.user,
                "override",
                int(r.override.code),
                r.override.label,
                r.override.reason,
                int(r.override.credit),
            )
            for r in records
            if r.override
        ]
        conn.executemany(
            "INSERT OR IGNORE INTO audit "
            "(station, inspection_id, ts, user, action, code, label, reason, credit) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            audit,
        )
        seen = [(r.station, normalize_ts(r.ts)) for r in records]
        conn.executemany(
            "INSERT INTO stations (station, last_seen) VALUES (?, ?) ON CONFLICT(station) DO UPDATE "
            "SET last_seen = max(coalesce(last_seen, ''), excluded.last_seen)",
            seen,
        )

    def _write_station_facts(self, conn: sqlite3.Connection, batch: Batch) -> None:
        upsert = (
            "INSERT INTO stations (station, {cols}) VALUES (?, {marks}) ON CONFLICT(station) "
            "DO UPDATE SET {sets}"
        )

        def run(cols: tuple[str, ...], rows: list[tuple]) -> None:
            sql = upsert.format(
                cols=", ".join(cols),
                marks=", ".join("?" for _ in cols),
                sets=", ".join(f"{c} = excluded.{c}" for c in cols),
            )
            conn.executemany(sql, rows)

        run(
            ("available", "available_ts", "last_seen"),
            [(s, state, ts, ts) for s, state, ts in batch.available],
        )
        run(
            ("stats", "stats_ts", "last_seen"),
            [
                (s.station, s.model_dump_json(), now, now)
                for s in batch.stats
                for now in [normalize_ts(s.ts)]
            ],
        )
        run(
            ("result", "result_ts", "last_seen"),
            [(station, r.model_dump_json(), ts, ts) for station, r, ts in batch.results],
        )

    def add_audit(
        self,
        station: str,
        inspection_id: str,
        ts: str,
        user: str,
        action: str,
        code: int | None = None,
        label: str | None = None,
        reason: str | None = None,
    ) -> None:
        """Record a person's action on a station's inspection (an override request, a confirmation)."""
        with _sql_errors(f"record {action} on {inspection_id}"), self.db.conn as conn:
            conn.execute(
                "INSERT OR IGNORE INTO audit "
                "(station, inspection_id, ts, user, action, code, label, reason) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (station, inspection_id, ts, user, action, code, label, reason),
            )

    # ------------------------------------------------------------ inspections

    def page(self, flt: InspectionFilter, limit: int = 50, cursor: str | None = None) -> Page:
        """One page, newest first; `cursor` is the `next_cursor` of the page before."""
        rows = self._keyset(flt, limit + 1, cursor)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _cursor(rows[-1]) if more else None
        count, capped = self.count(flt)
        return Page(rows, next_cursor, count, capped)

    def count(self, flt: InspectionFilter, cap: int = COUNT_CAP) -> tuple[int, bool]:
        """How many match, up to `cap`; True when there are more than `cap`."""
        where, params = flt.where()
        with _sql_errors("count inspections"):
            (n,) = self.db.conn.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM inspections WHERE {where} LIMIT ?)",
                [*params, cap + 1],
            ).fetchone()
        return min(n, cap), n > cap

    def iter_filtered(self, flt: InspectionFilter, chunk: int = 1000) -> Iterator[dict[str, Any]]:
        """Every matching inspection, newest first, read a chunk at a time."""
        cursor = None
        while True:
            page_rows, cursor = self._chunk(flt, chunk, cursor)
            yield from page_rows
            if cursor is None:
                return

    def _chunk(
        self, flt: InspectionFilter, limit: int, cursor: str | None
    ) -> tuple[list[dict[str, Any]], str | None]:
        rows = self._keyset(flt, limit, cursor)
        nxt = _cursor(rows[-1]) if len(rows) == limit else None
        return rows, nxt

    def _keyset(
        self, flt: InspectionFilter, limit: int, cursor: str | None
    ) -> list[dict[str, Any]]:
        """Up to `limit` matching rows, newest first, after the (ts, id, station) in `cursor`."""
        where, params = flt.where()
        if cursor:
            where += " AND (ts, id, station) < (?, ?, ?)"
            params = [*params, *_position(cursor)]
        return self._select(
            f"SELECT * FROM inspections WHERE {where} "
            "ORDER BY ts DESC, id DESC, station DESC LIMIT ?",
            [*params, limit],
            "read inspections",
        )

    def get(self, inspection_id: str, station: str | None = None) -> dict[str, Any] | None:
        """One inspection's row, or None. Without `station` the id must name one station's
        inspection only: AmbiguousInspection when several stations use it."""
        if station is not None:
            rows = self._select(
                "SELECT * FROM inspections WHERE station = ? AND id = ?",
                [station, inspection_id],
                f"read {inspection_id} of {station}",
            )
            return rows[0] if rows else None
        rows = self._select(
            "SELECT * FROM inspections WHERE id = ? ORDER BY station",
            [inspection_id],
            f"read {inspection_id}",
        )
        if len(rows) > 1:
            raise AmbiguousInspection(inspection_id, [r["station"] for r in rows])
        return rows[0] if rows else None

    def latest(self, station: str, n: int = 20) -> list[dict[str, Any]]:
        """The station's last `n` inspections, newest first."""
        return self.page(InspectionFilter(station=station), limit=n).rows

    def core_records(self, core_id: str) -> list[InspectionRecord]:
        """Every inspection of one core, oldest first, as contract records."""
        rows = self._select(
            "SELECT record FROM inspections WHERE core_id = ? ORDER BY ts, id",
            [core_id],
            f"read the inspections of core {core_id}",
        )
        return [InspectionRecord.model_validate_json(r["record"]) for r in rows]

    def override_history(self, core_id: str) -> dict[str, list[OverrideInfo]]:
        """Every override the stations applied to one core's inspections, oldest first, by id."""
        rows = self._select(
            "SELECT a.* FROM audit a "
            "JOIN inspections i ON i.station = a.station AND i.id = a.inspection_id "
            "WHERE i.core_id = ? AND a.action = 'override' ORDER BY a.ts, a.seq",
            [core_id],
            f"read the overrides of core {core_id}",
        )
        out: dict[str, list[OverrideInfo]] = {}
        for r in rows:
            out.setdefault(r["inspection_id"], []).append(
                OverrideInfo(
                    code=r["code"],
                    label=r["label"],
                    credit=r["credit"] or Credit.UNKNOWN,
                    reason=r["reason"] or "",
                    user=r["user"],
                    ts=r["ts"],
                )
            )
        return out

    def audit(self, inspection_id: str, station: str | None = None) -> list[dict[str, Any]]:
        """The audit trail of one inspection, oldest first (`station` as for `get`)."""
        station = self._station_of(inspection_id, station)
        return self._select(
            "SELECT * FROM audit WHERE station = ? AND inspection_id = ? ORDER BY ts, seq",
            [station, inspection_id],
            f"read the audit trail of {inspection_id}",
        )

    def _station_of(self, inspection_id: str, station: str | None) -> str:
        """`station`, else the one station whose inspection has this id ('' for none)."""
        if station is not None:
            return station
        row = self.get(inspection_id)
        return row["station"] if row else ""

    def code_counts(self) -> dict[int, int]:
        """Inspections per effective code (for /metrics)."""
        with _sql_errors("count inspections by code"):
            rows = self.db.conn.execute(
                "SELECT code, count(*) FROM inspections GROUP BY code"
            ).fetchall()
        return {int(code): n for code, n in rows}

    # ------------------------------------------------------------ stations, events, snapshots

    def stations(self) -> list[dict[str, Any]]:
        """Every station seen, by id, with its latest availability, stats and result."""
        rows = self._select("SELECT * FROM stations ORDER BY station", [], "read the stations")
        for row in rows:
            for key in ("stats", "result"):
                row[key] = json.loads(row[key]) if row[key] else None
        return rows

    def events(
        self,
        station: str | None = None,
        level: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Events newest first, filtered by station and level, with the next page's cursor."""
        parts, params = ["1"], []
        for column, value in (("station", station), ("level", level)):
            if value:
                parts.append(f"{column} = ?")
                params.append(value)
        if cursor:
            ts, _, last_id = cursor.partition("|")
            parts.append("(ts, id) < (?, ?)")
            params += [ts, last_id]
        rows = self._select(
            f"SELECT * FROM events WHERE {' AND '.join(parts)} ORDER BY ts DESC, id DESC LIMIT ?",
            [*params, limit + 1],
            "read events",
        )
        more = len(rows) > limit
        rows = rows[:limit]
        for row in rows:
            row["detail"] = json.loads(row["detail"]) if row["detail"] else {}
        return rows, (f"{rows[-1]['ts']}|{rows[-1]['id']}" if more else None)

    def snapshots_for(self, inspection_id: str, station: str | None = None) -> list[str]:
        """File names of the snapshots taken with one inspection (`station` as for `get`)."""
        station = self._station_of(inspection_id, station)
        return [
            r["name"]
            for r in self._select(
                "SELECT name FROM snapshots WHERE station = ? AND inspection_id = ? ORDER BY ts",
                [station, inspection_id],
                f"read the snapshots of {inspection_id}",
            )
        ]

    def latest_snapshot(self, station: str) -> str | None:
        """File name of the station's newest snapshot."""
        rows = self._select(
            "SELECT name FROM snapshots WHERE station = ? ORDER BY ts DESC LIMIT 1",
            [station],
            f"read the latest snapshot of {station}",
        )
        return rows[0]["name"] if rows else None

    def snapshots_beyond(self, keep: int) -> list[str]:
        """Names of the oldest snapshots beyond the newest `keep`."""
        return [
            r["name"]
            for r in self._select(
                "SELECT name FROM snapshots ORDER BY ts DESC, name DESC LIMIT -1 OFFSET ?",
                [keep],
                "read old snapshots",
            )
        ]

    def forget_snapshots(self, names: Iterable[str]) -> None:
        """Remove snapshot rows (their files are deleted by the caller)."""
        with _sql_errors("forget snapshots"), self.db.conn as conn:
            conn.executemany("DELETE FROM snapshots WHERE name = ?", [(n,) for n in names])

    # ------------------------------------------------------------ sessions

    def add_session(
        self, session_id: str, username: str, credential: str, created_ts: str, expires_ts: str
    ) -> None:
        """Remember a login (and forget the logins that have expired by `created_ts`)."""
        with _sql_errors(f"record a login of {username}"), self.db.conn as conn:
            conn.execute("DELETE FROM sessions WHERE expires_ts <= ?", (created_ts,))
            conn.execute(
                "INSERT INTO sessions VALUES (?, ?, ?, ?, ?)",
                (session_id, username, credential, created_ts, expires_ts),
            )

    def session(self, session_id: str, now_ts: str) -> dict[str, Any] | None:
        """The login `session_id` while it lasts (not ended, not expired at `now_ts`), or None."""
        rows = self._select(
            "SELECT * FROM sessions WHERE id = ? AND expires_ts > ?",
            [session_id, now_ts],
            "read a login",
        )
        return rows[0] if rows else None

    def end_session(self, session_id: str) -> None:
        """End one login; its cookie no longer works."""
        with _sql_errors("end a login"), self.db.conn as conn:
            conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))

    # ------------------------------------------------------------ helpers

    def _select(self, sql: str, params: list[Any], what: str) -> list[dict[str, Any]]:
        """Rows as dicts; a failing query (or read of its rows) is a StoreError saying `what`."""
        with _sql_errors(what):
            cur = self.db.conn.execute(sql, params)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def select(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        """Rows of a read-only query as dicts (for the reports in gateway.reports)."""
        return self._select(sql, params, "run a query")


def _cursor(row: dict[str, Any]) -> str:
    """The keyset position of a row: `ts|id|station` (a station id holds no `|`)."""
    return f"{row['ts']}|{row['id']}|{row['station']}"


def _position(cursor: str) -> tuple[str, str, str]:
    """(ts, id, station) of a cursor; one from before stations were in it reads as station ''."""
    ts, _, rest = cursor.partition("|")
    last_id, sep, station = rest.rpartition("|")
    return (ts, last_id, station) if sep else (ts, rest, "")
