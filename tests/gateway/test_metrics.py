"""/metrics over real HTTP: per-station gauges that match the store, label values escaped."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge.contract import LinkState, ModelInfo, Stats
from edge.contract.timefmt import parse_ts
from gateway.server import Gateway
from gateway.store import Batch, InspectionFilter
from gateway.views import LABELS
from tests.gateway.conftest import make_config
from tests.gateway.records import record, ts_at

# The contract refuses such a station id at ingest; a store is still data, never trusted text.
ODD = 'Süd "7" \\ line\nwest'
STATS = Stats(
    ts=ts_at(31),
    station="st-a",
    uptime_s=3600.0,
    inspections=3,
    latency_ms={"p50": 13.0, "p95": 16.5},
    bench=LinkState(state="connected", since=ts_at(0)),
    broker=LinkState(state="connecting", since=ts_at(30)),
    outbox_depth=7,
    outbox_oldest_age_s=2.5,
    model=ModelInfo(name="reman-seg", version="1.5.0", sha256="ab" * 32),
    disk_free_mb=512.0,
    cpu_temp_c=48.5,
)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory, module_store):
    """A gateway without MQTT over a store with two stations, one of them oddly named."""
    tmp = tmp_path_factory.mktemp("metrics")
    store = module_store
    odd = [record(station="st-odd", code=c, minutes=m) for c, m in ((3, 5), (3, 25), (4, 15))]
    store.write(
        Batch(
            inspections=[
                record(station="st-a", code=1, minutes=0),
                record(station="st-a", code=1, minutes=10),
                record(station="st-a", code=2, minutes=30),
                *(r.model_copy(update={"station": ODD}) for r in odd),
            ],
            available=[("st-a", "online", ts_at(1)), (ODD, "offline", ts_at(40))],
            stats=[STATS],
        )
    )
    gw = Gateway(make_config(tmp), store=store, mqtt=False).start()
    yield gw
    gw.stop()


@pytest.fixture(scope="module")
def scrape(gateway) -> dict[tuple[str, frozenset], float]:
    """One scrape of /metrics, parsed: (sample name, labels) -> value."""
    resp = httpx.get(f"{gateway.url}/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def value(scrape, sample: str, /, **labels: str) -> float:
    return scrape[(sample, frozenset(labels.items()))]


def test_a_station_name_with_quote_backslash_newline_comes_back_whole(scrape):
    stations = {dict(labels)["station"] for name, labels in scrape if name == "reman_station_up"}
    assert stations == {"st-a", ODD}
    assert value(scrape, "reman_station_up", station="st-a") == 1
    assert value(scrape, "reman_station_up", station=ODD) == 0


def test_per_station_figures_match_the_store(gateway, scrape):
    store = gateway.store
    for station in ("st-a", ODD):
        for code, label in LABELS.items():
            stored = store.count(InspectionFilter(station=station, code=code))[0]
            got = value(
                scrape, "reman_station_inspections", station=station, code=str(code), label=label
            )
            assert got == stored, (station, label)
    newest = {"st-a": ts_at(30), ODD: ts_at(25)}
    for station, ts in newest.items():
        assert (
            value(scrape, "reman_station_last_inspection_timestamp_seconds", station=station)
            == parse_ts(ts).timestamp()
        )
    seen = {s["station"]: s["last_seen"] for s in store.stations()}
    assert (
        value(scrape, "reman_station_last_seen_timestamp_seconds", station=ODD)
        == parse_ts(seen[ODD]).timestamp()
    )


def test_gateway_totals_keep_their_names_and_match_the_store(gateway, scrape):
    counts = gateway.store.code_counts()
    for code, label in LABELS.items():
        assert value(
            scrape, "reman_gateway_inspections", code=str(code), label=label
        ) == counts.get(code, 0)
    assert value(scrape, "reman_gateway_stations") == 2
    assert value(scrape, "reman_gateway_stations_online") == 1
    assert value(scrape, "reman_gateway_malformed_total", kind="inspection") == 0
    assert ("reman_gateway_written_total", frozenset()) in scrape
    assert ("reman_gateway_write_errors_total", frozenset()) in scrape


def test_health_figures_of_the_latest_stats(scrape):
    st = {"station": "st-a"}
    assert value(scrape, "reman_station_outbox_depth", **st) == 7
    assert value(scrape, "reman_station_outbox_oldest_age_seconds", **st) == 2.5
    assert value(scrape, "reman_station_uptime_seconds", **st) == 3600
    assert value(scrape, "reman_station_disk_free_bytes", **st) == 512 * 1024 * 1024
    assert value(scrape, "reman_station_cpu_temperature_celsius", **st) == 48.5
    assert value(scrape, "reman_station_trigger_to_result_seconds", quantile="0.5", **st) == 0.013
    assert value(scrape, "reman_station_trigger_to_result_seconds", quantile="0.95", **st) == 0.0165
    assert value(scrape, "reman_station_link_up", link="bench", **st) == 1
    assert value(scrape, "reman_station_link_up", link="broker", **st) == 0
    info = {"name": "reman-seg", "version": "1.5.0", "sha256": "ab" * 32}
    assert value(scrape, "reman_station_model_info", **st, **info) == 1
    assert (
        value(scrape, "reman_station_stats_timestamp_seconds", **st)
        == parse_ts(ts_at(31)).timestamp()
    )
    # A station that sent no stats has no health figures, rather than zeros.
    assert ("reman_station_outbox_depth", frozenset({("station", ODD)})) not in scrape
