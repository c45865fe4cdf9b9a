"""Times on the pages in the gateway's time zone (display.timezone), UTC in the tooltip and in
the exports; dates and numbers written the way the reader's language writes them."""

from __future__ import annotations

import csv
import io
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Page, expect
from pydantic import ValidationError

from gateway.config import DisplayConfig, GatewayConfig
from gateway.formats import host_timezone, local_time, number, percent
from gateway.server import Gateway
from tests.gateway.conftest import PASSWORDS, WriteWatcher, login, make_config
from tests.gateway.records import record
from tests.support.browser import chromium, log_in, shot

DECEMBER = "2026-12-01T10:00:00Z"
"""A record time in winter: Amsterdam is UTC+1, so the pages show 11:00."""


def test_a_zone_shown_with_its_utc_time_in_the_title():
    html = local_time(DECEMBER, ZoneInfo("Europe/Amsterdam"), "en")
    assert html == (
        '<time datetime="2026-12-01T10:00:00.000Z" title="2026-12-01 10:00:00 UTC">'
        "2026-12-01 11:00:00</time>"
    )
    assert ">01.12.2026 11:00:00<" in local_time(DECEMBER, ZoneInfo("Europe/Berlin"), "de")
    assert ">01-12-2026 11:00:00<" in local_time(DECEMBER, ZoneInfo("Europe/Amsterdam"), "nl")
    summer = local_time("2026-07-01T10:00:00Z", ZoneInfo("Europe/Amsterdam"), "en", False)
    assert ">12:00:00<" in summer
    assert local_time(None, ZoneInfo("UTC"), "en") == ""


def test_numbers_in_the_readers_language():
    assert number(1234.5, "en") == "1,234.5"
    assert number(1234.5, "de") == "1.234,5"
    assert number(1234.5, "nl") == "1.234,5"
    assert percent(0.5, "en") == "50.0 %"
    assert percent(0.5, "de") == "50,0 %"


def test_the_zone_is_checked_and_defaults_to_the_hosts(monkeypatch):
    with pytest.raises(ValidationError, match="unknown time zone 'Europe/Atlantis'"):
        GatewayConfig.model_validate({"display": {"timezone": "Europe/Atlantis"}})
    monkeypatch.setenv("TZ", "Europe/Berlin")
    assert host_timezone() == "Europe/Berlin"
    assert DisplayConfig().timezone is None
    assert DisplayConfig().zone_name() == "Europe/Berlin"
    monkeypatch.setenv("TZ", "Not/AZone")
    assert host_timezone() != "Not/AZone"


@pytest.fixture(scope="module")
def web(tmp_path_factory, mosquitto):
    """A gateway set to Europe/Amsterdam."""
    config = make_config(tmp_path_factory.mktemp("tz"), mosquitto)
    config = config.model_copy(update={"display": DisplayConfig(timezone="Europe/Amsterdam")})
    gw = Gateway(config).start()
    assert gw.ingest is not None and gw.ingest.wait_connected(10)
    yield gw, WriteWatcher(gw)
    gw.stop()


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser, web) -> Page:
    gw, _ = web
    context = browser.new_context(base_url=gw.url, viewport={"width": 1440, "height": 900})
    pg = log_in(context.new_page(), "erin", PASSWORDS["erin"])
    yield pg
    context.close()


@pytest.fixture(scope="module")
def december(web, mosquitto):
    """A record published at 10:00 UTC on 1 December."""
    from tests.gateway.conftest import Station

    gw, watcher = web
    st = Station(mosquitto, "st-tz")
    rec = record(station="st-tz", core_id="C9001", code=2, ts=DECEMBER)
    st.inspection(rec)
    watcher.until(lambda: gw.store.get(rec.id))
    yield rec
    st.close()


@pytest.mark.browser
def test_pages_show_amsterdam_time_with_utc_in_the_tooltip(page, december):
    page.goto("/history?station=st-tz")
    cell = page.locator(f"#history tr[data-id='{december.id}'] time")
    expect(cell).to_have_text("2026-12-01 11:00:00")
    expect(cell).to_have_attribute("title", "2026-12-01 10:00:00 UTC")
    page.goto(f"/inspections/st-tz/{december.id}")
    meta = page.locator("#decision .meta time")
    expect(meta).to_have_text("2026-12-01 11:00:00")
    expect(meta).to_have_attribute("title", "2026-12-01 10:00:00 UTC")
    expect(page.locator("#audit time").first).to_have_text("2026-12-01 11:00:00")
    page.goto("/live/st-tz")
    expect(page.locator("#latest .meta time")).to_have_text("11:00:00")
    expect(page.locator("#recent time").first).to_have_attribute("title", "2026-12-01 10:00:00 UTC")
    with page.expect_navigation():
        page.select_option("#language", "de")
    page.goto("/history?station=st-tz")
    expect(page.locator(f"#history tr[data-id='{december.id}'] time")).to_have_text(
        "01.12.2026 11:00:00"
    )
    expect(page.locator(f"#history tr[data-id='{december.id}']")).to_contain_text("4,2")
    shot(page, "history-de-amsterdam")


@pytest.mark.browser
def test_the_history_filter_reads_its_times_in_the_gateways_zone(page, december):
    """10:00 UTC is 11:00 in Amsterdam: a filter from 10:30 local keeps the core, 11:30 not."""
    row = page.locator(f"#history tr[data-id='{december.id}']")
    for since, shown in (("2026-12-01T10:30", 1), ("2026-12-01T11:30", 0)):
        page.goto(f"/history?station=st-tz&since={since}")
        expect(row).to_have_count(shown)
        expect(page.locator("input[name=since]")).to_have_value(since)
        expect(page.locator("label", has=page.locator("input[name=since]"))).to_contain_text(
            "Europe/Amsterdam"
        )
    page.goto("/history?station=st-tz&until=2026-12-01T10:59")
    expect(row).to_have_count(0)
    csv_link = page.locator("#csv").get_attribute("href") or ""
    assert "until=2026-12-01T09%3A59%3A00.000Z" in csv_link  # the link carries UTC


def test_the_api_reads_a_time_without_a_zone_as_utc(web, december):
    gw, _ = web
    client = login(gw.url, "erin")
    found = client.get("/api/inspections?station=st-tz&since=2026-12-01T10:30").json()
    assert found["items"] == []  # 10:30 UTC is after the core's 10:00 UTC


def test_exports_keep_utc(web, december):
    gw, _ = web
    client = login(gw.url, "erin")
    rows = list(csv.DictReader(io.StringIO(client.get("/history.csv?station=st-tz").text)))
    assert [r["ts"] for r in rows] == [DECEMBER]
    api = client.get(f"/api/inspections/st-tz/{december.id}").json()
    assert api["record"]["ts"] == DECEMBER
