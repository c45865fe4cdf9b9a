"""sqlite3 errors leave the outbox as JournalError saying what failed, never as sqlite3.Error."""

from __future__ import annotations

import sqlite3

import pytest
import sqlite_utils

from edge.errors import JournalError
from edge.journal.outbox import Outbox, OutboxMessage


def _outbox(path) -> Outbox:
    db = sqlite_utils.Database(path)
    Outbox.create(db)
    return Outbox(db)


def _message() -> OutboxMessage:
    return OutboxMessage(kind="stats", topic="reman/s/stats", payload=b"{}", qos=0)


def test_a_missing_table_is_a_journal_error(tmp_path):
    outbox = _outbox(tmp_path / "journal.db")
    raw = sqlite3.connect(tmp_path / "journal.db")
    raw.execute("DROP TABLE outbox")
    raw.commit()
    raw.close()
    calls = {
        "read pending messages": lambda: outbox.pending(),
        "count pending messages": lambda: outbox.depth(),
        "mark messages delivered": lambda: outbox.mark_delivered([1]),
        "(queue|add) messages": lambda: outbox.add_committed([_message()]),
        "enforce the outbox bounds": lambda: outbox.enforce_bounds(10, 60.0),
        "add messages": lambda: outbox.add(
            [OutboxMessage(kind="result", topic="reman/s/result", payload=b"{}", msg_id="m1")]
        ),
    }
    for what, call in calls.items():
        with pytest.raises(JournalError, match=f"outbox: cannot {what}: no such table") as info:
            call()
        assert isinstance(info.value.__cause__, sqlite3.Error)


def test_a_corrupt_file_is_a_journal_error(tmp_path):
    path = tmp_path / "journal.db"
    outbox = _outbox(path)
    outbox.db.conn.close()
    with open(path, "r+b") as fh:
        fh.write(b"this is not a database" * 200)
    reopened = Outbox(sqlite_utils.Database(path))
    with pytest.raises(JournalError, match="outbox: cannot read pending messages"):
        reopened.pending()
