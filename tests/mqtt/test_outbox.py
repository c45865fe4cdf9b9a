"""The outbox's bounds policy and its figures (SQLite in tmp_path, no broker)."""

from __future__ import annotations

from tests.support.nodes import messages, open_outbox


def fill(outbox, spec: list[tuple[str, int]], now: float) -> None:
    n = 0
    with outbox.db.conn:
        for kind, count in spec:
            outbox.add(messages("ob", n, n + count, kind=kind), now=now)
            n += count


def test_rows_bound_drops_stats_then_snapshots_then_events_then_inspections_never_results(tmp_path):
    outbox = open_outbox(tmp_path / "j.db")
    fill(
        outbox,
        [("result", 5), ("inspection", 5), ("stats", 3), ("snapshot", 2), ("event", 2)],
        now=1000.0,
    )
    dropped = outbox.enforce_bounds(max_rows=10, max_age_s=3600, now=1001.0)
    assert dropped.by_rows == {"stats": 3, "snapshot": 2, "event": 2} and dropped.by_age == {}
    assert [r.kind for r in outbox.pending()] == ["result"] * 5 + ["inspection"] * 5
    dropped = outbox.enforce_bounds(max_rows=7, max_age_s=3600, now=1001.0)
    assert dropped.by_rows == {"inspection": 3}
    assert [r.kind for r in outbox.pending()] == ["result"] * 5 + ["inspection"] * 2


def test_only_results_left_stay_beyond_the_rows_bound(tmp_path):
    outbox = open_outbox(tmp_path / "j.db")
    fill(outbox, [("result", 12)], now=1000.0)
    assert outbox.enforce_bounds(max_rows=10, max_age_s=3600, now=1001.0).total == 0
    assert outbox.depth(now=1001.0) == (12, 1.0)


def test_age_bound_drops_every_kind_including_results(tmp_path):
    outbox = open_outbox(tmp_path / "j.db")
    fill(outbox, [("result", 2), ("inspection", 2)], now=1000.0)
    with outbox.db.conn:
        outbox.add(messages("ob", 10, 11), now=5000.0)
    dropped = outbox.enforce_bounds(max_rows=100, max_age_s=3600, now=5000.0)
    assert dropped.by_age == {"result": 2, "inspection": 2}
    assert [r.msg_id for r in outbox.pending()] == ["m00010"]
    assert outbox.depth(now=5010.0) == (1, 10.0)


def test_delivered_rows_are_not_counted_or_dropped(tmp_path):
    outbox = open_outbox(tmp_path / "j.db")
    fill(outbox, [("stats", 20)], now=1000.0)
    outbox.mark_delivered([r.id for r in outbox.pending(limit=15)], now=1001.0)
    assert outbox.enforce_bounds(max_rows=10, max_age_s=3600, now=1002.0).total == 0
    assert outbox.depth(now=1002.0)[0] == 5
