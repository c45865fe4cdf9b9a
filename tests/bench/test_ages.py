"""A bench value's age on the node's clock: since first received, and by its source timestamp
moved onto the node's clock by the measured skew."""

from __future__ import annotations

from datetime import datetime, timedelta

from asyncua import ua

from edge.bench.data import Sample, judge
from edge.config.station import NodeMapping
from edge.contract.timefmt import UTC

FLOW = NodeMapping(node_id="ns=2;s=Bench.Flow", unit="l/min")
NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def sample(source_ts: datetime | None, received: datetime, value: float = 24.0) -> Sample:
    return Sample(value, ua.StatusCode(), source_ts, received, generation=1)


def test_a_reread_of_an_unchanged_value_keeps_its_first_receipt():
    first = sample(NOW - timedelta(minutes=2), NOW - timedelta(seconds=30))
    again = sample(first.source_ts, NOW).first_seen(first)
    assert again.received == first.received
    reading = judge(again, FLOW, 10, 1, "", now=NOW)
    assert reading.status == "Stale" and "30.0 s old" in reading.reason


def test_a_changed_value_or_one_without_timestamp_is_new():
    first = sample(NOW - timedelta(minutes=2), NOW - timedelta(seconds=30))
    assert sample(NOW, NOW, 25.0).first_seen(first).received == NOW
    assert sample(None, NOW).first_seen(sample(None, first.received)).received == NOW


def test_a_bench_clock_a_minute_behind_is_corrected_by_the_skew():
    behind = sample(NOW - timedelta(seconds=61), NOW - timedelta(seconds=1))
    assert judge(behind, FLOW, 10, 1, "", now=NOW, skew_s=60).usable
    assert judge(behind, FLOW, 10, 1, "", now=NOW).usable  # skew unknown: receipt alone
    stamped_long_ago = sample(NOW - timedelta(seconds=90), NOW)
    reading = judge(stamped_long_ago, FLOW, 10, 1, "", now=NOW, skew_s=60)
    assert reading.status == "Stale" and reading.received_ts == "2026-03-01T12:00:00.000Z"
