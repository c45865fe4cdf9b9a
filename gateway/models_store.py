"""The stations' model registries, their shadow models' reports and the model commands sent
from the dashboard, kept in the gateway store (same database, same connections).

    create_tables(conn)                      at a SQLite store's start (idempotent; PostgreSQL's
                                             tables are in gateway.backends.postgres' migrations)
    write(tx, states, reports)               inside the store's batch transaction
    latest_state(store, station)             the newest ModelsState, or None
    shadow_reports(store, station)           every ShadowReport kept, oldest first
    add_command(store, station, command, ts, active_before)
    commands(store, station, limit)          the latest model commands sent, newest first
    command_outcome(store, command_id)       the node's event answering one command, if any
    label_events(store, station)             the `label_recorded` events, oldest first

A `models` message is retained: the newest by its `ts` is kept per station, so a late
redelivery of an older one does not undo a newer one. A shadow report is keyed by (station,
inspection id, candidate): one redelivered counts once, as a redelivered inspection does.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any, Protocol

from edge.contract import ModelCommand, ModelsState, ShadowReport
from edge.contract.timefmt import normalize_ts
from gateway.backends import Dialect, Transaction

SCHEMA = """
CREATE TABLE IF NOT EXISTS model_states (
    station TEXT PRIMARY KEY, ts TEXT NOT NULL, received_ts TEXT NOT NULL, state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS shadow_reports (
    station TEXT NOT NULL, inspection_id TEXT NOT NULL, candidate TEXT NOT NULL, active TEXT,
    ts TEXT NOT NULL, code INTEGER NOT NULL, active_code INTEGER NOT NULL, report TEXT NOT NULL,
    PRIMARY KEY (station, inspection_id, candidate)
);
CREATE INDEX IF NOT EXISTS ix_shadow_station_ts ON shadow_reports (station, ts);
CREATE TABLE IF NOT EXISTS model_commands (
    command_id TEXT PRIMARY KEY, station TEXT NOT NULL, ts TEXT NOT NULL, user TEXT NOT NULL,
    action TEXT NOT NULL, version TEXT, reason TEXT NOT NULL, active_before TEXT
);
CREATE INDEX IF NOT EXISTS ix_model_commands_station_ts ON model_commands (station, ts);
"""

CHANGE_EVENTS = {
    "shadow": "model_shadowed",
    "end_shadow": "model_shadow_ended",
    "promote": "model_promoted",
    "rollback": "model_rolled_back",
}
"""The node's event for each `model/set` action it carried out (edge.registry)."""
REFUSED_EVENT = "model_refused"
LABEL_EVENT = "label_recorded"

MAX_REPORTS = 50_000
"""Shadow reports read for one station's page (the newest); older ones stay stored."""


class Reader(Protocol):
    """What the queries need of gateway.store.Store."""

    def select(self, sql: str, params: list[Any]) -> list[dict[str, Any]]: ...

    def execute(self, sql: str, params: Sequence[Any], what: str) -> int: ...

    @property
    def dialect(self) -> Dialect: ...


def create_tables(conn: sqlite3.Connection) -> None:
    """Create the tables and indexes when missing."""
    conn.executescript(SCHEMA)


def write(
    tx: Transaction,
    states: list[tuple[ModelsState, str]],
    reports: list[ShadowReport],
) -> None:
    """Keep `states` ((state, received_ts): the newest per station by `ts`) and `reports`
    (once each), in the caller's transaction."""
    tx.executemany(
        "INSERT INTO model_states (station, ts, received_ts, state) VALUES (?, ?, ?, ?) "
        "ON CONFLICT(station) DO UPDATE SET ts = excluded.ts, received_ts = excluded.received_ts,"
        " state = excluded.state WHERE excluded.ts >= model_states.ts",
        [
            (s.station, normalize_ts(s.ts), received, s.model_dump_json(by_alias=True))
            for s, received in states
        ],
    )
    tx.executemany(
        "INSERT INTO shadow_reports VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        [
            (
                r.station,
                r.id,
                r.candidate,
                r.active,
                normalize_ts(r.ts),
                int(r.code),
                int(r.active_code),
                r.model_dump_json(by_alias=True),
            )
            for r in reports
        ],
    )


def latest_state(store: Reader, station: str) -> tuple[ModelsState, str] | None:
    """The station's newest models state and when the gateway received it, or None."""
    rows = store.select("SELECT state, received_ts FROM model_states WHERE station = ?", [station])
    if not rows:
        return None
    return ModelsState.model_validate_json(rows[0]["state"]), rows[0]["received_ts"]


def shadow_reports(store: Reader, station: str) -> list[ShadowReport]:
    """The station's shadow reports (the newest MAX_REPORTS), oldest first."""
    rows = store.select(
        "SELECT report FROM (SELECT report, ts, inspection_id FROM shadow_reports "
        "WHERE station = ? ORDER BY ts DESC, inspection_id DESC LIMIT ?) AS newest "
        "ORDER BY ts, inspection_id",
        [station, MAX_REPORTS],
    )
    return [ShadowReport.model_validate_json(r["report"]) for r in rows]


def add_command(
    store: Reader, station: str, command: ModelCommand, ts: str, active_before: str | None
) -> None:
    """Remember a `model/set` sent to `station` at `ts`, and which model was active then."""
    store.execute(
        "INSERT INTO model_commands VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (
            command.command_id,
            station,
            ts,
            command.user,
            command.action,
            command.version,
            command.reason,
            active_before,
        ),
        "record a model command",
    )


def commands(store: Reader, station: str, limit: int = 10) -> list[dict[str, Any]]:
    """The latest model commands sent to `station`, newest first."""
    return store.select(
        "SELECT * FROM model_commands WHERE station = ? ORDER BY ts DESC, command_id LIMIT ?",
        [station, limit],
    )


def command_outcome(store: Reader, station: str, command_id: str) -> dict[str, Any] | None:
    """The node's event carrying `command_id` (a change or `model_refused`), or None yet."""
    rows = store.select(
        "SELECT code, message, ts FROM events WHERE station = ? AND code IN (?, ?, ?, ?, ?) "
        f"AND {store.dialect.json_field('detail', 'command_id')} = ? ORDER BY ts DESC LIMIT 1",
        [station, *CHANGE_EVENTS.values(), REFUSED_EVENT, command_id],
    )
    return rows[0] if rows else None


def label_events(store: Reader, station: str) -> list[dict[str, Any]]:
    """The station's `label_recorded` events (the labels its journal keeps), oldest first, each
    with its detail decoded (inspection_id, view, good, masks, user)."""
    rows = store.select(
        "SELECT ts, id, detail FROM events WHERE station = ? AND code = ? ORDER BY ts, id",
        [station, LABEL_EVENT],
    )
    for row in rows:
        row["detail"] = json.loads(row["detail"]) if row["detail"] else {}
    return rows
