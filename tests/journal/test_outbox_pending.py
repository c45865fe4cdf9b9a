"""Outbox.pending reads undelivered messages back exactly as they were added, in order."""

from __future__ import annotations

import os

import sqlite_utils

from edge.journal.outbox import Outbox, OutboxMessage


def _outbox(path) -> Outbox:
    db = sqlite_utils.Database(path)
    Outbox.create(db)
    return Outbox(db)


PAYLOADS = [
    b'{"seq": 1}',
    b"",  # an empty payload (a cleared retained message)
    b"\x00\x00\xff\xfe\x00",  # NUL bytes and bytes that are not UTF-8
    os.urandom(300_000),  # a large snapshot JPEG
    "gr\u00fc\u00df \u6e29\u5ea6".encode(),  # UTF-8 text
    os.urandom(597),
]


def _messages() -> list[OutboxMessage]:
    kinds = ["inspection", "result", "sparkplug", "snapshot", "event", "inspection"]
    return [
        OutboxMessage(
            kind=kind,
            topic=f"reman/st-1/{kind}",
            payload=payload,
            qos=n % 2,
            retain=n == 1,
            msg_id=f"m{n}",
            inspection_id=None if kind == "event" else f"insp-{n}",
        )
        for n, (kind, payload) in enumerate(zip(kinds, PAYLOADS, strict=True))
    ]


def test_pending_gives_back_every_byte_and_field_in_order(tmp_path):
    outbox = _outbox(tmp_path / "journal.db")
    outbox.add_committed(_messages(), now=1_700_000_000.25)
    rows = outbox.pending(limit=100)
    assert [r.payload for r in rows] == PAYLOADS
    assert [
        OutboxMessage(**{f: getattr(r, f) for f in OutboxMessage.__dataclass_fields__})
        for r in rows
    ] == _messages()
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert {r.created_at for r in rows} == {1_700_000_000.25}
    assert all(isinstance(r.payload, bytes) and isinstance(r.retain, bool) for r in rows)


def test_pending_pages_filters_and_skips_delivered(tmp_path):
    outbox = _outbox(tmp_path / "journal.db")
    outbox.add_committed(_messages())
    rows = outbox.pending(limit=100)
    outbox.mark_delivered([rows[0].id])
    assert [r.msg_id for r in outbox.pending(limit=2)] == ["m1", "m2"]
    assert [r.msg_id for r in outbox.pending(limit=2, after_id=rows[2].id)] == ["m3", "m4"]
    assert [r.msg_id for r in outbox.pending(limit=100, kinds=("sparkplug",))] == ["m2"]
    assert [r.payload for r in outbox.pending(limit=100, exclude=("sparkplug", "inspection"))] == [
        PAYLOADS[1],
        PAYLOADS[3],
        PAYLOADS[4],
    ]
    assert outbox.pending(limit=100, after_id=rows[-1].id) == []
    outbox.mark_delivered([r.id for r in rows])
    assert outbox.pending() == []
