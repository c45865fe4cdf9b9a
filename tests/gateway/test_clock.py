"""A station's clock against the gateway's: read from live `stats` over a real mosquitto, a
warning event once it is past the limit, an info event when it is back, and the Health page."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from edge.contract import LinkState, Stats
from gateway.clock import ClockWatch, amount, describe
from tests.gateway.conftest import login

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=timezone.utc)


def _ts(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _stats(station: str, taken: datetime, outbox: int = 0, broker: str = "connected") -> Stats:
    return Stats(
        ts=_ts(taken),
        station=station,
        uptime_s=60,
        inspections=3,
        outbox_depth=outbox,
        broker=LinkState(state=broker),
    )


def test_a_clock_past_the_limit_is_one_warning_until_it_is_back():
    clocks = ClockWatch(max_offset_s=60)
    behind = NOW - timedelta(hours=2, minutes=5)
    event = clocks.observe(_stats("st-1", behind), _ts(NOW))
    assert event is not None and (event.level, event.code) == ("warning", "node_clock_offset")
    assert "clock is 2 h 05 min behind the gateway's (limit 60 s)" in event.message
    assert event.detail == {"offset_s": 7500.0, "max_offset_s": 60.0}
    assert clocks.observe(_stats("st-1", behind), _ts(NOW)) is None  # still off: no new event
    assert clocks.offset("st-1") == 7500.0
    back = clocks.observe(_stats("st-1", NOW - timedelta(seconds=0.2)), _ts(NOW))
    assert back is not None and (back.level, back.code) == ("info", "node_clock_ok")
    assert clocks.offset("st-1") == pytest.approx(0.2)


def test_only_figures_sent_at_once_are_read():
    clocks = ClockWatch(max_offset_s=60)
    late = NOW - timedelta(minutes=30)  # figures delivered from a backlog, or after an outage
    assert clocks.observe(_stats("st-1", late, outbox=12), _ts(NOW)) is None
    assert clocks.observe(_stats("st-1", late, broker="disconnected"), _ts(NOW)) is None
    assert clocks.offset("st-1") is None
    ahead = clocks.observe(_stats("st-1", NOW + timedelta(seconds=95)), _ts(NOW))
    assert ahead is not None and "1 min 35 s ahead of the gateway's" in ahead.message


def test_offsets_read_as_a_person_reads_them():
    assert [amount(s) for s in (12.4, 200, 7500, 3 * 86400 + 4 * 3600)] == [
        "12 s",
        "3 min 20 s",
        "2 h 05 min",
        "3 d 04 h",
    ]
    assert describe(-40) == "40 s ahead of" and describe(40) == "40 s behind"


def _row(html: str, station: str) -> str:
    match = re.search(rf'<tr data-station="{station}">(.*?)</tr>', html, re.S)
    assert match, f"no health row for {station}"
    return match.group(1)


def test_the_health_page_and_the_events_show_a_station_whose_clock_is_off(
    gateway, watcher, station_factory
):
    now = datetime.now(timezone.utc)
    station_factory("st-slow").publish(
        "stats", _stats("st-slow", now - timedelta(hours=3, minutes=10)).model_dump_json()
    )
    station_factory("st-true").publish("stats", _stats("st-true", now).model_dump_json())
    station_factory("st-busy").publish(  # taken behind a backlog: says nothing of the clock
        "stats", _stats("st-busy", now - timedelta(hours=1), outbox=40).model_dump_json()
    )

    def offset_event():
        rows, _ = gateway.store.events("st-slow")
        return [r for r in rows if r["code"] == "node_clock_offset"]

    (event,) = watcher.until(offset_event)
    assert event["level"] == "warning" and "3 h 10 min behind" in event["message"]
    watcher.until(
        lambda: {"st-true", "st-busy"} <= {s["station"] for s in gateway.store.stations()}
    )
    olly = login(gateway.url, "olly")
    html = olly.get("/health").text
    slow = _row(html, "st-slow")
    assert 'data-clock="off"' in slow and "3 h 10 min behind" in slow
    assert 'data-clock="ok"' in _row(html, "st-true") and "in step" in _row(html, "st-true")
    assert 'data-clock="unknown"' in _row(html, "st-busy")
    assert not gateway.store.events("st-true")[0] and not gateway.store.events("st-busy")[0]
    erin = login(gateway.url, "erin")
    events_page = erin.get("/events", params={"station": "st-slow"}).text
    assert "Station clock differs from the gateway&#39;s" in events_page
    api = {s["station"]: s for s in olly.get("/api/stations").json()}
    assert api["st-slow"]["clock_offset_s"] == pytest.approx(3 * 3600 + 600, abs=5)
    assert abs(api["st-true"]["clock_offset_s"]) < 5 and api["st-busy"]["clock_offset_s"] is None
    german = erin.get("/health", headers={"Accept-Language": "de"}).text
    assert "3 h 10 min nach" in _row(german, "st-slow")
