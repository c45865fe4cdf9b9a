"""A message the gateway refuses is an event of the station whose topic it came on, shown on the
Events page, at most one per station and kind per window, the next one counting those between."""

from __future__ import annotations

import time

from tests.gateway.conftest import login
from tests.gateway.frames import WIDTH, frame_reply
from tests.gateway.records import record


def _refused(gateway, station: str) -> list[dict]:
    """`station`'s message_refused events in the store, newest first."""
    rows, _ = gateway.store.events(station)
    return [e for e in rows if e["code"] == "message_refused"]


def test_a_record_naming_another_station_is_refused_as_an_event(gateway, watcher, station_factory):
    st_b, st_a = station_factory("st-b"), station_factory("st-a")
    real = record(station="st-b", core_id="C9001", code=1)
    st_b.inspection(real)
    watcher.until(lambda: gateway.store.get(real.id, "st-b"))

    st_a.publish("inspection", record(station="st-b", code=4, rid=real.id).to_json())
    [event] = watcher.until(lambda: _refused(gateway, "st-a"))

    assert gateway.store.get(real.id, "st-b")["code"] == 1
    assert _refused(gateway, "st-b") == []
    assert (event["station"], event["level"]) == ("st-a", "warning")
    assert event["message"] == "inspection refused: payload names station 'st-b' on 'st-a''s topic"
    assert event["detail"] == {
        "kind": "inspection",
        "topic": "reman/st-a/inspection",
        "refused_since_last": 0,
    }
    page = login(gateway.url, "erin").get(
        "/events", params={"station": "st-a"}, headers={"accept": "text/html"}
    )
    assert page.status_code == 200
    assert "<code>message_refused</code>" in page.text
    assert "Message from the station refused" in page.text
    assert "inspection refused: payload names station" in page.text


def test_a_burst_of_refusals_is_one_event_and_the_next_counts_them(
    gateway, watcher, station_factory
):
    st_a = station_factory("st-a")
    for _ in range(5):
        st_a.publish("inspection", b'{"not": "a record"}')
    own = record(station="st-a", core_id="C9002")
    st_a.inspection(own)  # after the burst on the same topic: stored once the burst is handled
    watcher.until(lambda: gateway.store.get(own.id, "st-a"))

    assert gateway.counters.snapshot()["malformed"] == {"inspection": 5}
    [first] = _refused(gateway, "st-a")
    assert first["detail"]["refused_since_last"] == 0

    gateway.ingest.refusals.window_s = 0.3
    time.sleep(0.3)  # the window is a span of time: let it pass
    st_a.publish("inspection", b"garbage")
    latest, earlier = watcher.until(
        lambda: len(_refused(gateway, "st-a")) == 2 and _refused(gateway, "st-a")
    )

    assert earlier["id"] == first["id"]
    assert latest["message"].startswith("inspection refused: not JSON")
    assert latest["detail"]["refused_since_last"] == 4


def test_a_malformed_frame_is_refused_as_an_event(gateway, watcher, station_factory):
    st_a = station_factory("st-a")
    st_a.publish("frame", frame_reply("st-a", "I1", "c1", width=WIDTH + 1))

    [event] = watcher.until(lambda: _refused(gateway, "st-a"))

    assert event["message"].startswith("frame refused: image is")
    assert "not the stated" in event["message"]
    assert event["detail"]["kind"] == "frame"
    assert event["detail"]["topic"] == "reman/st-a/frame"
