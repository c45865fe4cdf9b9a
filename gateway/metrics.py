"""Prometheus /metrics: the gateway's ingest counts, stored inspections and each station's health.

Built per scrape with prometheus_client, which writes the text format and escapes label values
(a station name is data from the store, not text to trust). The gateway's own figures keep their
names (`reman_gateway_*`); per station (`reman_station_*`, label `station`):

    reman_station_up                                  1 when its availability is online, else 0
    reman_station_last_seen_timestamp_seconds         when the gateway last heard from it
    reman_station_last_inspection_timestamp_seconds   time of its newest stored inspection
    reman_station_inspections{code,label}             stored inspections by effective decision
    reman_station_stats_timestamp_seconds ...         the figures of its latest `stats` message:
        uptime, trigger-to-result p50/p95, outbox depth and oldest age, bench and broker link,
        model (an info metric), free disk, CPU temperature

Counting stored inspections scans an index, so those counts are taken at most every
`counts_ttl_s` (5 s); everything else is read at each scrape.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)

from edge.contract.timefmt import parse_ts
from gateway.views import LABELS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The text format generate_latest writes for these names, which every Prometheus reads."""

COUNTS_TTL_S = 5.0

_COUNTS_SQL = "SELECT station, code, count(*) AS n, max(ts) AS last_ts FROM inspections GROUP BY station, code"


class StationsStore(Protocol):
    """What the metrics read of the gateway's store."""

    def stations(self) -> list[dict[str, Any]]: ...

    def select(self, sql: str, params: list[Any]) -> list[dict[str, Any]]: ...


class Counters(Protocol):
    """The ingest counters (gateway.ingest.IngestCounters)."""

    def snapshot(self) -> dict[str, Any]: ...


class GatewayMetrics:
    """The figures of one gateway as a prometheus_client collector; `render()` is one scrape."""

    def __init__(
        self,
        store: StationsStore,
        counters: Counters,
        *,
        counts_ttl_s: float = COUNTS_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.store = store
        self.counters = counters
        self.counts_ttl_s = counts_ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self._counts: tuple[float, list[dict[str, Any]]] | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def render(self) -> bytes:
        """The Prometheus text of every figure now."""
        return generate_latest(self.registry)

    def collect(self) -> Iterator[Metric]:
        """Every metric family (prometheus_client's Collector protocol)."""
        counts = self._inspection_counts()
        stations = self.store.stations()
        yield from _ingest(self.counters.snapshot())
        yield from _gateway_inspections(counts)
        yield from _gateway_stations(stations)
        yield from _station_facts(stations, counts)
        yield from _station_health(stations)

    def _inspection_counts(self) -> list[dict[str, Any]]:
        """(station, code, n, last_ts) rows, recounted at most every `counts_ttl_s`."""
        with self._lock:
            now = self.clock()
            if self._counts is None or now - self._counts[0] > self.counts_ttl_s:
                self._counts = (now, self.store.select(_COUNTS_SQL, []))
            return self._counts[1]


def _ingest(counters: dict[str, Any]) -> Iterator[Metric]:
    received = CounterMetricFamily(
        "reman_gateway_messages", "Valid messages received, by kind.", labels=["kind"]
    )
    for kind, n in sorted(counters["received"].items()):
        received.add_metric([kind], n)
    malformed = CounterMetricFamily(
        "reman_gateway_malformed", "Messages refused as malformed, by kind.", labels=["kind"]
    )
    for kind, n in sorted(counters["malformed"].items()) or [("inspection", 0)]:
        malformed.add_metric([kind], n)
    yield received
    yield malformed
    yield CounterMetricFamily(
        "reman_gateway_written", "Messages written to the store.", value=counters["written"]
    )
    yield CounterMetricFamily(
        "reman_gateway_write_errors",
        "Batches that failed to write.",
        value=counters["write_errors"],
    )


def _gateway_inspections(counts: list[dict[str, Any]]) -> Iterator[Metric]:
    by_code: Counter[int] = Counter()
    for row in counts:
        by_code[row["code"]] += row["n"]
    family = GaugeMetricFamily(
        "reman_gateway_inspections",
        "Stored inspections by effective decision.",
        labels=["code", "label"],
    )
    for code in sorted(LABELS):
        family.add_metric([str(code), LABELS[code]], by_code.get(code, 0))
    yield family


def _gateway_stations(stations: list[dict[str, Any]]) -> Iterator[Metric]:
    online = sum(1 for s in stations if s["available"] == "online")
    yield GaugeMetricFamily(
        "reman_gateway_stations_online", "Stations whose availability is online.", value=online
    )
    yield GaugeMetricFamily("reman_gateway_stations", "Stations seen.", value=len(stations))


def _station_facts(
    stations: list[dict[str, Any]], counts: list[dict[str, Any]]
) -> Iterator[Metric]:
    up = _gauge("up", "1 when the station's availability (retained, with its Last Will) is online.")
    seen = _gauge("last_seen_timestamp_seconds", "When the gateway last heard from the station.")
    for s in stations:
        up.add_metric([s["station"]], 1 if s["available"] == "online" else 0)
        if s["last_seen"]:
            seen.add_metric([s["station"]], _unix(s["last_seen"]))
    last = _gauge(
        "last_inspection_timestamp_seconds", "Time of the station's newest stored inspection."
    )
    newest: dict[str, str] = {}
    for row in counts:
        newest[row["station"]] = max(newest.get(row["station"], ""), row["last_ts"])
    for station, ts in sorted(newest.items()):
        last.add_metric([station], _unix(ts))
    yield from (up, seen, last)
    yield _station_inspections(sorted({s["station"] for s in stations} | set(newest)), counts)


def _station_inspections(stations: list[str], counts: list[dict[str, Any]]) -> Metric:
    family = GaugeMetricFamily(
        "reman_station_inspections",
        "Stored inspections of the station by effective decision.",
        labels=["station", "code", "label"],
    )
    n = {(row["station"], row["code"]): row["n"] for row in counts}
    for station in stations:
        for code in sorted(LABELS):
            family.add_metric([station, str(code), LABELS[code]], n.get((station, code), 0))
    return family


_HEALTH: list[tuple[str, str, Callable[[dict[str, Any]], Any]]] = [
    (
        "stats_timestamp_seconds",
        "When the latest stats were taken.",
        lambda s: _unix(s["ts"]) if s.get("ts") else None,
    ),
    ("uptime_seconds", "Seconds since the node started.", lambda s: s.get("uptime_s")),
    ("outbox_depth", "Messages waiting in the node's outbox.", lambda s: s.get("outbox_depth")),
    (
        "outbox_oldest_age_seconds",
        "Age of the oldest message waiting in the outbox.",
        lambda s: s.get("outbox_oldest_age_s"),
    ),
    (
        "disk_free_bytes",
        "Free disk space for the journal.",
        lambda s: None if s.get("disk_free_mb") is None else s["disk_free_mb"] * 1024 * 1024,
    ),
    ("cpu_temperature_celsius", "CPU temperature.", lambda s: s.get("cpu_temp_c")),
]


def _station_health(stations: list[dict[str, Any]]) -> Iterator[Metric]:
    """The figures of each station's latest `stats` message (none before the first)."""
    reporting = [(s["station"], s["stats"]) for s in stations if s["stats"]]
    for name, help_text, read in _HEALTH:
        family = _gauge(name, help_text + " From the station's latest stats.")
        for station, stats in reporting:
            value = read(stats)
            if value is not None:
                family.add_metric([station], value)
        yield family
    yield _latency(reporting)
    yield _links(reporting)
    yield _model(reporting)


def _latency(reporting: list[tuple[str, dict[str, Any]]]) -> Metric:
    family = GaugeMetricFamily(
        "reman_station_trigger_to_result_seconds",
        "Trigger-to-result latency percentiles over the node's recent inspections.",
        labels=["station", "quantile"],
    )
    for station, stats in reporting:
        for key, quantile in (("p50", "0.5"), ("p95", "0.95")):
            value = (stats.get("latency_ms") or {}).get(key)
            if value is not None:
                family.add_metric([station, quantile], value / 1000)
    return family


def _links(reporting: list[tuple[str, dict[str, Any]]]) -> Metric:
    family = GaugeMetricFamily(
        "reman_station_link_up",
        "1 when the node's bench (OPC UA) or broker (MQTT) link is connected, else 0.",
        labels=["station", "link"],
    )
    for station, stats in reporting:
        for link in ("bench", "broker"):
            state = (stats.get(link) or {}).get("state")
            if state and state != "disabled":
                family.add_metric([station, link], 1 if state == "connected" else 0)
    return family


def _model(reporting: list[tuple[str, dict[str, Any]]]) -> Metric:
    family = InfoMetricFamily(
        "reman_station_model", "The node's grading model.", labels=["station"]
    )
    for station, stats in reporting:
        model = stats.get("model") or {}
        if model:
            family.add_metric(
                [station], {k: str(model.get(k) or "") for k in ("name", "version", "sha256")}
            )
    return family


def _gauge(name: str, help_text: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"reman_station_{name}", help_text, labels=["station"])


def _unix(ts: str) -> float:
    """An RFC 3339 time as Unix seconds, the unit of Prometheus' `*_timestamp_seconds`."""
    return parse_ts(ts).timestamp()
