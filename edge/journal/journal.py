"""The station journal: the system of record for one station, in one SQLite file.

Tables (schema version in `PRAGMA user_version`, upgraded by the ordered `MIGRATIONS`):

    inspections  the full record JSON plus indexed columns (seq, ts, core, family, codes, credit)
    images       image files of an inspection: path, sha256, size, created, pruned
    overrides    audit rows: who changed which decision, from what to what, why, when
    events       warnings and errors (the `event` topic's payloads)
    outbox       messages to publish (edge.journal.outbox), written in the same transaction as their record
    counters     the station's sequence number
    unwritten_images  inspections committed before their image files were written (see below)

Consistency between a record and its outbox rows is checkable at any time: each inspection row
holds `outbox_count` (messages written for it) and `outbox_pruned` (its rows deleted since, kept
up to date by a trigger on the outbox), so `rows present + pruned == count` holds whoever
deletes delivered rows. `check()` verifies that and SQLite's own `integrity_check`; `open` runs it.

Durability: WAL with `synchronous=NORMAL` by default. A kill -9 cannot lose or tear a committed
transaction: its WAL frames were written with write() before COMMIT returned and sit in the OS
page cache, which outlives the process; an unfinished transaction has no commit frame and is
ignored on the next open. NORMAL skips only the fsync at each commit, so a power cut or kernel
crash may roll back the last few commits (never corrupt the file). The outbox drain therefore
calls `sync()` (one fsync of the WAL) before publishing a batch: whatever reaches the PLC is
durable, at one fsync per batch instead of one per inspection (group commit; on an SD card an
fsync takes milliseconds). `synchronous="FULL"` syncs every commit instead, for stations that
prefer that; `bench/journal.py` shows both.

Images after the record: the station commits a record (and its result) first and writes its image
files after it, off the path to the PLC (`record_next(..., images_later=True)`, then
`record_images`). The record names its files from the start; until `record_images` commits,
an `unwritten_images` row says they may be missing. A node stopped in between leaves that row;
at the next start `unwritten_images()` lists those records and `record_images` registers the
files that did reach the disk (written atomically, so each is whole or absent). A file that did
not is gone for good: its frame lived only in the killed process. The record and its decision
stand as published; the missing files have no image rows, so nothing offers them, and the
station raises an `images_not_written` event naming them.

Threading: a Journal and its connection belong to one thread (the node's event loop); SQLite
errors are wrapped in JournalError.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import sqlite_utils

from edge.contract import Credit, Disposition, Event, Impact, InspectionRecord, OverrideInfo
from edge.contract.timefmt import UTC, normalize_ts, rfc3339, utc_now
from edge.errors import JournalError
from edge.events import Events
from edge.journal.outbox import PENDING_AGE_INDEX, Outbox, OutboxMessage

if TYPE_CHECKING:
    from edge.decision.families import FamilySet

ImageInput = tuple[str | Path, bytes | None]
ImageFile = tuple[str, str, int]
"""An image file as the journal lists it: path, sha256, size in bytes."""
OVERLAY_SUFFIX = "-overlay"
"""End of the file stem of an annotated overlay (`v1-overlay.jpg`); every other image is raw."""
MakeMessages = Callable[[InspectionRecord], list[OutboxMessage]]

_SCHEMA_1 = [
    """CREATE TABLE IF NOT EXISTS inspections (
        id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL,
        ts TEXT NOT NULL,
        station TEXT NOT NULL,
        core_id TEXT NOT NULL,
        family TEXT,
        part_number TEXT,
        code INTEGER NOT NULL,
        label TEXT NOT NULL,
        credit INTEGER NOT NULL,
        effective_code INTEGER NOT NULL,
        effective_credit INTEGER NOT NULL,
        rules_sha256 TEXT,
        model_version TEXT,
        outbox_count INTEGER NOT NULL DEFAULT 0,
        outbox_pruned INTEGER NOT NULL DEFAULT 0,
        record TEXT NOT NULL,
        created_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS inspections_ts ON inspections(ts)",
    "CREATE INDEX IF NOT EXISTS inspections_core ON inspections(core_id, ts)",
    "CREATE INDEX IF NOT EXISTS inspections_effective ON inspections(effective_code, ts)",
    "CREATE INDEX IF NOT EXISTS inspections_seq ON inspections(seq)",
    """CREATE TABLE IF NOT EXISTS images (
        id INTEGER PRIMARY KEY,
        inspection_id TEXT NOT NULL REFERENCES inspections(id),
        path TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        created REAL NOT NULL,
        pruned_at REAL
    )""",
    "CREATE INDEX IF NOT EXISTS images_inspection ON images(inspection_id)",
    "CREATE INDEX IF NOT EXISTS images_live ON images(created) WHERE pruned_at IS NULL",
    """CREATE TABLE IF NOT EXISTS overrides (
        id INTEGER PRIMARY KEY,
        inspection_id TEXT NOT NULL REFERENCES inspections(id),
        old_code INTEGER NOT NULL,
        new_code INTEGER NOT NULL,
        old_credit INTEGER NOT NULL,
        credit INTEGER NOT NULL,
        reason TEXT NOT NULL,
        user TEXT NOT NULL,
        ts TEXT NOT NULL,
        command_id TEXT
    )""",
    "CREATE INDEX IF NOT EXISTS overrides_inspection ON overrides(inspection_id)",
    """CREATE TABLE IF NOT EXISTS events (
        id TEXT PRIMARY KEY,
        ts TEXT NOT NULL,
        level TEXT NOT NULL,
        code TEXT NOT NULL,
        message TEXT NOT NULL,
        record TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS events_ts ON events(ts)",
    "CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "INSERT OR IGNORE INTO counters (name, value) VALUES ('seq', 0)",
    # Whoever deletes outbox rows (delivered and pruned, or dropped), the inspection keeps count.
    """CREATE TRIGGER IF NOT EXISTS outbox_pruned AFTER DELETE ON outbox
       WHEN old.inspection_id IS NOT NULL
       BEGIN
         UPDATE inspections SET outbox_pruned = outbox_pruned + 1 WHERE id = old.inspection_id;
       END""",
]


def _migration_1(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA_1:
        conn.execute(statement)


def _migration_2(conn: sqlite3.Connection) -> None:
    # Triggers taken for inspection and not yet recorded: what a killed node left unfinished.
    conn.execute(
        """CREATE TABLE IF NOT EXISTS triggers (
            id TEXT PRIMARY KEY,
            source TEXT NOT NULL,
            core_id TEXT,
            part_number TEXT,
            ts TEXT NOT NULL
        )"""
    )


def _migration_3(conn: sqlite3.Connection) -> None:
    # Which image is the frame as taken and which the annotated overlay: only raw frames may
    # become training data. Older rows are told apart by the overlay's file-name suffix.
    conn.execute("ALTER TABLE images ADD COLUMN kind TEXT NOT NULL DEFAULT 'raw'")
    conn.execute("UPDATE images SET kind = 'overlay' WHERE path LIKE ?", (f"%{OVERLAY_SUFFIX}.%",))


def _migration_4(conn: sqlite3.Connection) -> None:
    # A person's labels of an inspection's views (edge.journal.labels); the latest one counts.
    conn.execute(
        """CREATE TABLE IF NOT EXISTS labels (
            id INTEGER PRIMARY KEY,
            inspection_id TEXT NOT NULL REFERENCES inspections(id),
            view INTEGER NOT NULL,
            good INTEGER NOT NULL,
            masks TEXT NOT NULL,
            user TEXT NOT NULL,
            ts TEXT NOT NULL,
            command_id TEXT
        )"""
    )
    conn.execute("CREATE INDEX IF NOT EXISTS labels_inspection ON labels(inspection_id, view)")


def _migration_5(conn: sqlite3.Connection) -> None:
    # What a shadow model made of an inspection (edge.journal.shadow).
    conn.execute(
        """CREATE TABLE IF NOT EXISTS shadow (
            id INTEGER PRIMARY KEY,
            inspection_id TEXT NOT NULL REFERENCES inspections(id),
            version TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            defects TEXT NOT NULL,
            code INTEGER NOT NULL,
            label TEXT NOT NULL,
            ts TEXT NOT NULL
        )"""
    )
    conn.execute("CREATE INDEX IF NOT EXISTS shadow_version ON shadow(version, id)")


def _migration_6(conn: sqlite3.Connection) -> None:
    # The undelivered outbox rows by age, so that counting them and finding the oldest (stats,
    # the outbox bounds, once a second while draining) reads an index, not every payload.
    conn.execute(PENDING_AGE_INDEX)


def _migration_7(conn: sqlite3.Connection) -> None:
    # Records committed before their image files were written (see the module docstring).
    conn.execute(
        """CREATE TABLE IF NOT EXISTS unwritten_images (
            inspection_id TEXT PRIMARY KEY REFERENCES inspections(id),
            created REAL NOT NULL
        )"""
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [
    _migration_1,
    _migration_2,
    _migration_3,
    _migration_4,
    _migration_5,
    _migration_6,
    _migration_7,
]
"""Ordered schema migrations; migration i brings the schema to user_version i+1."""

SCHEMA_VERSION = len(MIGRATIONS)


@dataclasses.dataclass(frozen=True)
class OverrideRow:
    """One audit row of an override."""

    inspection_id: str
    old_code: int
    new_code: int
    old_credit: int
    credit: int
    reason: str
    user: str
    ts: str
    command_id: str | None


@dataclasses.dataclass(frozen=True)
class PendingTrigger:
    """A trigger the station took for inspection; journaled until its record is."""

    id: str
    source: str
    core_id: str | None
    part_number: str | None
    ts: str


Drafted = tuple[InspectionRecord, list[OutboxMessage], list[ImageInput]]
"""What `record_next` builds once the seq is known: record, outbox messages, images."""


@contextmanager
def _wrapped(action: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise JournalError(f"journal: {action} failed: {exc}") from exc


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, a folder the user may not write
        raise JournalError(f"journal: cannot make its folder {folder}: {exc.strerror}") from exc


class Journal:
    """The station journal. Use `Journal.open(path)`; one thread only (the node's event loop)."""

    def __init__(
        self,
        db: sqlite_utils.Database,
        path: Path,
        events: Events | None = None,
        families: FamilySet | None = None,
    ):
        self.db = db
        self.path = path
        self.events = events
        self.families = families
        self.outbox = Outbox(db)

    # ------------------------------------------------------------ opening

    @classmethod
    def open(
        cls,
        path: str | Path,
        events: Events | None = None,
        *,
        families: FamilySet | None = None,
        synchronous: str = "NORMAL",
        check: bool = True,
    ) -> Journal:
        """Open (creating or migrating) the journal at `path` and check its integrity.

        `families`, when given, lets an override recompute the record's impact figures.
        Raises JournalError when the file cannot be opened or fails its integrity check.
        """
        path = Path(path)
        with _wrapped(f"opening {path}"):
            _make_folder(path.parent)
            conn = sqlite3.connect(str(path), timeout=10.0)
            journal = cls(sqlite_utils.Database(conn), path, events, families)
            journal._configure(synchronous)
            journal._migrate()
        if check:
            journal._check_or_raise()
        return journal

    def _configure(self, synchronous: str) -> None:
        if synchronous.upper() not in ("NORMAL", "FULL", "EXTRA"):
            raise JournalError(
                f"journal: synchronous must be NORMAL, FULL or EXTRA, not {synchronous}"
            )
        conn = self.db.conn
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise JournalError(f"journal: {self.path} cannot use WAL (journal_mode is {mode})")
        conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute("PRAGMA busy_timeout=10000")

    def _migrate(self) -> None:
        conn = self.db.conn
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"journal: {self.path} has schema {version}, newer than this "
                f"software's {SCHEMA_VERSION}; upgrade reman-edge"
            )
        if version < 1:
            Outbox.create(self.db)  # idempotent, commits on its own
        for number in range(version + 1, SCHEMA_VERSION + 1):
            conn.execute("BEGIN IMMEDIATE")
            try:
                MIGRATIONS[number - 1](conn)
                conn.execute(f"PRAGMA user_version={number}")
                conn.commit()
            except BaseException:
                conn.rollback()
                raise

    def sync(self) -> None:
        """Make every committed transaction durable against power loss (fsync of the WAL).

        Call before publishing what was committed (once per outbox batch is enough).
        """
        wal = Path(f"{self.path}-wal")
        try:
            fd = os.open(wal, os.O_RDONLY)
        except FileNotFoundError:
            return  # nothing in the WAL: everything is in the database file already
        except OSError as exc:
            raise JournalError(f"journal: cannot sync {wal}: {exc.strerror or exc}") from exc
        try:
            os.fsync(fd)
        except OSError as exc:
            raise JournalError(f"journal: cannot sync {wal}: {exc.strerror or exc}") from exc
        finally:
            os.close(fd)

    @property
    def schema_version(self) -> int:
        """The schema version of the open file."""
        return self.db.conn.execute("PRAGMA user_version").fetchone()[0]

    def close(self) -> None:
        """Close the connection (checkpointing the WAL)."""
        with _wrapped("close"):
            self.db.conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ integrity

    def check(self) -> list[str]:
        """Every consistency problem found (empty when the journal is sound)."""
        with _wrapped("integrity check"):
            conn = self.db.conn
            problems = [r[0] for r in conn.execute("PRAGMA integrity_check") if r[0] != "ok"]
            problems += [
                f"inspection {i}: {n} outbox rows, {p} pruned, {c} written"
                for i, n, p, c in conn.execute(_UNBALANCED)
            ]
            problems += [
                f"outbox row {r} belongs to unknown inspection {i}"
                for r, i in conn.execute(_ORPHANS)
            ]
        return problems

    def _check_or_raise(self) -> None:
        problems = self.check()
        if not problems:
            return
        if self.events is not None:
            self.events.error(
                "journal_inconsistent",
                "journal failed its integrity check",
                path=str(self.path),
                problems=problems[:20],
            )
        raise JournalError(
            f"journal: {self.path} failed its integrity check: " + "; ".join(problems[:5])
        )

    # ------------------------------------------------------------ writing

    def accept_trigger(self, trigger: PendingTrigger) -> None:
        """Journal a trigger the station starts inspecting (committed at once).

        `record_next` with its id removes it; one still here at start-up was interrupted.
        """
        with _wrapped(f"accepting trigger {trigger.id}"), self.db.conn as conn:
            conn.execute(
                "INSERT OR REPLACE INTO triggers (id, source, core_id, part_number, ts) "
                "VALUES (?, ?, ?, ?, ?)",
                (trigger.id, trigger.source, trigger.core_id, trigger.part_number, trigger.ts),
            )

    def interrupted_triggers(self) -> list[PendingTrigger]:
        """Triggers accepted and never recorded (the node stopped mid-inspection), oldest first."""
        with _wrapped("reading interrupted triggers"):
            rows = self.db.conn.execute(
                "SELECT id, source, core_id, part_number, ts FROM triggers ORDER BY ts, id"
            ).fetchall()
        return [PendingTrigger(*row) for row in rows]

    def record_next(
        self,
        build: Callable[[int], Drafted],
        trigger_id: str | None = None,
        images_later: bool = False,
    ) -> InspectionRecord:
        """Take the next seq and write what `build(seq)` returns, all in one transaction.

        A node killed before the commit leaves neither a record nor a used seq; the trigger
        `trigger_id` (see `accept_trigger`) is done once the record is written. With
        `images_later`, the record's image files come afterwards through `record_images`.
        """
        now = time.time()
        with _wrapped("recording the next inspection"), self.db.conn as conn:
            seq = conn.execute(_NEXT_SEQ).fetchone()[0]
            record, messages, images = build(seq)
            self._insert(conn, record, messages, images, now)
            if trigger_id is not None:
                conn.execute("DELETE FROM triggers WHERE id = ?", (trigger_id,))
            if images_later:
                conn.execute(
                    "INSERT INTO unwritten_images (inspection_id, created) VALUES (?, ?)",
                    (record.id, now),
                )
        return record

    def record_images(
        self,
        inspection_id: str,
        files: Iterable[ImageFile],
        messages: list[OutboxMessage] | None = None,
    ) -> None:
        """The image files of a record committed with `images_later` (as `write_image` or
        `image_file` describe them), and the messages that carry them (its snapshot), in one
        transaction; the record then has all it will get."""
        now = time.time()
        rows = [(inspection_id, *file) for file in files]
        messages = self.outbox.expand(messages or [])
        with _wrapped(f"recording the images of {inspection_id}"), self.db.conn as conn:
            if rows:
                conn.executemany(_INSERT_IMAGE, [(*r, now, image_kind(r[1])) for r in rows])
            if messages:
                self.outbox.add(messages, now=now, inspection_id=inspection_id)
                conn.execute(
                    "UPDATE inspections SET outbox_count = outbox_count + ? WHERE id = ?",
                    (len(messages), inspection_id),
                )
            conn.execute("DELETE FROM unwritten_images WHERE inspection_id = ?", (inspection_id,))

    def unwritten_images(self) -> list[InspectionRecord]:
        """Records whose image files may be missing (the node stopped before `record_images`),
        by seq."""
        with _wrapped("reading records without their images"):
            rows = self.db.conn.execute(
                "SELECT i.record FROM unwritten_images u JOIN inspections i"
                " ON i.id = u.inspection_id ORDER BY i.seq"
            ).fetchall()
        return [InspectionRecord.model_validate_json(row[0]) for row in rows]

    def last_seq(self) -> int | None:
        """The seq of the latest journaled inspection; None while there is none."""
        with _wrapped("last_seq"):
            return self.db.conn.execute("SELECT max(seq) FROM inspections").fetchone()[0]

    def next_seq(self) -> int:
        """The station's next sequence number; committed at once, so it survives restarts.

        For records built outside the journal (imports, tests); the station uses `record_next`,
        which takes the seq in the record's own transaction.
        """
        with _wrapped("next_seq"), self.db.conn as conn:
            return conn.execute(_NEXT_SEQ).fetchone()[0]

    def record_inspection(
        self,
        record: InspectionRecord,
        messages: list[OutboxMessage],
        images: Iterable[ImageInput] = (),
    ) -> None:
        """Write a record, its images' rows and its outbox messages in one transaction.

        An image given with bytes is written to its path first; one given with None must exist.
        Every message is tied to the record (`inspection_id = record.id`).
        """
        now = time.time()
        with _wrapped(f"recording inspection {record.id}"), self.db.conn as conn:
            self._insert(conn, record, messages, images, now)
            conn.execute(
                "UPDATE counters SET value = max(value, ?) WHERE name = 'seq'", (record.seq,)
            )

    def _insert(
        self,
        conn: sqlite3.Connection,
        record: InspectionRecord,
        messages: list[OutboxMessage],
        images: Iterable[ImageInput],
        now: float,
    ) -> None:
        rows = [_image_row(record.id, path, data) for path, data in images]
        messages = self.outbox.expand(messages)
        row = _inspection_row(record, len(messages), now, _published_json(record, messages))
        conn.execute(_INSERT_INSPECTION, row)
        if rows:
            conn.executemany(_INSERT_IMAGE, [(*r, now, image_kind(r[1])) for r in rows])
        self.outbox.add(messages, now=now, inspection_id=record.id)

    def record_event(self, event: Event, message: OutboxMessage | None = None) -> None:
        """Write an event and, when given, its outbox message in one transaction."""
        with _wrapped(f"recording event {event.id}"), self.db.conn as conn:
            conn.execute(
                "INSERT OR IGNORE INTO events (id, ts, level, code, message, record) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    event.id,
                    event.ts,
                    event.level,
                    event.code,
                    event.message,
                    event.model_dump_json(by_alias=True),
                ),
            )
            if message is not None:
                self.outbox.add([dataclasses.replace(message, inspection_id=None)])

    def apply_override(
        self,
        inspection_id: str,
        code: int,
        reason: str,
        user: str,
        credit: int | None = None,
        command_id: str | None = None,
        make_messages: MakeMessages | None = None,
    ) -> InspectionRecord | None:
        """A person's override: set the record's `override`, write an audit row, republish.

        The rules' original decision stays in `decision`. Idempotent: an override identical to
        the one in force (or a repeated `command_id`) changes nothing and returns None. The
        messages from `make_messages(updated_record)` are added to the outbox in the same
        transaction. `credit` None keeps the credit in force. Raises JournalError for an
        unknown inspection.
        """
        if code not in (1, 2, 3, 4):
            raise JournalError(f"journal: override code must be 1..4, not {code}")
        record = self.get(inspection_id)
        if record is None:
            raise JournalError(f"journal: no inspection {inspection_id}")
        if self._is_repeat(record, code, reason, user, credit, command_id):
            return None
        updated = self._overridden(record, Disposition(code), reason, user, credit)
        override = updated.override
        assert override is not None  # _overridden always sets it
        messages = [
            dataclasses.replace(m, inspection_id=record.id)
            for m in self.outbox.expand(make_messages(updated) if make_messages else [])
        ]
        with _wrapped(f"override of {inspection_id}"), self.db.conn as conn:
            conn.execute(
                _UPDATE_OVERRIDE,
                (
                    int(updated.effective_code()),
                    int(updated.effective_credit()),
                    len(messages),
                    updated.to_json(),
                    record.id,
                ),
            )
            conn.execute(
                _INSERT_AUDIT,
                (
                    record.id,
                    int(record.effective_code()),
                    int(code),
                    int(record.effective_credit()),
                    int(updated.effective_credit()),
                    reason,
                    user,
                    override.ts,
                    command_id,
                ),
            )
            self.outbox.add(messages)
        return updated

    def _is_repeat(
        self,
        record: InspectionRecord,
        code: int,
        reason: str,
        user: str,
        credit: int | None,
        command_id: str | None,
    ) -> bool:
        if (
            command_id is not None
            and self.db.conn.execute(
                "SELECT 1 FROM overrides WHERE inspection_id = ? AND command_id = ?",
                (record.id, command_id),
            ).fetchone()
        ):
            return True
        current = record.override
        return (
            current is not None
            and current.code == code
            and current.reason == reason
            and current.user == user
            and (credit is None or current.credit == credit)
        )

    def _overridden(
        self,
        record: InspectionRecord,
        code: Disposition,
        reason: str,
        user: str,
        credit: int | None,
    ) -> InspectionRecord:
        new_credit = record.effective_credit() if credit is None else Credit(credit)
        override = OverrideInfo(
            code=code, label=code.name, credit=new_credit, reason=reason, user=user, ts=utc_now()
        )
        # A changed record is a new revision: consumers keep the highest, never the latest date.
        update: dict[str, OverrideInfo | Impact | int] = {
            "override": override,
            "revision": record.revision + 1,
        }
        if self.families is not None:
            from edge.decision.rules import impact

            update["impact"] = impact(self.families.get(record.family), code)
        return record.model_copy(update=update)

    # ------------------------------------------------------------ reading

    def get(self, inspection_id: str) -> InspectionRecord | None:
        """One inspection's record (with its override, if any), or None."""
        with _wrapped(f"reading {inspection_id}"):
            row = self.db.conn.execute(
                "SELECT record FROM inspections WHERE id = ?", (inspection_id,)
            ).fetchone()
        return None if row is None else InspectionRecord.model_validate_json(row[0])

    def find(
        self,
        core: str | None = None,
        since: str | datetime | None = None,
        decision: str | int | None = None,
        until: str | datetime | None = None,
        family: str | None = None,
        limit: int | None = 1000,
    ) -> list[InspectionRecord]:
        """Inspections in time order, filtered; `decision` (label or code) matches the effective
        code. With `limit`, the newest `limit` of the matches (still in time order)."""
        where, params = _filters(core, since, decision, until, family)
        sql = f"SELECT record FROM inspections {where} ORDER BY ts DESC, seq DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with _wrapped("find"):
            rows = self.db.conn.execute(sql, params).fetchall()
        return [InspectionRecord.model_validate_json(r[0]) for r in reversed(rows)]

    def walk(
        self, since: str | datetime | None = None, chunk: int = 500
    ) -> Iterator[InspectionRecord]:
        """Every inspection at or after `since` (all when None) in time order, read `chunk`
        records at a time: a whole journal in little memory (the caller may write between)."""
        where, params = _filters(None, since, None, None, None)
        where = f"{where} AND" if where else "WHERE"
        after: tuple[str, str] = ("", "")
        while True:
            with _wrapped("reading inspections"):
                rows = self.db.conn.execute(
                    f"SELECT ts, id, record FROM inspections {where} (ts, id) > (?, ?)"
                    " ORDER BY ts, id LIMIT ?",
                    [*params, *after, chunk],
                ).fetchall()
            yield from (InspectionRecord.model_validate_json(r[2]) for r in rows)
            if len(rows) < chunk:
                return
            after = (rows[-1][0], rows[-1][1])

    def by_seq(self, from_seq: int, to_seq: int) -> list[InspectionRecord]:
        """The inspections with seq `from_seq`..`to_seq`, in seq order (those the journal holds)."""
        with _wrapped(f"reading inspections {from_seq}..{to_seq}"):
            rows = self.db.conn.execute(
                "SELECT record FROM inspections WHERE seq BETWEEN ? AND ? ORDER BY seq",
                (from_seq, to_seq),
            ).fetchall()
        return [InspectionRecord.model_validate_json(r[0]) for r in rows]

    def event_codes_for_command(self, command_id: str) -> list[str]:
        """The codes of the events that carry `command_id` in their detail (a command that was
        carried out or refused before), oldest first."""
        with _wrapped(f"reading the events of command {command_id}"):
            rows = self.db.conn.execute(
                "SELECT code FROM events WHERE json_extract(record, '$.detail.command_id') = ?"
                " ORDER BY ts",
                (command_id,),
            ).fetchall()
        return [r[0] for r in rows]

    def count(self) -> int:
        """How many inspections the journal holds."""
        with _wrapped("count"):
            return self.db.conn.execute("SELECT count(*) FROM inspections").fetchone()[0]

    def overrides(self, inspection_id: str) -> list[OverrideRow]:
        """The audit rows of one inspection's overrides, oldest first."""
        with _wrapped(f"reading overrides of {inspection_id}"):
            rows = self.db.conn.execute(
                "SELECT inspection_id, old_code, new_code, old_credit, credit, reason, user, ts, command_id"
                " FROM overrides WHERE inspection_id = ? ORDER BY id",
                (inspection_id,),
            ).fetchall()
        return [OverrideRow(*r) for r in rows]

    def override_history(self, inspection_id: str) -> list[OverrideInfo]:
        """The overrides of one inspection as the record carries them, oldest first."""
        return [
            OverrideInfo(
                code=Disposition(r.new_code),
                label=Disposition(r.new_code).name,
                credit=Credit(r.credit),
                reason=r.reason,
                user=r.user,
                ts=r.ts,
            )
            for r in self.overrides(inspection_id)
        ]

    def images(self, inspection_id: str) -> list[dict]:
        """The image rows of one inspection (path, sha256, size, created, pruned_at, kind: `raw`
        for the frame as taken, `overlay` for the annotated copy)."""
        with _wrapped(f"reading images of {inspection_id}"):
            return list(
                self.db.query(
                    "SELECT path, sha256, size, created, pruned_at, kind FROM images"
                    " WHERE inspection_id = ? ORDER BY id",
                    [inspection_id],
                )
            )

    # ------------------------------------------------------------ retention

    def prune_images(self, max_age_days: float, budget_mb: float, now: float | None = None) -> int:
        """Delete image files older than `max_age_days`, then the oldest beyond `budget_mb`.

        Records and image rows are kept (the row gets `pruned_at`). Returns files deleted.
        """
        now = time.time() if now is None else now
        with _wrapped("prune images"):
            live = self.db.conn.execute(
                "SELECT id, path, size, created FROM images WHERE pruned_at IS NULL ORDER BY created, id"
            ).fetchall()
        doomed = _doomed(live, now - max_age_days * 86400, budget_mb * 1024 * 1024)
        deleted = sum(_unlink(path) for _, path in doomed)
        with _wrapped("prune images"), self.db.conn as conn:
            conn.executemany(
                "UPDATE images SET pruned_at = ? WHERE id = ?", [(now, i) for i, _ in doomed]
            )
        return deleted


# ---------------------------------------------------------------- SQL and row helpers

_NEXT_SEQ = "UPDATE counters SET value = value + 1 WHERE name = 'seq' RETURNING value"

_INSERT_IMAGE = """INSERT INTO images (inspection_id, path, sha256, size, created, kind)
    VALUES (?, ?, ?, ?, ?, ?)"""

_INSERT_INSPECTION = """INSERT INTO inspections (id, seq, ts, station, core_id, family, part_number,
    code, label, credit, effective_code, effective_credit, rules_sha256, model_version,
    outbox_count, record, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""

_UPDATE_OVERRIDE = """UPDATE inspections SET effective_code = ?, effective_credit = ?,
    outbox_count = outbox_count + ?, record = ? WHERE id = ?"""

_INSERT_AUDIT = """INSERT INTO overrides (inspection_id, old_code, new_code, old_credit, credit,
    reason, user, ts, command_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"""

_UNBALANCED = """SELECT i.id, coalesce(o.n, 0), i.outbox_pruned, i.outbox_count FROM inspections i
    LEFT JOIN (SELECT inspection_id, count(*) AS n FROM outbox WHERE inspection_id IS NOT NULL
               GROUP BY inspection_id) o ON o.inspection_id = i.id
    WHERE coalesce(o.n, 0) + i.outbox_pruned != i.outbox_count"""

_ORPHANS = """SELECT o.id, o.inspection_id FROM outbox o
    WHERE o.inspection_id IS NOT NULL
      AND NOT EXISTS (SELECT 1 FROM inspections i WHERE i.id = o.inspection_id)"""


def _published_json(record: InspectionRecord, messages: list[OutboxMessage]) -> str | None:
    """The record's JSON as its own `inspection` message carries it, when one comes with it.

    The station builds that message from the very record it journals, so the journal keeps the
    bytes consumers receive and the record is serialised once, not twice.
    """
    for message in messages:
        if message.kind == "inspection" and message.msg_id == record.id:
            return message.payload.decode()
    return None


def _inspection_row(
    record: InspectionRecord, outbox_count: int, now: float, record_json: str | None = None
) -> tuple:
    decision = record.decision
    return (
        record.id,
        record.seq,
        record.ts,
        record.station,
        record.core_id,
        record.family,
        record.part_number,
        int(decision.code),
        decision.label,
        int(decision.credit),
        int(record.effective_code()),
        int(record.effective_credit()),
        record.rules.sha256 if record.rules else None,
        record.model.version if record.model else None,
        outbox_count,
        record.to_json() if record_json is None else record_json,
        now,
    )


def image_kind(path: str | Path) -> str:
    """`overlay` for an annotated copy (its stem ends in OVERLAY_SUFFIX), else `raw`."""
    return "overlay" if Path(path).stem.endswith(OVERLAY_SUFFIX) else "raw"


def _image_row(inspection_id: str, path: str | Path, data: bytes | None) -> tuple:
    """(inspection id, path, sha256, size), writing `data` to `path` first when given."""
    path = Path(path)
    try:
        if data is not None:
            _write_atomic(path, data)
        else:
            data = path.read_bytes()
    except OSError as exc:
        raise JournalError(f"journal: image {path}: {exc.strerror or exc}") from exc
    return (inspection_id, str(path), hashlib.sha256(data).hexdigest(), len(data))


def write_image(path: str | Path, data: bytes) -> ImageFile:
    """Write an image file whole or not at all (a kill leaves no torn file) and describe it for
    `Journal.record_images`; JournalError. Thread-safe: no journal involved."""
    path = Path(path)
    try:
        _write_atomic(path, data)
    except OSError as exc:
        raise JournalError(f"journal: image {path}: {exc.strerror or exc}") from exc
    return str(path), hashlib.sha256(data).hexdigest(), len(data)


def image_file(path: str | Path) -> ImageFile:
    """Describe an image file already on disk for `Journal.record_images`; JournalError."""
    return _image_row("", path, None)[1:]


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _doomed(live: list[tuple], cutoff: float, budget_bytes: float) -> list[tuple[int, str]]:
    """(id, path) of the images to delete: too old, then oldest first beyond the budget."""
    doomed = [(i, p) for i, p, _, created in live if created < cutoff]
    kept = [(i, p, size) for i, p, size, created in live if created >= cutoff]
    total = sum(size for _, _, size in kept)
    for i, p, size in kept:
        if total <= budget_bytes:
            break
        doomed.append((i, p))
        total -= size
    return doomed


def _unlink(path: str) -> int:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        raise JournalError(f"journal: cannot delete image {path}: {exc.strerror or exc}") from exc
    return 1


def _filters(core, since, decision, until, family) -> tuple[str, list]:
    clauses, params = [], []
    for column, op, value in (
        ("core_id", "=", core),
        ("ts", ">=", _ts(since)),
        ("ts", "<", _ts(until)),
        ("family", "=", family),
        ("effective_code", "=", _code(decision)),
    ):
        if value is not None:
            clauses.append(f"{column} {op} ?")
            params.append(value)
    return ("WHERE " + " AND ".join(clauses) if clauses else ""), params


def _ts(value: str | datetime | None) -> str | None:
    """A time filter as the journal's RFC 3339 text (naive times are UTC)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return rfc3339(value if value.tzinfo else value.replace(tzinfo=UTC))
    try:
        return normalize_ts(value)
    except ValueError as exc:
        raise JournalError(
            f"journal: not a time: {value!r} (use e.g. 2026-11-28T15:00:00Z)"
        ) from exc


def _code(decision: str | int | None) -> int | None:
    if decision is None:
        return None
    if isinstance(decision, int) or str(decision).isdigit():
        return int(Disposition(int(decision)))
    try:
        return int(Disposition[str(decision).upper()])
    except KeyError as exc:
        labels = ", ".join(d.name for d in Disposition)
        raise JournalError(f"journal: unknown decision {decision!r}; one of {labels}") from exc
