"""Reuse and remanufacture rates say what they count: shares of the decided cores, REVIEW shown
apart, on the stations page (last 24 hours), the circularity page and its API, over a known store.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from playwright.sync_api import Page, expect

from gateway import reports
from gateway.server import Gateway
from gateway.store import Batch, Store
from tests.gateway.conftest import PASSWORDS, login, make_config
from tests.gateway.records import BASE, record
from tests.support.browser import chromium, log_in

# minutes after records.BASE that lie one hour before now: inside the stations page's 24 hours
RECENT = (datetime.now(timezone.utc) - BASE).total_seconds() / 60 - 60
OLD = RECENT - 2 * 24 * 60  # two days earlier: outside them
# st-rates in the last 24 hours: 3 REUSE, 2 REMANUFACTURE, 1 RECYCLE, 2 REVIEW; two days
# earlier one more REUSE. st-waiting: one REVIEW. st-quiet: one REUSE two days ago. st-errors:
# one REUSE, one REVIEW and one error (NONE: the camera gave no frame).
FAILED = {
    "code": 0,
    "label": "NONE",
    "credit": 0,
    "reasons": [{"code": "camera_failed", "text": "no frame from the camera"}],
}
RECORDS = [
    *[
        record(station="st-rates", core_id=f"R{i}", code=code, minutes=RECENT + i)
        for i, code in enumerate([1, 1, 1, 2, 2, 3, 4, 4])
    ],
    record(station="st-rates", core_id="R-old", code=1, minutes=OLD),
    record(station="st-waiting", core_id="W1", code=4, minutes=RECENT),
    record(station="st-quiet", core_id="Q1", code=1, minutes=OLD),
    record(station="st-errors", core_id="E1", code=1, minutes=RECENT),
    record(station="st-errors", core_id="E2", code=4, minutes=RECENT + 1),
    record(station="st-errors", core_id="E3", code=4, minutes=RECENT + 2, decision=FAILED),
]


@pytest.fixture(scope="module")
def store(module_store) -> Store:
    store = module_store
    store.write(Batch(inspections=RECORDS))
    return store


@pytest.fixture(scope="module")
def gw(tmp_path_factory, store):
    """A gateway without MQTT over the known store."""
    gateway = Gateway(make_config(tmp_path_factory.mktemp("gw")), store=store, mqtt=False).start()
    yield gateway
    gateway.stop()


def test_rates_leave_review_out_of_the_denominator(store):
    c = reports.circularity(store, "st-rates")
    assert (c.cores, c.decided_cores, c.review_cores) == (9, 7, 2)
    assert c.reuse_rate == pytest.approx(4 / 7, abs=1e-4)
    assert c.remanufacture_rate == pytest.approx(2 / 7, abs=1e-4)
    assert c.review_share == pytest.approx(2 / 9, abs=1e-4)


def test_rates_by_station_over_a_period(store):
    rates = reports.rates_by_station(store, since=RECORDS[0].ts, until=None)
    assert sorted(rates) == ["st-errors", "st-rates", "st-waiting"]
    r = rates["st-rates"]
    assert (r.cores, r.decided_cores, r.review_cores) == (8, 6, 2)
    assert (r.reuse_rate, r.remanufacture_rate, r.review_share) == (0.5, 0.3333, 0.25)
    waiting = rates["st-waiting"]
    assert (waiting.cores, waiting.decided_cores, waiting.review_share) == (1, 0, 1.0)
    assert waiting.reuse_rate is None and waiting.remanufacture_rate is None
    errors = rates["st-errors"]  # an error is neither decided nor waiting for review
    assert (errors.cores, errors.decided_cores, errors.review_cores) == (3, 1, 1)
    assert (errors.reuse_rate, errors.review_share) == (1.0, 0.3333)


def test_api_says_what_the_rates_count(gw):
    erin = login(gw.url, "erin")
    try:
        body = erin.get("/api/circularity", params={"station": "st-rates"}).json()
    finally:
        erin.close()
    assert (body["cores"], body["decided_cores"], body["review_cores"]) == (9, 7, 2)
    assert body["review_share"] == pytest.approx(0.2222)
    assert body["reuse_rate"] == pytest.approx(0.5714)


@pytest.fixture(scope="module")
def page(gw):
    with chromium() as browser:
        yield log_in(browser.new_context(base_url=gw.url).new_page(), "erin", PASSWORDS["erin"])


@pytest.mark.browser
def test_stations_page_shows_each_stations_review_share(page: Page):
    page.goto("/")
    tile = page.locator("[data-rates=st-rates]")
    expect(tile).to_contain_text("last 24 h: 8 cores · REVIEW 2 (25.0 % of all)")
    expect(tile.locator("[data-figure=rates]")).to_have_text(
        "reuse 50.0 % · remanufacture 33.3 % of 6 decided cores, REVIEW left out"
    )
    waiting = page.locator("[data-rates=st-waiting]")
    expect(waiting).to_contain_text("1 core · REVIEW 1 (100.0 % of all)")
    expect(waiting.locator("[data-figure=rates]")).to_have_text(
        "no core decided: every one waits for REVIEW"
    )
    expect(page.locator("[data-rates=st-quiet]")).to_have_text("no core in the last 24 h")
    errors = page.locator("[data-rates=st-errors]")
    expect(errors).to_contain_text("3 cores · REVIEW 1 (33.3 % of all)")
    expect(errors.locator("[data-figure=rates]")).to_have_text(
        "reuse 100.0 % · remanufacture 0.0 % of 1 decided core, REVIEW and errors left out"
    )


@pytest.mark.browser
def test_circularity_page_says_what_each_rate_counts(page: Page):
    page.goto("/circularity?station=st-rates&period=all")
    expect(page.locator("#fig-cores")).to_have_text("9")
    expect(page.locator("#fig-reuse-rate")).to_have_text("57.1 %")
    expect(page.locator("#fig-reman-rate")).to_have_text("28.6 %")
    for basis in ("#fig-reuse-basis", "#fig-reman-basis"):
        expect(page.locator(basis)).to_have_text("of 7 decided cores, REVIEW left out")
    expect(page.locator("#fig-review")).to_have_text("2")
    expect(page.locator("#fig-review-share")).to_have_text("22.2 % of all cores")
    rows = page.locator("#by-disposition tr")
    expect(rows.nth(0)).to_contain_text("share of all cores")
    expect(rows.filter(has_text="REUSE").first).to_contain_text("4")
    expect(rows.filter(has_text="REUSE").first).to_contain_text("44.4 %")
    expect(rows.filter(has_text="REVIEW")).to_contain_text("22.2 %")
    expect(page.locator("#share-basis")).to_have_text(
        "Shares are of all 9 cores, REVIEW included; the reuse and remanufacture rates above "
        "are of the 7 decided cores."
    )
