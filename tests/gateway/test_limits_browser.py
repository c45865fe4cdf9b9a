"""The family's limits on the live view and the detail page, in headless Chromium.

A pump core is decided by the real rules of the hydraulic-gear-pump family, published over the
real mosquitto as a node would, and read on the pages: only the pump's measurements, each with
its range and unit, and the limit that decided marked in words. Screenshots land in
tests/artifacts/.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from edge.contract import InspectionRecord
from edge.decision.families import load_families
from edge.decision.limits import limits_of
from edge.decision.rules import decide
from tests.conftest import REPO
from tests.gateway.records import record, ts_at
from tests.gateway.test_browser import _login, _publish, page, shot, station  # noqa: F401

pytestmark = pytest.mark.browser

PUMP = load_families(REPO / "config/families").get("hydraulic-gear-pump")


def _pump_record(station_id: str, core_id: str, minutes: float) -> InspectionRecord:
    """A pump core whose wear grade reaches the REMANUFACTURE limit; the bench also reports a
    measurement of another family (a starter's current), which is not the pump's."""
    defects = {
        "wear": {"area_pct": 0.6, "grade": 2, "confidence": 0.93, "scale": "iso4628-5"},
        "corrosion": {"area_pct": 0.1, "grade": 1, "confidence": 0.9, "scale": "iso4628-3"},
        "coating_damage": {"area_pct": 0.0, "grade": 0, "confidence": 0.95, "scale": "iso4628-5"},
    }
    bench = {
        "leak_rate_ml_min": {"value": 2.5, "unit": "ml/min", "status": "Good"},
        "flow_l_min": {"value": 24.0, "unit": "l/min", "status": "Good"},
        "starter_current_a": {"value": 118.0, "unit": "A", "status": "Good"},
    }
    decision = decide(PUMP, defects, bench)
    return record(
        station=station_id,
        core_id=core_id,
        code=2,
        minutes=minutes,
        defects=defects,
        measurements={k: {**v, "source_ts": ts_at(minutes)} for k, v in bench.items()},
        decision=decision.model_dump(mode="json"),
        limits=limits_of(PUMP, decision).model_dump(mode="json"),
    )


def test_a_pump_core_shows_its_own_measurements_against_their_limits(page, web, station):  # noqa: F811
    st = station("st-limits")
    rec = _pump_record("st-limits", "HGP-000321", minutes=500)
    assert [r.rule for r in rec.decision.reasons] == ["grades.wear.remanufacture_at"]
    _publish(web, st, rec)

    page.goto("/live/st-limits")
    expect(page.locator("#latest-core")).to_have_text("HGP-000321")
    rows = page.locator("#measurements tbody[data-measurement]")
    expect(rows).to_have_count(2)
    expect(page.locator("#measurements")).not_to_contain_text("starter_current_a")
    leak = page.locator("#measurements tbody[data-measurement=leak_rate_ml_min]")
    expect(leak).to_contain_text("2.5")
    expect(leak).to_contain_text("max 5 ml/min")
    expect(leak).to_contain_text("RECYCLE above 40 ml/min")
    flow = page.locator("#measurements tbody[data-measurement=flow_l_min]")
    expect(flow).to_contain_text("min 20 l/min")
    expect(flow).to_contain_text("RECYCLE below 8 l/min")
    expect(page.locator("#measurements .deciding-mark")).to_have_count(0)
    wear = page.locator(".limit-line[data-defect=wear]")
    expect(wear).to_have_class("limit-line deciding")
    expect(wear).to_contain_text("◀\u00a0decided REMANUFACTURE")
    expect(wear.locator(".deciding-limit")).to_have_text("REMANUFACTURE from 2")
    expect(page.locator(".limit-line[data-defect=corrosion]")).not_to_contain_text("decided")
    expect(page.locator(".limit-line[data-defect=corrosion]")).to_contain_text("RECYCLE from 4")
    shot(page, "limits-live")

    page.goto(f"/inspections/st-limits/{rec.id}")
    expect(page.locator("#measurements tbody[data-measurement]")).to_have_count(2)
    expect(page.locator("#measurements")).not_to_contain_text("starter_current_a")
    expect(page.locator("#measurements tbody[data-measurement=flow_l_min]")).to_contain_text(
        "min 20 l/min"
    )
    wear_row = page.locator("#grades tbody[data-defect=wear]")
    expect(wear_row).to_have_class("deciding")
    expect(wear_row).to_contain_text("◀\u00a0decided REMANUFACTURE")
    expect(wear_row.locator(".deciding-limit")).to_have_text("REMANUFACTURE from 2")
    expect(page.locator("#grades .deciding-mark")).to_have_count(1)
    shot(page, "limits-detail")


def test_a_measurement_limit_that_decided_is_marked(page, web, station):  # noqa: F811
    st = station("st-limits-m")
    rec = _pump_record("st-limits-m", "HGP-000322", minutes=510)
    bench = {k: v.model_dump() for k, v in rec.measurements.items()}
    bench["flow_l_min"]["value"] = 6.0
    decision = decide(PUMP, {k: v.model_dump() for k, v in rec.defects.items()}, bench)
    rec = rec.model_copy(
        update={
            "measurements": InspectionRecord.model_validate(
                {**rec.model_dump(by_alias=True), "measurements": bench}
            ).measurements,
            "decision": decision,
            "limits": limits_of(PUMP, decision),
        }
    )
    _publish(web, st, rec)
    page.goto(f"/inspections/st-limits-m/{rec.id}")
    flow = page.locator("#measurements tbody[data-measurement=flow_l_min]")
    expect(flow).to_have_class("deciding")
    expect(flow).to_contain_text("◀\u00a0decided RECYCLE")
    expect(flow.locator(".deciding-limit")).to_have_text("RECYCLE below 8 l/min")
    expect(page.locator("#grades .deciding-mark")).to_have_count(0)


def test_grade_limits_beside_a_descending_table_say_which_scale_they_are_on(page, web, station):  # noqa: F811
    st = station("st-limits-astm")
    rec = _pump_record("st-limits-astm", "HGP-000324", minutes=515)
    data = rec.model_dump(by_alias=True, mode="json")
    data["defects"]["corrosion"].update(grade=8, scale="astm-d610")
    rec = InspectionRecord.model_validate(data)
    _publish(web, st, rec)
    page.goto(f"/inspections/st-limits-astm/{rec.id}")
    corrosion = page.locator("#grades tbody[data-defect=corrosion]")
    expect(corrosion).to_contain_text("on the 0..5 severity scale the rules read, not astm-d610")
    expect(page.locator("#grades tbody[data-defect=wear]")).not_to_contain_text("severity scale")


def test_an_old_record_without_limits_renders_as_before(page, web, station):  # noqa: F811
    st = station("st-limits-old")
    rec = record(station="st-limits-old", core_id="HGP-000100", code=2, minutes=520)
    assert rec.limits is None
    _publish(web, st, rec)
    page.goto("/live/st-limits-old")
    expect(page.locator("#latest-core")).to_have_text("HGP-000100")
    panel = page.locator(".panel", has_text="Measurements")
    expect(panel).to_contain_text("leak_rate_ml_min")
    expect(panel).to_contain_text("2.5")
    expect(page.locator(".limit-line")).to_have_count(0)
    expect(page.locator(".deciding-mark")).to_have_count(0)
    page.goto(f"/inspections/st-limits-old/{rec.id}")
    expect(page.locator(".panel", has_text="Measurements").last).to_contain_text("leak_rate_ml_min")
    expect(page.locator("#grades")).to_have_count(0)


@pytest.mark.parametrize("width,height", [(390, 844), (800, 480)])
def test_limits_fit_a_phone_and_the_station_display(browser, web, station, width, height):  # noqa: F811
    gw, _ = web
    st = station("st-limits-size")
    rec = _pump_record("st-limits-size", "HGP-000323", minutes=530 + width / 1000)
    _publish(web, st, rec)
    context = browser.new_context(viewport={"width": width, "height": height}, base_url=gw.url)
    pg = context.new_page()
    _login(pg, "erin")
    for url in (
        "/live/st-limits-size",
        "/kiosk/st-limits-size",
        f"/inspections/st-limits-size/{rec.id}",
    ):
        pg.goto(url)
        expect(pg.locator("#measurements tbody[data-measurement]")).to_have_count(2)
        expect(pg.locator(".deciding-mark").first).to_contain_text("decided REMANUFACTURE")
        widths = pg.evaluate(
            "() => ({page: document.documentElement.scrollWidth, view: window.innerWidth})"
        )
        assert widths["page"] <= widths["view"], (url, widths)
        shot(pg, f"limits-{url.split('/')[1]}-{width}x{height}")
    context.close()
