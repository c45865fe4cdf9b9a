"""The outbox: messages waiting to be published, in the journal's SQLite database.

A message is added in the same transaction as the record it belongs to (the journal calls
`Outbox.add` inside its own transaction), read back in insertion order, and marked delivered only
after the broker acknowledged it (QoS 1 PUBACK). Rows are kept after delivery for a while, so the
journal can show what went out; `prune_delivered` removes old ones.

Companions: a function registered in `companions` adds messages that go with another one (the
node registers the Sparkplug DDATA of each `inspection` message); the journal calls `expand`
before it writes a record's messages, so they share its transaction, its order and its outbox
accounting. Publishers may drain disjoint kinds (`pending(kinds=...)`, `pending(exclude=...)`).

Bounds (`enforce_bounds`, run by the publisher while it drains): the outbox holds at most
`max_rows` undelivered messages and none older than `max_age_s`. When the rows bound is exceeded,
the oldest undelivered messages are dropped in this order of kind until it is met: `stats`, then
`frame` (a label editor that waited that long has given up), then `shadow`, then `snapshot`, then
`event`, then `available`, then `sparkplug` (DDATA), then `inspection` (the journal keeps every record, so an inspection
dropped here can be republished from it). `result` messages are never dropped by the rows bound,
only by age: a PLC result is small and the handshake depends on it; nor is `models`, the retained
registry state, which is small and published only on a change. Anything older
than `max_age_s` is dropped whatever its kind. The publisher reports every drop as an event.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import ParamSpec, TypeVar

import sqlite_utils

from edge.contract import Event
from edge.errors import JournalError

P = ParamSpec("P")
R = TypeVar("R")


def _sql(what: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Wrap sqlite3 errors leaving a public method in JournalError saying what failed."""

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return func(*args, **kwargs)
            except sqlite3.Error as exc:
                raise JournalError(f"outbox: cannot {what}: {exc}") from exc

        return wrapper

    return decorate


DDL = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    msg_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    inspection_id TEXT,
    created_at REAL NOT NULL,
    delivered_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(id) WHERE delivered_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_inspection ON outbox(inspection_id);
"""

PENDING_AGE_INDEX = (
    "CREATE INDEX IF NOT EXISTS outbox_pending_age ON outbox(created_at) WHERE delivered_at IS NULL"
)
"""The undelivered rows by age: `depth` and the age bound read it, not the whole table."""


_IDS_PER_STATEMENT = 500  # well within SQLite's limit on bound parameters

# Kinds dropped first when the rows bound is exceeded; `result` is never dropped by rows.
DROP_ORDER = (
    "stats",
    "frame",
    "shadow",
    "snapshot",
    "event",
    "available",
    "sparkplug",
    "inspection",
)

Companion = Callable[["OutboxMessage"], "list[OutboxMessage]"]
"""Messages that go with a message, in the same transaction (e.g. Sparkplug DDATA with a record)."""


@dataclass(frozen=True)
class Dropped:
    """What one `enforce_bounds` call removed, per kind."""

    by_age: dict[str, int] = field(default_factory=dict)
    by_rows: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.by_age.values()) + sum(self.by_rows.values())


@dataclass(frozen=True)
class OutboxMessage:
    """A message to publish."""

    kind: str  # contract topic kind: inspection, result, snapshot, event, stats, available, ...
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    msg_id: str = ""  # the contract id consumers deduplicate by (record or event id)
    inspection_id: str | None = None

    @classmethod
    def for_event(cls, event: Event, topic: str) -> OutboxMessage:
        """The message that publishes `event` on its station's `event` topic."""
        return cls(
            kind="event",
            topic=topic,
            qos=1,
            msg_id=event.id,
            payload=event.model_dump_json(by_alias=True).encode(),
        )


@dataclass(frozen=True)
class OutboxRow(OutboxMessage):
    """A message as stored, with its position in the outbox."""

    id: int = 0
    created_at: float = 0.0


class Outbox:
    """The outbox table of one journal database."""

    def __init__(self, db: sqlite_utils.Database):
        self.db = db
        self.companions: list[Companion] = []

    def expand(self, messages: list[OutboxMessage]) -> list[OutboxMessage]:
        """`messages` with each one's companions right after it (unchanged without companions)."""
        if not self.companions:
            return messages
        out: list[OutboxMessage] = []
        for message in messages:
            out.append(message)
            for companion in self.companions:
                out.extend(companion(message))
        return out

    @staticmethod
    @_sql("create the outbox table")
    def create(db: sqlite_utils.Database) -> None:
        """Create the table and indexes (idempotent)."""
        db.conn.executescript(DDL + PENDING_AGE_INDEX + ";")

    @_sql("add messages")
    def add(
        self,
        messages: list[OutboxMessage],
        now: float | None = None,
        inspection_id: str | None = None,
    ) -> None:
        """Insert messages; does not commit (the caller's transaction decides).

        With `inspection_id`, every message is tied to that inspection, whatever it says itself.
        """
        now = time.time() if now is None else now
        self.db.conn.executemany(
            "INSERT INTO outbox (msg_id, kind, topic, payload, qos, retain, inspection_id, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    m.msg_id,
                    m.kind,
                    m.topic,
                    m.payload,
                    m.qos,
                    int(m.retain),
                    m.inspection_id if inspection_id is None else inspection_id,
                    now,
                )
                for m in messages
            ],
        )

    @_sql("queue messages")
    def add_committed(self, messages: list[OutboxMessage], now: float | None = None) -> None:
        """Insert messages in a transaction of their own and commit."""
        with self.db.conn:
            self.add(messages, now)

    @_sql("read pending messages")
    def pending(
        self,
        limit: int = 100,
        after_id: int = 0,
        kinds: tuple[str, ...] | None = None,
        exclude: tuple[str, ...] = (),
    ) -> list[OutboxRow]:
        """Undelivered messages in order, starting after `after_id`; only `kinds` when given,
        none of `exclude`.

        One SQL row carries them all: the rows as a JSON array and their payloads end to end in
        one BLOB. The sqlite3 module lets go of the GIL for every row it steps through, and while
        the MQTT client's thread is busy with acknowledgements each step waited for it: in
        bench/mqtt.py 500 rows took 4 ms row by row and 1 ms as one row (alone, 1.2 and 1.5 ms).
        group_concat keeps a BLOB's bytes as they are in a UTF-8 database (the journal's).
        """
        where, args = "", list[object]([after_id])
        if kinds is not None:
            where += f" AND kind IN ({', '.join('?' * len(kinds))})"
            args.extend(kinds)
        if exclude:
            where += f" AND kind NOT IN ({', '.join('?' * len(exclude))})"
            args.extend(exclude)
        meta, payloads = self.db.conn.execute(
            "SELECT json_group_array(json_array(id, msg_id, kind, topic, length(payload), qos,"
            " retain, inspection_id, created_at)), CAST(group_concat(payload, x'') AS BLOB)"
            f" FROM (SELECT * FROM outbox WHERE delivered_at IS NULL AND id > ?{where}"
            " ORDER BY id LIMIT ?)",
            (*args, limit),
        ).fetchone()
        payloads = payloads or b""  # NULL when there is no row
        rows, at = [], 0
        for r in json.loads(meta):  # the same pass filled both, so the payloads follow the rows
            end = at + r[4]
            # Positional, in OutboxRow's field order: half the cost of keywords.
            rows.append(
                OutboxRow(r[2], r[3], payloads[at:end], r[5], bool(r[6]), r[1], r[7], r[0], r[8])
            )
            at = end
        if at != len(payloads):
            raise sqlite3.DatabaseError(f"outbox payloads: {len(payloads)} bytes for {at}")
        if any(a.id > b.id for a, b in zip(rows, rows[1:], strict=False)):
            rows.sort(key=lambda row: row.id)
        return rows

    @_sql("mark messages delivered")
    def mark_delivered(self, ids: list[int], now: float | None = None) -> None:
        """Mark messages delivered and commit."""
        if not ids:
            return
        now = time.time() if now is None else now
        with self.db.conn:
            for start in range(0, len(ids), _IDS_PER_STATEMENT):
                chunk = ids[start : start + _IDS_PER_STATEMENT]
                self.db.conn.execute(
                    f"UPDATE outbox SET delivered_at = ? WHERE id IN ({', '.join('?' * len(chunk))})",
                    (now, *chunk),
                )

    @_sql("discard messages")
    def discard(self, kind: str, now: float | None = None) -> int:
        """Mark every undelivered message of `kind` delivered (nobody will send it); commit."""
        now = time.time() if now is None else now
        with self.db.conn:
            cur = self.db.conn.execute(
                "UPDATE outbox SET delivered_at = ? WHERE delivered_at IS NULL AND kind = ?",
                (now, kind),
            )
        return cur.rowcount

    @_sql("read the newest message id")
    def newest_id(self) -> int:
        """The highest row id ever committed (0 for an empty outbox)."""
        row = self.db.conn.execute("SELECT max(id) FROM outbox").fetchone()
        return row[0] or 0

    @_sql("count pending messages")
    def depth(self, now: float | None = None) -> tuple[int, float | None]:
        """(undelivered count, age in seconds of the oldest undelivered message or None)."""
        return self._depth(time.time() if now is None else now)

    def _depth(self, now: float) -> tuple[int, float | None]:
        # Two queries: each reads one partial index alone (together they would read the table).
        conn = self.db.conn
        (count,) = conn.execute("SELECT count(*) FROM outbox WHERE delivered_at IS NULL").fetchone()
        (oldest,) = conn.execute(
            "SELECT min(created_at) FROM outbox WHERE delivered_at IS NULL"
        ).fetchone()
        return count, (None if oldest is None else max(0.0, now - oldest))

    @_sql("prune delivered messages")
    def prune_delivered(self, older_than_s: float, now: float | None = None) -> int:
        """Delete delivered rows older than `older_than_s`; return how many."""
        now = time.time() if now is None else now
        with self.db.conn:
            cur = self.db.conn.execute(
                "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?",
                (now - older_than_s,),
            )
        return cur.rowcount

    @_sql("enforce the outbox bounds")
    def enforce_bounds(self, max_rows: int, max_age_s: float, now: float | None = None) -> Dropped:
        """Drop undelivered messages beyond the bounds (policy in the module docstring); commit."""
        now = time.time() if now is None else now
        with self.db.conn:
            count, age = self._depth(now)
            by_age = (
                {} if age is None or age <= max_age_s else self._drop_older_than(now - max_age_s)
            )
            by_rows: dict[str, int] = {}
            excess = (self._depth(now)[0] if by_age else count) - max_rows
            for kind in DROP_ORDER:
                if excess <= 0:
                    break
                dropped = self._drop_oldest(kind, excess)
                if dropped:
                    by_rows[kind] = dropped
                    excess -= dropped
        return Dropped(by_age=by_age, by_rows=by_rows)

    def _drop_older_than(self, cutoff: float) -> dict[str, int]:
        counts = dict(
            self.db.conn.execute(
                "SELECT kind, count(*) FROM outbox WHERE delivered_at IS NULL AND created_at < ? GROUP BY kind",
                (cutoff,),
            ).fetchall()
        )
        if counts:
            self.db.conn.execute(
                "DELETE FROM outbox WHERE delivered_at IS NULL AND created_at < ?", (cutoff,)
            )
        return counts

    def _drop_oldest(self, kind: str, limit: int) -> int:
        cur = self.db.conn.execute(
            "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE delivered_at IS NULL AND kind = ?"
            " ORDER BY id LIMIT ?)",
            (kind, limit),
        )
        return cur.rowcount
