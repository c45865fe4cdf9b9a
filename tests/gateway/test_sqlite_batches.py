"""The SQLite backend writes a batch as one statement over a JSON array: same rows as row by row."""

from __future__ import annotations

import math
import sqlite3

import pytest

from gateway.backends.sqlite import _from_json, _Transaction

UPSERT = (
    "INSERT INTO t (k, rev, v, x) VALUES (?, ?, ?, ?) ON CONFLICT(k) DO UPDATE SET "
    "rev = excluded.rev, v = excluded.v, x = excluded.x WHERE excluded.rev > t.rev"
)
ROWS = [
    ("a", 1, "one", 1.5),
    ("a", 2, 'two \u00fc "quoted" \\ back', 2.0),  # a later row of the batch wins by revision
    ("b", 2, "b2", None),
    ("b", 1, "b1", 7),  # an older revision after a newer one changes nothing
    ("c", 1, None, 10**15),
    ("d", True, "", -0.0),
]


def _table(rows, batched: bool) -> list[tuple]:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, rev INTEGER, v TEXT, x)")
    with conn:
        if batched:
            _Transaction(conn).executemany(UPSERT, rows)
        else:
            conn.executemany(UPSERT, rows)
    return conn.execute("SELECT *, typeof(v), typeof(x) FROM t ORDER BY k").fetchall()


def test_a_batch_stores_what_row_by_row_stores():
    assert _from_json(UPSERT) is not None
    stored = _table(ROWS, batched=True)
    assert stored == _table(ROWS, batched=False)
    assert stored[0][:3] == ("a", 2, 'two \u00fc "quoted" \\ back')
    assert stored[1][:2] == ("b", 2)


@pytest.mark.parametrize("odd", [b"\x00\xff", math.nan], ids=["bytes", "nan"])
def test_values_json_cannot_carry_go_row_by_row(odd):
    rows = [("a", 1, "one", 1.0), ("e", 1, "e", odd)]
    stored = _table(rows, batched=True)
    assert stored == _table(rows, batched=False)
    assert stored[1][5] == ("blob" if isinstance(odd, bytes) else "null")


def test_other_statements_are_left_as_they_are():
    assert _from_json("DELETE FROM snapshots WHERE name = ?") is None
    assert _from_json("INSERT INTO t (a, b) VALUES (?, 3)") is None
    assert _from_json("INSERT INTO t (a, b) SELECT a, b FROM u") is None
