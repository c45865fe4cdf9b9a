"""The plant overview in headless Chromium over a real mosquitto: stations grouped by the
configured sites and lines (the rest under Other stations), each with its state, figures and
last decision, a trend per line, and every station's pages one click away."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from playwright.sync_api import expect

from edge.contract.timefmt import rfc3339
from gateway.config import GatewayConfig
from gateway.server import Gateway
from tests.gateway.conftest import PASSWORDS, Station, WriteWatcher, make_config
from tests.gateway.records import record
from tests.support.broker import Mosquitto
from tests.support.browser import chromium, log_in, shot

pytestmark = pytest.mark.browser

LINES = [
    {"site": "Eindhoven", "line": "Line 1", "stations": ["st-e1", "st-e2"]},
    {"site": "Eindhoven", "line": "Line 2", "stations": ["st-e3"]},
]


def _stats(station: str, outbox: int) -> str:
    now = rfc3339(datetime.now(timezone.utc))
    return json.dumps(
        {"ts": now, "station": station, "uptime_s": 60, "inspections": 4, "outbox_depth": outbox}
    )


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A broker of its own: the page lists every station the gateway has heard of, and the
    session broker carries other tests' retained stations."""
    own = Mosquitto(tmp_path_factory.mktemp("plant-broker")).start()
    yield own
    own.stop()


@pytest.fixture(scope="module")
def plant(tmp_path_factory, broker):
    mosquitto = broker
    config = make_config(tmp_path_factory.mktemp("plant"), mosquitto)
    config = GatewayConfig.model_validate(
        {**config.model_dump(mode="json"), "plant": {"lines": LINES}}
    )
    gw = Gateway(config).start()
    assert gw.ingest is not None and gw.ingest.wait_connected(10)
    watcher = WriteWatcher(gw)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    stations = []
    # st-e1: 3 cores, one REVIEW, newest REMANUFACTURE; st-e2 nothing yet; st-e3 one old core;
    # st-x is on no configured line
    plan = {
        "st-e1": [(1, 50), (4, 40), (2, 5)],
        "st-e3": [(3, 60 * 30)],  # 30 hours ago: outside the last 24 h
        "st-x": [(1, 10)],
    }
    ids = []
    for name in ("st-e1", "st-e2", "st-e3", "st-x"):
        st = Station(mosquitto, name)
        stations.append(st)
        st.publish("available", b"online" if name != "st-e3" else b"offline", retain=True)
        st.publish("stats", _stats(name, 7 if name == "st-e1" else 0))
        for i, (code, minutes_ago) in enumerate(plan.get(name, [])):
            rec = record(
                station=name,
                core_id=f"C{name[3:]}{i:03d}",
                code=code,
                ts=rfc3339(now - timedelta(minutes=minutes_ago)),
            )
            st.inspection(rec)
            ids.append((rec.id, name))
    watcher.until(lambda: all(gw.store.get(i, s) for i, s in ids))
    watcher.until(lambda: len(gw.store.stations()) == 4)
    yield gw
    for st in stations:
        st.close()
    gw.stop()


@pytest.fixture(scope="module")
def page(plant):
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=plant.url)
        yield log_in(context.new_page(), "erin", PASSWORDS["erin"])
        context.close()


def test_the_plant_overview_groups_stations_by_site_and_line(page):
    page.goto("/")
    page.get_by_role("link", name="Plant").click()
    expect(page.locator("h1")).to_have_text("Plant")
    sections = page.locator("section.plant-line")
    expect(sections).to_have_count(3)
    expect(sections.nth(0).locator("h2")).to_contain_text("Eindhoven · Line 1")
    expect(sections.nth(0).locator("h2")).to_contain_text("2 of 2 online · 3 cores")
    expect(sections.nth(1).locator("h2")).to_contain_text("Eindhoven · Line 2")
    expect(sections.nth(2).locator("h2")).to_contain_text("Other stations")
    assert sections.nth(0).locator("table.plant-stations tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.station)"
    ) == ["st-e1", "st-e2"]
    e1 = page.locator("tr[data-station=st-e1]")
    expect(e1.locator("[data-figure=per-hour]")).to_have_text("0.1")  # 3 cores in 24 h
    expect(e1.locator("[data-figure=review]")).to_have_text("33.3 %")
    expect(e1.locator("[data-figure=outbox]")).to_have_text("7")
    expect(e1.locator("[data-figure=last]")).to_contain_text("REMANUFACTURE")
    expect(e1.locator("[data-figure=last]")).to_contain_text("Ce1002")
    e3 = page.locator("tr[data-station=st-e3]")
    expect(e3).to_contain_text("offline")
    expect(e3.locator("[data-figure=per-hour]")).to_have_text("0.0")  # its core is 30 h old
    expect(e3.locator("[data-figure=last]")).to_contain_text("RECYCLE")  # still its newest
    expect(page.locator("tr[data-station=st-e2] [data-figure=last]")).to_have_text(
        "no inspection yet"
    )
    x = page.locator("tr[data-station=st-x]")
    expect(x.locator("[data-figure=per-hour]")).to_have_text("< 0.1")  # one core in 24 h
    expect(x.locator("[data-figure=per-hour]")).to_have_attribute("title", "1 core in 24 h")
    expect(page.locator("tr[data-station=st-e2] [data-figure=review]")).to_have_text("—")
    # one trend per line: 24 hourly buckets, the line's cores summed
    expect(sections.nth(0).locator(".chart canvas")).to_be_visible()
    totals = (
        sections.nth(0)
        .locator(".chart")
        .evaluate("el => el.chart.data.slice(1).map(s => s.reduce((a, b) => a + b, 0))")
    )
    assert totals == [1, 1, 0, 1]  # REUSE, REMANUFACTURE, RECYCLE, REVIEW
    assert sections.nth(0).locator(".chart").evaluate("el => el.chart.data[0].length") == 24
    shot(page, "gateway-plant")
    e1.get_by_role("link", name="st-e1").click()
    expect(page.locator("#latest-core")).to_have_text("Ce1002")
    page.goto("/plant")
    page.locator("tr[data-station=st-x]").get_by_role("link", name="history").click()
    expect(page.locator("#history tr[data-id]")).to_have_count(1)


def test_the_plant_overview_in_german(page):
    page.goto("/plant")
    with page.expect_navigation():
        page.select_option("#language", "de")
    expect(page.locator("h1")).to_have_text("Werk")
    expect(page.locator("section.plant-line").nth(2).locator("h2")).to_contain_text(
        "Weitere Stationen"
    )
    expect(page.locator("tr[data-station=st-e1] [data-figure=review]")).to_have_text("33,3 %")
    with page.expect_navigation():
        page.select_option("#language", "en")


def test_a_line_naming_a_bad_station_id_is_a_config_error():
    with pytest.raises(ValueError, match="stations"):
        GatewayConfig.model_validate(
            {"plant": {"lines": [{"site": "A", "line": "1", "stations": ["Not A Station"]}]}}
        )


def test_the_overview_figures_on_each_store_backend(make_store):
    """The overview's queries on SQLite and PostgreSQL alike."""
    from gateway.plant import overview
    from gateway.store import Batch

    store = make_store()
    now = datetime.now(timezone.utc).replace(microsecond=0)
    store.write(
        Batch(
            inspections=[
                record(station="st-e1", core_id="C1", code=4, ts=rfc3339(now - timedelta(hours=2))),
                record(station="st-e1", core_id="C2", code=2, ts=rfc3339(now - timedelta(hours=1))),
                record(station="st-q", core_id="C3", code=1, ts=rfc3339(now - timedelta(days=3))),
            ]
        )
    )
    config = GatewayConfig.model_validate({"plant": {"lines": LINES}})
    lines = overview(store, config, now)
    assert [(line.site, line.line) for line in lines] == [
        ("Eindhoven", "Line 1"),
        ("Eindhoven", "Line 2"),
        ("", ""),
    ]
    e1 = lines[0].stations[0]
    assert (e1.station, e1.cores, e1.review, e1.last_label, e1.last_core) == (
        "st-e1",
        2,
        1,
        "REMANUFACTURE",
        "C2",
    )
    other = lines[2].stations[0]
    assert (other.station, other.cores, other.last_label) == ("st-q", 0, "REUSE")
    assert sum(bucket["REVIEW"] for bucket in lines[0].trend) == 1
    assert len(lines[0].trend) == 24
