"""The dashboard in headless Chromium (Playwright), fed over a real mosquitto by a test station.

Screenshots of every page land in tests/artifacts/.
"""

from __future__ import annotations

import csv
import json
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, expect

from tests.gateway.conftest import PASSWORDS, Station
from tests.gateway.records import BASE, record, snapshot_jpeg
from tests.gateway.test_auth import Responder
from tests.support.browser import log_in
from tests.support.browser import shot as support_shot

pytestmark = pytest.mark.browser

SSE_OPEN = "window.__sseOpen = false; document.addEventListener('htmx:sseOpen', () => { window.__sseOpen = true; });"


@pytest.fixture
def page(browser, web) -> Page:
    """A logged-in engineer's page, 1440x900."""
    gw, _ = web
    context = browser.new_context(
        viewport={"width": 1440, "height": 900}, base_url=gw.url, accept_downloads=True
    )
    context.add_init_script(SSE_OPEN)
    pg = context.new_page()
    _login(pg, "erin")
    yield pg
    context.close()


@pytest.fixture
def station(mosquitto):
    made: list[Station] = []

    def make(name: str) -> Station:
        made.append(Station(mosquitto, name))
        return made[-1]

    yield make
    for s in made:
        s.close()


def _login(pg: Page, user: str) -> None:
    log_in(pg, user, PASSWORDS[user])


def shot(pg: Page, name: str) -> None:
    support_shot(pg, f"gateway-{name}")


def _publish(web, st: Station, *records) -> None:
    gw, watcher = web
    for rec in records:
        st.inspection(rec)
    watcher.until(lambda: all(gw.store.get(r.id) for r in records))


@pytest.mark.expect_errors(r"/login: Failed to load resource: .* 401")  # the wrong password
def test_login_page_and_wrong_password(browser, web):
    gw, _ = web
    context = browser.new_context(base_url=gw.url)
    pg = context.new_page()
    pg.goto("/live/st-web")
    expect(pg).to_have_url(f"{gw.url}/login?next=/live/st-web")
    shot(pg, "login")
    pg.fill("input[name=username]", "erin")
    pg.fill("input[name=password]", "wrong")
    pg.click("button[type=submit]")
    expect(pg.get_by_role("alert")).to_have_text("Wrong user name or password.")
    context.close()


def test_new_inspection_appears_on_the_live_view_without_reload(page, web, station):
    st = station("st-live")
    st.publish("available", b"online", retain=True)
    _publish(
        web,
        st,
        *[
            record(station="st-live", core_id=f"C70{i:02d}", code=1 + i % 3, minutes=i)
            for i in range(6)
        ],
    )
    page.goto("/live/st-live")
    page.wait_for_function("window.__sseOpen")
    page.evaluate("window.__notReloaded = true")
    rec = record(station="st-live", core_id="C7100", code=3, minutes=30)
    st.inspection(rec)
    st.publish("snapshot", snapshot_jpeg("C7100"))
    expect(page.locator("#latest-core")).to_have_text("C7100", timeout=2000)
    expect(page.locator("#latest-label")).to_have_text("RECYCLE")
    expect(page.locator("#latest")).to_have_class("decision recycle")
    expect(page.locator(".photo img")).to_be_visible()
    assert page.evaluate("window.__notReloaded") is True
    expect(page.locator("#reasons")).to_contain_text("corrosion Ri4")
    expect(page.locator("#recent tr")).to_have_count(8)
    shot(page, "live")


def test_history_filters_and_csv_export(page, web, station):
    st = station("st-hist")
    recs = [
        record(
            station="st-hist",
            core_id=f"H{i:03d}",
            code=1 + i % 4,
            minutes=100 + i,
            impact=None if i % 4 == 3 else (1.5, 3.0),
        )
        for i in range(12)
    ]
    _publish(web, st, *recs)
    page.goto("/history?station=st-hist")
    expect(page.locator("#history tr[data-id]")).to_have_count(12)
    page.select_option("select[name=code]", "RECYCLE")
    page.click("#filters button[type=submit]")
    expect(page.locator("#history tr[data-id]")).to_have_count(3)
    expect(page.locator("#count")).to_have_text("3 inspections")
    page.fill("input[name=q]", "H006")
    page.click("#filters button[type=submit]")
    expect(page.locator("#history tr[data-id]")).to_have_count(1)
    page.fill("input[name=q]", "")
    page.select_option("select[name=code]", "")
    page.click("#filters button[type=submit]")
    shot(page, "history")
    with page.expect_download() as download:
        page.click("#csv")
    rows = list(csv.DictReader(open(download.value.path(), encoding="utf-8")))
    assert sorted(r["core_id"] for r in rows) == sorted(r.core_id for r in recs)
    assert {r["material_kept_kg"] for r in rows} == {"1.5", ""}


def test_override_round_trip_from_the_detail_page(page, web, station):
    st = station("st-ovr-web")
    rec = record(station="st-ovr-web", core_id="C8001", code=1, minutes=200)
    responder = Responder(st, [rec])
    _publish(web, st, rec)
    page.goto(f"/inspections/{rec.id}")
    page.select_option("#override-form select[name=code]", "3")
    page.fill("#override-form textarea[name=reason]", "bearing seat scored beyond regrind")
    page.click("#override-form button[type=submit]")
    expect(page.get_by_role("status")).to_contain_text("Override sent")
    assert responder.done.wait(10)
    assert responder.commands[0]["user"] == "erin"
    expect(page.locator("#override-note")).to_contain_text("Overridden by erin", timeout=10000)
    expect(page.locator("#override-note")).to_contain_text("bearing seat scored beyond regrind")
    expect(page.locator("#decision")).to_have_class("decision recycle")
    expect(page.locator("#audit")).to_contain_text("override applied by station")
    shot(page, "detail")


def test_operator_sees_no_override_form(browser, web, station):
    gw, _ = web
    st = station("st-op")
    rec = record(station="st-op", core_id="C8101", minutes=210)
    _publish(web, st, rec)
    context = browser.new_context(base_url=gw.url)
    pg = context.new_page()
    _login(pg, "olly")
    pg.goto(f"/inspections/{rec.id}")
    expect(pg.locator("#decision")).to_be_visible()
    expect(pg.locator("#override-form")).to_have_count(0)
    context.close()


def test_health_shows_a_station_offline(page, web, station):
    gw, watcher = web
    st = station("st-health")
    st.publish("available", b"online", retain=True)
    st.publish(
        "stats",
        json.dumps(
            {
                "ts": "2026-11-28T08:00:00Z",
                "station": "st-health",
                "uptime_s": 360,
                "inspections": 42,
                "latency_ms": {"p50": 38.0, "p95": 71.5},
                "bench": {"state": "connected"},
                "broker": {"state": "connected"},
                "outbox_depth": 0,
                "model": {"name": "reman-grader", "version": "1.0.0", "sha256": "ab" * 32},
                "disk_free_mb": 20480,
                "cpu_temp_c": 51.2,
            }
        ),
    )
    watcher.until(
        lambda: any(s["station"] == "st-health" and s["stats"] for s in gw.store.stations())
    )
    page.goto("/health")
    page.wait_for_function("window.__sseOpen")
    row = page.locator("#health tr[data-station=st-health]")
    expect(row).to_contain_text("online")
    expect(row).to_contain_text("38.0 / 71.5")
    st.publish("available", b"offline", retain=True)
    expect(row.locator("td").nth(1)).to_have_text("offline", timeout=5000)
    shot(page, "health")


def test_health_marks_a_model_trained_on_synthetic_data_only(page, web, station):
    gw, watcher = web
    st = station("st-synthetic")
    model = {"name": "reman-seg", "version": "1.5.0", "sha256": "ab" * 32, "synthetic_only": True}
    st.publish(
        "stats",
        json.dumps(
            {
                "ts": "2026-11-28T08:00:00Z",
                "station": "st-synthetic",
                "uptime_s": 60,
                "inspections": 0,
                "model": model,
            }
        ),
    )
    watcher.until(
        lambda: any(s["station"] == "st-synthetic" and s["stats"] for s in gw.store.stations())
    )
    page.goto("/health")
    row = page.locator("#health tr[data-station=st-synthetic]")
    expect(row).to_contain_text("reman-seg 1.5.0")
    expect(row.locator(".model-synthetic")).to_have_text("trained on synthetic data only")


def test_circularity_panel_shows_the_figures(page, web, station):
    st = station("st-circ")
    _publish(
        web,
        st,
        record(station="st-circ", core_id="K1", code=1, minutes=300, impact=(4.0, 10.0)),
        record(station="st-circ", core_id="K2", code=2, minutes=301, impact=(3.5, 6.25)),
        record(station="st-circ", core_id="K3", code=3, minutes=302, impact=(0.0, 0.5)),
        record(
            station="st-circ",
            core_id="K4",
            code=1,
            minutes=303,
            family="starter-motor",
            impact=None,
        ),
    )
    page.goto("/circularity?station=st-circ&period=all")
    expect(page.locator("#fig-cores")).to_have_text("4")
    expect(page.locator("#fig-reuse-rate")).to_have_text("50.0 %")
    expect(page.locator("#fig-reman-rate")).to_have_text("25.0 %")
    expect(page.locator("#fig-material")).to_have_text("7.5 kg")
    expect(page.locator("#fig-co2e")).to_have_text("16.8 kg")
    expect(page.locator("#fig-unknown")).to_have_text("1")
    expect(page.locator("#impact-chart canvas")).to_have_count(1)
    shot(page, "circularity")
    with page.expect_download() as download:
        page.click("#circ-csv")
    rows = list(csv.DictReader(open(download.value.path(), encoding="utf-8")))
    assert sorted(r["core_id"] for r in rows) == ["K1", "K2", "K3", "K4"]
    assert sorted(r["co2e_avoided_kg"] for r in rows) == ["", "0.5", "10.0", "6.25"]


def test_remaining_pages_render(page, web, station):
    gw, _ = web
    st = station("st-misc")
    st.publish(
        "event",
        json.dumps(
            {
                "schema": 1,
                "id": "ev-web-1",
                "ts": "2026-11-28T09:00:00Z",
                "station": "st-misc",
                "level": "error",
                "code": "bench_unreachable",
                "message": "OPC UA bench did not answer within 2 s",
            }
        ),
    )
    _publish(web, st, record(station="st-misc", core_id="M1", code=4, minutes=400))
    page.goto("/events?level=error")
    expect(page.locator("#events")).to_contain_text("bench_unreachable")
    shot(page, "events")
    page.goto("/trends?period=all")
    expect(page.locator("#decisions canvas")).to_have_count(1)
    shot(page, "trends")
    page.goto("/")
    expect(page.locator("[data-station=st-misc]")).to_contain_text("REVIEW")
    page.wait_for_function("window.__sseOpen")
    st.inspection(record(station="st-misc", core_id="M2", code=1, minutes=401))
    expect(page.locator("[data-station=st-misc]")).to_contain_text("REUSE", timeout=5000)
    shot(page, "stations")
    page.goto("/kiosk/st-misc")
    expect(page.locator("#latest-core")).to_have_text("M2")
    shot(page, "kiosk")


def _chart(pg: Page, selector: str) -> dict:
    """The uPlot chart drawn in `selector`: its x range, the x tick labels drawn and its data."""
    return pg.evaluate(
        """sel => { const u = document.querySelector(sel).chart;
          return {min: u.scales.x.min, max: u.scales.x.max, labels: u.axes[0]._values, data: u.data}; }""",
        selector,
    )


def _floor_s(moment: datetime, bucket: timedelta) -> float:
    """Epoch seconds of the start of the UTC bucket holding `moment`."""
    step = bucket.total_seconds()
    return moment.timestamp() // step * step


def test_charts_of_a_new_station_span_the_chosen_period(page, web, station):
    """One record: the x axis is still the chosen period, and every other bucket reads zero."""
    st = station("st-chart")
    now = datetime.now(timezone.utc)
    minutes = (now - BASE).total_seconds() / 60 - 90
    rec = record(station="st-chart", core_id="T1", code=1, minutes=minutes)
    _publish(web, st, rec)
    hour, day = timedelta(hours=1), timedelta(days=1)

    # the case: a period of one hourly bucket is that hour, not 1000 days
    start = datetime.fromtimestamp(_floor_s(BASE + timedelta(minutes=minutes), hour), timezone.utc)
    one_hour = {
        "station": "st-chart",
        "since": start.isoformat(),
        "until": (start + hour).isoformat(),
    }
    page.goto(f"/trends?{urlencode(one_hour)}")
    expect(page.locator("#decisions canvas")).to_have_count(1)
    chart = _chart(page, "#decisions")
    assert (chart["min"], chart["max"]) == (start.timestamp(), (start + hour).timestamp())
    assert chart["data"] == [[start.timestamp()], [1], [0], [0], [0]]

    page.goto("/trends?station=st-chart&period=24h")
    expect(page.locator("#decisions canvas")).to_have_count(1)
    chart = _chart(page, "#decisions")
    shot(page, "trends-one-record")
    assert chart["max"] - chart["min"] == 24 * 3600
    assert chart["max"] in {_floor_s(now, hour), _floor_s(datetime.now(timezone.utc), hour)}
    labels = " ".join(chart["labels"])
    assert f"{now.month}/{now.day}" in labels and str(now.year + 1) not in labels, labels
    x, reuse = chart["data"][0], chart["data"][1]
    assert len(x) == 25 and (x[0], x[-1]) == (chart["min"], chart["max"])
    assert sorted(reuse) == [0] * 24 + [1]
    for defect in ("wear", "corrosion"):
        assert _chart(page, f"#grades-{defect}")["min"] == chart["min"]

    page.goto("/circularity?station=st-chart&period=7d")
    expect(page.locator("#impact-chart canvas")).to_have_count(1)
    chart = _chart(page, "#impact-chart")
    shot(page, "circularity-one-record")
    assert chart["max"] - chart["min"] == 7 * 24 * 3600
    assert chart["max"] in {_floor_s(now, day), _floor_s(datetime.now(timezone.utc), day)}
    assert str(now.year + 1) not in " ".join(chart["labels"]), chart["labels"]
    assert sorted(chart["data"][1]) == [0] * 7 + [4.2]


def test_circularity_chart_leaves_unknown_impact_a_gap(page, web, station):
    """A bucket whose cores have no impact figures is a gap (null), an empty bucket is zero."""
    st = station("st-chart-unknown")
    now = datetime.now(timezone.utc)
    minutes = (now - BASE).total_seconds() / 60 - 90
    _publish(
        web,
        st,
        record(station="st-chart-unknown", core_id="U1", minutes=minutes, impact=None),
    )
    page.goto("/circularity?station=st-chart-unknown&period=24h")
    expect(page.locator("#impact-chart canvas")).to_have_count(1)
    chart = _chart(page, "#impact-chart")
    assert chart["max"] - chart["min"] == 24 * 3600
    for kg in chart["data"][1:]:
        assert len(kg) == 25 and kg.count(None) == 1 and kg.count(0) == 24


@pytest.mark.expect_errors(r"/override: Failed to load resource: .* 400")  # sent without a choice
def test_override_form_preselects_no_decision(page, web, station):
    """The engineer must choose: nothing is selected, and a missing choice is refused twice over."""
    gw, _ = web
    st = station("st-ovr-choose")
    rec = record(station="st-ovr-choose", core_id="C8201", code=2, minutes=220)
    _publish(web, st, rec)
    page.goto(f"/inspections/{rec.id}")
    select = page.locator("#override-form select[name=code]")
    expect(select).to_have_value("")
    expect(select.locator("option:checked")).to_have_text("choose…")
    page.fill("#override-form textarea[name=reason]", "left unchosen")
    page.click("#override-form button[type=submit]")
    assert select.evaluate("s => s.validity.valueMissing") is True
    expect(page).to_have_url(f"{gw.url}/inspections/{rec.id}")
    shot(page, "override-unchosen")

    # a browser that skips the check: the gateway refuses it with a message, sends nothing
    page.locator("#override-form").evaluate("f => { f.noValidate = true; }")
    page.click("#override-form button[type=submit]")
    expect(page.locator("main")).to_contain_text("Choose the new decision.")
    shot(page, "override-refused")
    page.goto(f"/inspections/{rec.id}")
    token = page.locator("#override-form input[name=csrf_token]").get_attribute("value")
    for unchosen in ({}, {"code": ""}):
        missing = page.request.post(
            f"/inspections/{rec.id}/override",
            form={"csrf_token": token or "", "reason": "no code at all", **unchosen},
        )
        assert missing.status == 400, missing.text()
        assert missing.json() == {"detail": "Choose the new decision."}
    page.reload()
    expect(page.locator("#audit tr")).to_have_count(2)  # the heading and the rules' decision
    expect(page.locator("#audit")).not_to_contain_text("override")
