"""The dashboard at the sizes it is read on: the station's 800x480 touch display, a 1280x720
screen and a 390x844 phone, in headless Chromium (Playwright) over a real mosquitto.

No page scrolls sideways (wide tables scroll inside their own panel), and on the kiosk the
decision and the core id are on screen without scrolling. Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from playwright.sync_api import Page, expect

from edge.contract import InspectionRecord
from edge.decision.families import load_families
from edge.decision.limits import limits_of
from edge.decision.rules import decide
from gateway.server import Gateway
from tests.conftest import REPO
from tests.gateway.conftest import PASSWORDS, Station, WriteWatcher, make_config
from tests.gateway.records import BASE, overridden, record, snapshot_jpeg, ts_at
from tests.support.browser import log_in, shot

pytestmark = pytest.mark.browser

SIZES = {"pi": (800, 480), "hd": (1280, 720), "phone": (390, 844)}
STATION = "st-size"
# a long core id and the widest label, overridden with a long reason: the decision block at its
# largest
CORE_ID = "HGP200-2026-0047113"
LONG_REASON = "bearing seat scored beyond regrind depth, housing bore within limits after honing"
# a pump core decided by its family's rules, shown against the family's limits
LIMITS_STATION = "st-size-limits"
LIMITS_CORE_ID = "HGP200-2026-0047999"
LATEST = {STATION: CORE_ID, LIMITS_STATION: LIMITS_CORE_ID}
# two hours ago: the stations page counts these cores in its last 24 hours
START = (datetime.now(timezone.utc) - BASE).total_seconds() / 60 - 120


@pytest.fixture(scope="module")
def sized(tmp_path_factory, mosquitto):
    """A gateway holding two stations' inspections, stats and an event; and the latest record."""
    gw = Gateway(make_config(tmp_path_factory.mktemp("sizes"), mosquitto)).start()
    assert gw.ingest is not None and gw.ingest.wait_connected(10)
    watcher = WriteWatcher(gw)
    st, pump = Station(mosquitto, STATION), Station(mosquitto, LIMITS_STATION)
    try:
        latest = _feed(gw, watcher, st)
        yield gw, latest, _publish_pump(gw, watcher, pump)
    finally:
        st.close()
        pump.close()
        gw.stop()


def _feed(gw: Gateway, watcher: WriteWatcher, st: Station):
    st.publish("available", b"online", retain=True)
    st.publish("stats", json.dumps(_stats()))
    st.publish("event", json.dumps(_event()))
    recs = [
        record(
            station=STATION,
            core_id=f"HGP200-2026-00470{i:02d}",
            code=1 + i % 4,
            minutes=START + i,
        )
        for i in range(8)
    ]
    latest = overridden(
        record(station=STATION, core_id=CORE_ID, code=1, minutes=START + 30), 2, reason=LONG_REASON
    )
    for rec in [*recs, latest]:
        st.inspection(rec)
    watcher.until(lambda: all(gw.store.get(r.id) for r in recs))
    watcher.until(lambda: (gw.store.get(latest.id) or {}).get("code") == 2)
    st.publish("snapshot", snapshot_jpeg(CORE_ID))
    watcher.until(lambda: gw.store.latest_snapshot(STATION))
    watcher.until(lambda: any(s["station"] == STATION and s["stats"] for s in gw.store.stations()))
    watcher.until(lambda: gw.store.events(STATION, None, 10, None)[0])
    return latest


def _publish_pump(gw: Gateway, watcher: WriteWatcher, st: Station) -> InspectionRecord:
    rec = _pump_record()
    st.inspection(rec)
    watcher.until(lambda: gw.store.get(rec.id, LIMITS_STATION))
    st.publish("snapshot", snapshot_jpeg(LIMITS_CORE_ID))
    watcher.until(lambda: gw.store.latest_snapshot(LIMITS_STATION))
    return rec


def _pump_record() -> InspectionRecord:
    """A pump core whose wear grade reaches the REMANUFACTURE limit, with the family's limits."""
    pump = load_families(REPO / "config/families").get("hydraulic-gear-pump")
    defects = {
        "wear": {"area_pct": 0.6, "grade": 2, "confidence": 0.93, "scale": "iso4628-5"},
        "corrosion": {"area_pct": 0.1, "grade": 1, "confidence": 0.9, "scale": "iso4628-3"},
        "coating_damage": {"area_pct": 0.0, "grade": 0, "confidence": 0.95, "scale": "iso4628-5"},
    }
    bench = {
        "leak_rate_ml_min": {"value": 2.5, "unit": "ml/min", "status": "Good"},
        "flow_l_min": {"value": 24.0, "unit": "l/min", "status": "Good"},
    }
    decision = decide(pump, defects, bench)
    return record(
        station=LIMITS_STATION,
        core_id=LIMITS_CORE_ID,
        code=2,
        minutes=START + 40,
        defects=defects,
        measurements={k: {**v, "source_ts": ts_at(START + 40)} for k, v in bench.items()},
        decision=decision.model_dump(mode="json"),
        limits=limits_of(pump, decision).model_dump(mode="json"),
    )


def _stats() -> dict:
    return {
        "ts": "2026-11-28T08:00:00Z",
        "station": STATION,
        "uptime_s": 360,
        "inspections": 9,
        "latency_ms": {"p50": 38.0, "p95": 71.5},
        "bench": {"state": "connected"},
        "broker": {"state": "connected"},
        "outbox_depth": 0,
        "model": {"name": "reman-grader", "version": "1.0.0", "sha256": "ab" * 32},
        "disk_free_mb": 20480,
        "cpu_temp_c": 51.2,
    }


def _event() -> dict:
    return {
        "schema": 1,
        "id": "ev-size-1",
        "ts": "2026-11-28T09:00:00Z",
        "station": STATION,
        "level": "warning",
        "code": "bench_slow",
        "message": "OPC UA bench answered after 1.8 s; the station waited for every measurement",
    }


def _page(browser, gw: Gateway, size: str, user: str | None = "erin") -> Page:
    width, height = SIZES[size]
    context = browser.new_context(viewport={"width": width, "height": height}, base_url=gw.url)
    pg = context.new_page()
    return log_in(pg, user, PASSWORDS[user]) if user else pg


def _shot(pg: Page, name: str) -> None:
    shot(pg, f"gateway-size-{name}")


def _widths(pg: Page) -> dict[str, int]:
    return pg.evaluate(
        "() => ({page: document.documentElement.scrollWidth, body: document.body.scrollWidth,"
        " view: window.innerWidth})"
    )


def _no_sideways_scroll(pg: Page, name: str) -> None:
    """Fail when the page is wider than the viewport (it would scroll sideways)."""
    widths = _widths(pg)
    assert max(widths["page"], widths["body"]) <= widths["view"], (name, widths)


def _on_screen(pg: Page, selector: str) -> None:
    """Fail unless the element lies wholly inside the viewport as the page first shows."""
    box = pg.locator(selector).bounding_box()
    view = pg.evaluate("() => ({w: window.innerWidth, h: window.innerHeight, y: window.scrollY})")
    assert box is not None and view["y"] == 0, (selector, box, view)
    assert box["x"] >= 0 and box["y"] >= 0, (selector, box)
    assert box["x"] + box["width"] <= view["w"], (selector, box, view)
    assert box["y"] + box["height"] <= view["h"], (selector, box, view)


@pytest.mark.parametrize("station", list(LATEST))
@pytest.mark.parametrize("size", list(SIZES))
def test_kiosk_shows_decision_and_core_without_scrolling(browser, sized, size, station):
    gw, latest, pump = sized
    pg = _page(browser, gw, size, user=None)
    pg.goto(f"/kiosk/{station}")
    expect(pg.locator("#latest-label")).to_have_text("REMANUFACTURE")
    expect(pg.locator("#latest-core")).to_have_text(LATEST[station])
    expect(pg.locator(".photo img")).to_be_visible()
    _shot(pg, f"kiosk-{size}{station.removeprefix(STATION)}")
    _on_screen(pg, "#latest-label")
    _on_screen(pg, "#latest-core")
    _no_sideways_scroll(pg, f"kiosk-{size} {station}")
    pg.context.close()


@pytest.mark.parametrize("station", list(LATEST))
@pytest.mark.parametrize("size", list(SIZES))
def test_live_view_fits_the_width(browser, sized, size, station):
    gw, latest, pump = sized
    pg = _page(browser, gw, size)
    pg.goto(f"/live/{station}")
    expect(pg.locator("#latest-core")).to_have_text(LATEST[station])
    expect(pg.locator(".photo img")).to_be_visible()
    _shot(pg, f"live-{size}{station.removeprefix(STATION)}")
    _on_screen(pg, "#latest-label")
    _no_sideways_scroll(pg, f"live-{size} {station}")
    if station == LIMITS_STATION:  # the family's measurements and their status, no scrolling
        panel = pg.evaluate(
            "() => { const p = document.getElementById('measurements').closest('.panel');"
            " return {scroll: p.scrollWidth, client: p.clientWidth}; }"
        )
        assert panel["scroll"] <= panel["client"], (size, panel)
    pg.context.close()


def test_main_pages_fit_a_phone(browser, sized):
    gw, latest, pump = sized
    pg = _page(browser, gw, "phone")
    pages = {
        "stations": ("/", f"[data-station={STATION}]"),
        "history": (f"/history?station={STATION}", "#history tr[data-id]"),
        "detail": (f"/inspections/{STATION}/{latest.id}", "#decision"),
        "detail-limits": (f"/inspections/{LIMITS_STATION}/{pump.id}", "#decision"),
        "health": ("/health", f"#health tr[data-station={STATION}]"),
        "events": ("/events", "#events"),
        "trends": ("/trends?period=all", "#decisions canvas"),
        "circularity": ("/circularity?period=all", "#impact-chart canvas"),
    }
    too_wide = {}
    for name, (url, shown) in pages.items():
        pg.goto(url)
        expect(pg.locator(shown).first).to_be_visible()
        _shot(pg, f"{name}-phone")
        widths = _widths(pg)
        if max(widths["page"], widths["body"]) > widths["view"]:
            too_wide[name] = widths
    pg.context.close()
    assert too_wide == {}


def test_wide_tables_scroll_inside_their_panel_on_a_phone(browser, sized):
    """The history table is wider than a phone: its panel scrolls, the page does not."""
    gw = sized[0]
    pg = _page(browser, gw, "phone")
    pg.goto(f"/history?station={STATION}")
    table = pg.locator("#history")
    expect(table.locator("tr[data-id]")).to_have_count(9)
    scroller = table.evaluate(
        "t => { let e = t.parentElement; while (e && e.scrollWidth <= e.clientWidth)"
        " e = e.parentElement; return e && {tag: e.tagName, overflow: getComputedStyle(e).overflowX,"
        " scroll: e.scrollWidth, client: e.clientWidth}; }"
    )
    assert scroller is not None and scroller["tag"] not in ("BODY", "HTML"), scroller
    assert scroller["overflow"] in ("auto", "scroll"), scroller
    pg.context.close()
