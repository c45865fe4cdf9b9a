"""End to end on PostgreSQL: a real gateway with `store.url`, fed by stations over mosquitto,
shows History and /api/inspections with filters and cursor pages, as on SQLite."""

from __future__ import annotations

import html
import re

import pytest

from gateway.server import Gateway
from gateway.store import InspectionFilter
from tests.gateway.conftest import PG_TEMPLATE, Station, WriteWatcher, login, make_config
from tests.gateway.records import record

STATIONS = ("st-pg-a", "st-pg-b")
PER_STATION = 24


@pytest.fixture(scope="module")
def plant(tmp_path_factory, mosquitto, postgres):
    """A gateway on a PostgreSQL store, fed by two stations with every disposition."""
    url = postgres.create_database("plant_e2e", template=PG_TEMPLATE)
    gw = Gateway(make_config(tmp_path_factory.mktemp("plant"), mosquitto, url=url)).start()
    assert gw.store.backend == "postgresql"
    assert gw.ingest is not None and gw.ingest.wait_connected(10)
    watcher = WriteWatcher(gw)
    stations = [Station(mosquitto, s) for s in STATIONS]
    for n in range(PER_STATION):
        for i, station in enumerate(stations):
            code = n % 4 + 1
            station.inspection(
                record(station=STATIONS[i], core_id=f"P{i}{n:03d}", code=code, minutes=n)
            )
    total = PER_STATION * len(STATIONS)
    watcher.until(lambda: gw.store.count(InspectionFilter())[0] == total, timeout_s=20)
    yield gw
    for s in stations:
        s.close()
    gw.stop()
    postgres.drop_database("plant_e2e")


def _all_pages(client, path: str, params: dict) -> list[dict]:
    items, cursor = [], None
    while True:
        resp = client.get(path, params={**params, **({"cursor": cursor} if cursor else {})})
        assert resp.status_code == 200, resp.text
        body = resp.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


def test_the_api_pages_a_filtered_station_on_postgresql(plant):
    erin = login(plant.url, "erin")
    items = _all_pages(erin, "/api/inspections", {"station": "st-pg-a", "code": "2", "limit": 2})
    expected = [f"P0{n:03d}" for n in reversed(range(PER_STATION)) if n % 4 + 1 == 2]
    assert [i["core_id"] for i in items] == expected
    assert {i["station"] for i in items} == {"st-pg-a"}
    everything = _all_pages(erin, "/api/inspections", {"limit": 7})
    assert len(everything) == len({(i["station"], i["id"]) for i in everything}) == 48
    first = erin.get("/api/inspections", params={"limit": 5}).json()
    assert first["count"] == 48 and first["count_capped"] is False
    found = erin.get("/api/inspections", params={"q": "P1 00"}).json()["items"]
    assert found == []  # every word must match: no core id holds a word "00"
    found = erin.get("/api/inspections", params={"q": "p101"}).json()["items"]
    assert sorted(i["core_id"] for i in found) == [f"P101{d}" for d in range(10)]
    erin.close()


def _history(client, url: str) -> tuple[list[str], int]:
    """Core ids on every History page from `url` on, following the next-page links."""
    seen: list[str] = []
    pages = 0
    while url:
        page = client.get(url)
        assert page.status_code == 200
        seen += dict.fromkeys(re.findall(r"\bP\d{4}\b", page.text))
        nxt = re.search(r'href="(/history\?[^"]*cursor=[^"]*)"', page.text)
        url = html.unescape(nxt.group(1)) if nxt else ""
        pages += 1
    return seen, pages


def test_history_pages_with_filters_on_postgresql(plant):
    erin = login(plant.url, "erin")
    seen, pages = _history(erin, "/history?station=st-pg-b&limit=10")
    assert seen == [f"P1{n:03d}" for n in reversed(range(PER_STATION))] and pages > 1
    seen, pages = _history(erin, "/history?station=st-pg-b&code=3&limit=10")
    assert seen == [f"P1{n:03d}" for n in reversed(range(PER_STATION)) if n % 4 + 1 == 3]
    assert pages == 1
    erin.close()
