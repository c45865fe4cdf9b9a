"""The gateway's store: a copy of the stations' output, for viewing, in SQLite (the default) or
PostgreSQL (`store.url`, for a plant), through the backends in gateway.backends.

The stations' journals are the system of record. Writing is idempotent: an inspection is keyed
by its station and `id` (one station cannot touch another's records), so replaying a station's
messages (or deleting the database and letting the nodes republish) rebuilds the same rows. A
republished inspection replaces the stored one when its `revision` (which the node raises each
time it changes the record) is higher; at an equal revision (nodes from before revisions send 1
always) it does unless it would drop an override. Dates inside a payload never decide.

Each backend versions its schema (SQLite in `PRAGMA user_version`, PostgreSQL in a
`schema_migrations` table) and brings an older store up to date when it opens it. Logins
(`sessions`) are kept here too, so a logout or a changed account ends a session for good.

One writer (the ingest's batch thread) and many readers (the web handlers). The same statements
run on both backends; the few differences are in their dialects. Search covers core ids and the
decision's reasons (FTS5 in SQLite, full-text search with a GIN index in PostgreSQL).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
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
from gateway.backends import Database, Dialect, Transaction
from gateway.backends.sqlite import SCHEMA_VERSION, SqliteDatabase, SqliteDialect, fts_query
from gateway.config import StoreConfig
from gateway.errors import AmbiguousInspection, StoreError

__all__ = ["SCHEMA_VERSION", "Batch", "InspectionFilter", "Page", "Store", "fts_query"]

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

_UPSERT = (
    f"INSERT INTO inspections ({', '.join(_INSPECTION_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in _INSPECTION_COLUMNS)}) "
    "ON CONFLICT(station, id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _INSPECTION_COLUMNS if c not in ("station", "id"))
    + " WHERE excluded.revision > inspections.revision"
    " OR (excluded.revision = inspections.revision"
    " AND excluded.overridden >= inspections.overridden)"
)


_SQLITE = SqliteDialect()


@dataclass(frozen=True)
class InspectionFilter:
    """The History filters (every one optional). Times are RFC 3339; `code` is the effective code."""

    station: str | None = None
    since: str | None = None
    until: str | None = None
    code: int | None = None
    family: str | None = None
    q: str | None = None

    @property
    def searching(self) -> bool:
        """A search text is set."""
        return bool(self.q and self.q.strip())

    def where(self, dialect: Dialect = _SQLITE) -> tuple[str, list[Any]]:
        """SQL condition and parameters for these filters, in `dialect` (the search differs)."""
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
        if self.q and self.searching:
            condition, words = dialect.search(self.q)
            parts.append(condition)
            params += words
        return (" AND ".join(parts) or "1 = 1"), params


def keyset_statements(
    flt: InspectionFilter, dialect: Dialect, limit: int, cursor: str | None, few: bool
) -> list[tuple[str, list[Any]]]:
    """The statements that read one page (see Store._keyset), in the order to try them: the
    first whose rows fill the page gives it, else the last one's rows are the page."""
    after, position = "", []
    if cursor:
        after, position = " AND (ts, id, station) < (?, ?, ?)", list(_position(cursor))
    order = "ORDER BY ts DESC, id DESC, station DESC LIMIT ?"
    where, params = flt.where(dialect)
    plans = dialect.search_pages(flt.searching, few)
    if not plans:
        sql = f"SELECT * FROM inspections WHERE {where}{after} {order}"
        return [(sql, [*params, *position, limit])]
    base, base_params = replace(flt, q=None).where(dialect)
    search, words = dialect.search(flt.q or "")
    groups = {"base": base_params, "search": words, "after": position}
    out = []
    for plan in plans:
        sql, names = plan.sql(base, search, after, order)
        out.append((sql, [*[v for name in names for v in groups[name]], limit]))
    return out


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
    """The gateway store: the SQLite file at `target`, or the PostgreSQL database when `target`
    is a `postgresql://` URL (its password in the URL or in `password`). Either is created with
    its tables and indexes when missing, and migrated when older."""

    def __init__(self, target: str | Path, *, password: str | None = None, pool_size: int = 10):
        self.url: str | None = None
        self.path: Path | None = None
        self._db: Database
        if is_url(target):
            from gateway.backends.postgres import PostgresDatabase  # psycopg only when used

            self.url = str(target)
            self._db = PostgresDatabase(self.url, password, pool_size)
        else:
            self.path = Path(target)
            self._db = SqliteDatabase(self.path, (models_store.create_tables, tokens.create_tables))

    @classmethod
    def from_config(cls, config: StoreConfig) -> Store:
        """The store that `config` names: `url` when set, else the SQLite file at `path`."""
        if config.url:
            return cls(config.url, password=config.secret_password(), pool_size=config.pool_size)
        return cls(config.path)

    @property
    def dialect(self) -> Dialect:
        """The backend's SQL dialect (for queries written outside this module)."""
        return self._db.dialect

    @property
    def backend(self) -> str:
        """`sqlite` or `postgresql`."""
        return self._db.dialect.name

    @property
    def db(self) -> sqlite_utils.Database:
        """This thread's SQLite connection (SQLite only: for tools and tests that inspect the
        file itself)."""
        if not isinstance(self._db, SqliteDatabase):
            raise StoreError("gateway store: a PostgreSQL store has no SQLite connection")
        with self._errors(f"open {self.path}"):
            return self._db.db

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        """Raise a driver error leaving the block as StoreError, saying `what` failed."""
        try:
            yield
        except self._db.errors as exc:
            raise StoreError(f"gateway store: cannot {what}: {exc}") from exc

    @contextmanager
    def transaction(self, what: str) -> Iterator[Transaction]:
        """One transaction (committed at the end of the block); a failure is a StoreError
        saying `what` could not be done."""
        with self._errors(what), self._db.transaction() as tx:
            yield tx

    def execute(self, sql: str, params: Sequence[Any], what: str) -> int:
        """Run one statement in its own transaction; the number of rows it changed."""
        with self.transaction(what) as tx:
            return tx.execute(sql, params)

    def close(self) -> None:
        """Close the connections (this thread's for SQLite, the pool for PostgreSQL); a later
        call opens new ones."""
        with self._errors("close the connection"):
            self._db.close()

    # ------------------------------------------------------------ writing

    def write(self, batch: Batch) -> None:
        """Write one batch in one transaction (idempotent; see the module docstring)."""
        with self.transaction("write a batch") as tx:
            self._write_inspections(tx, batch.inspections)
            self._write_station_facts(tx, batch)
            tx.executemany(
                "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
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
            tx.executemany(
                "INSERT INTO snapshots VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET "
                "station = excluded.station, ts = excluded.ts, "
                "inspection_id = excluded.inspection_id",
                batch.snapshots,
            )
            models_store.write(tx, batch.models, batch.shadows)

    def _write_inspections(self, tx: Transaction, records: list[InspectionRecord]) -> None:
        tx.executemany(_UPSERT, [inspection_row(r) for r in records])
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
        tx.executemany(
            "INSERT INTO audit "
            '(station, inspection_id, ts, "user", action, code, label, reason, credit) '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            audit,
        )
        seen: dict[str, str] = {}  # one row per station, its latest: a batch holds many
        for r in records:
            ts = normalize_ts(r.ts)
            if ts > seen.get(r.station, ""):
                seen[r.station] = ts
        latest = self.dialect.greatest("coalesce(stations.last_seen, '')", "excluded.last_seen")
        tx.executemany(
            "INSERT INTO stations (station, last_seen) VALUES (?, ?) ON CONFLICT(station) DO UPDATE "
            f"SET last_seen = {latest}",
            sorted(seen.items()),  # in one order, so two writers never wait on each other
        )

    def _write_station_facts(self, tx: Transaction, batch: Batch) -> None:
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
            tx.executemany(sql, rows)

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
        self.execute(
            "INSERT INTO audit "
            '(station, inspection_id, ts, "user", action, code, label, reason) '
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (station, inspection_id, ts, user, action, code, label, reason),
            f"record {action} on {inspection_id}",
        )

    # ------------------------------------------------------------ inspections

    def page(self, flt: InspectionFilter, limit: int = 50, cursor: str | None = None) -> Page:
        """One page, newest first; `cursor` is the `next_cursor` of the page before."""
        count, capped = self.count(flt)
        rows = self._keyset(flt, limit + 1, cursor, few=not capped)
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = _cursor(rows[-1]) if more else None
        return Page(rows, next_cursor, count, capped)

    def count(self, flt: InspectionFilter, cap: int = COUNT_CAP) -> tuple[int, bool]:
        """How many match, up to `cap`; True when there are more than `cap`."""
        where, params = flt.where(self.dialect)
        (row,) = self._select(
            f"SELECT count(*) AS n FROM (SELECT 1 FROM inspections WHERE {where} LIMIT ?) AS m",
            [*params, cap + 1],
            "count inspections",
        )
        n = row["n"]
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
        self, flt: InspectionFilter, limit: int, cursor: str | None, few: bool = False
    ) -> list[dict[str, Any]]:
        """Up to `limit` matching rows, newest first, after the (ts, id, station) in `cursor`.

        `few`: the filter is known to match at most COUNT_CAP rows. PostgreSQL cannot estimate
        how many rows a prefix search matches, and left to itself walks the time index backwards
        through every row to find one core's inspection (seconds at a million rows); so a search
        there is run as the dialect's `search_pages` say: with few matches, their keys from the
        search index first, sorted; with many, the newest RECENT_WINDOW rows first, and only when
        those hold less than a page, the keys of every match.
        """
        rows: list[dict[str, Any]] = []
        for sql, params in keyset_statements(flt, self.dialect, limit, cursor, few):
            rows = self._select(sql, params, "read inspections")
            if len(rows) >= limit:
                break
        return rows

    def max_seq_below(self, station: str, seq: int) -> int | None:
        """The highest seq of `station`'s stored inspections below `seq`, or None."""
        (row,) = self._select(
            "SELECT max(seq) AS m FROM inspections WHERE station = ? AND seq < ?",
            [station, seq],
            f"read the seqs of {station}",
        )
        return row["m"]

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
        rows = self._select(
            "SELECT code, count(*) AS n FROM inspections GROUP BY code",
            [],
            "count inspections by code",
        )
        return {int(r["code"]): r["n"] for r in rows}

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
        parts, params = ["1 = 1"], []
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
                "SELECT name FROM snapshots ORDER BY ts DESC, name DESC "
                f"{self.dialect.limit_all} OFFSET ?",
                [keep],
                "read old snapshots",
            )
        ]

    def forget_snapshots(self, names: Iterable[str]) -> None:
        """Remove snapshot rows (their files are deleted by the caller)."""
        with self.transaction("forget snapshots") as tx:
            tx.executemany("DELETE FROM snapshots WHERE name = ?", [(n,) for n in names])

    # ------------------------------------------------------------ sessions

    def add_session(
        self, session_id: str, username: str, credential: str, created_ts: str, expires_ts: str
    ) -> None:
        """Remember a login (and forget the logins that have expired by `created_ts`)."""
        with self.transaction(f"record a login of {username}") as tx:
            tx.execute("DELETE FROM sessions WHERE expires_ts <= ?", (created_ts,))
            tx.execute(
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
        self.execute("DELETE FROM sessions WHERE id = ?", (session_id,), "end a login")

    # ------------------------------------------------------------ helpers

    def _select(self, sql: str, params: list[Any], what: str) -> list[dict[str, Any]]:
        """Rows as dicts; a failing query (or read of its rows) is a StoreError saying `what`."""
        with self._errors(what):
            return self._db.rows(sql, params)

    def select(self, sql: str, params: list[Any]) -> list[dict[str, Any]]:
        """Rows of a read-only query as dicts (for the reports in gateway.reports)."""
        return self._select(sql, params, "run a query")


def is_url(target: str | Path) -> bool:
    """Whether a store's `target` is a PostgreSQL URL rather than a SQLite file."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def _cursor(row: dict[str, Any]) -> str:
    """The keyset position of a row: `ts|id|station` (a station id holds no `|`)."""
    return f"{row['ts']}|{row['id']}|{row['station']}"


def _position(cursor: str) -> tuple[str, str, str]:
    """(ts, id, station) of a cursor; one from before stations were in it reads as station ''."""
    ts, _, rest = cursor.partition("|")
    last_id, sep, station = rest.rpartition("|")
    return (ts, last_id, station) if sep else (ts, rest, "")
