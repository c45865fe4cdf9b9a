"""The Health page warns of a station whose model was trained on synthetic data only."""

from __future__ import annotations

import re

from edge.contract import ModelInfo, Stats
from tests.gateway.conftest import login


def _stats(station: str, synthetic_only: bool | None) -> str:
    model = ModelInfo(
        name="reman-seg", version="1.5.0", sha256="ab" * 32, synthetic_only=synthetic_only
    )
    return Stats(
        ts="2026-12-01T08:00:00Z", station=station, uptime_s=5, inspections=0, model=model
    ).model_dump_json()


def _row(html: str, station: str) -> str:
    match = re.search(rf'<tr data-station="{station}">(.*?)</tr>', html, re.S)
    assert match, f"no health row for {station}"
    return match.group(1)


def test_the_health_page_marks_a_synthetic_only_model(gateway, watcher, station_factory):
    stations = {"st-synth": True, "st-site": False, "st-old": None}
    for name, synthetic_only in stations.items():
        station_factory(name).publish("stats", _stats(name, synthetic_only))

    def all_seen():
        seen = {s["station"]: s for s in gateway.store.stations() if s["stats"]}
        return set(stations) <= set(seen)

    watcher.until(all_seen)
    html = login(gateway.url, "olly").get("/health").text
    assert "trained on synthetic data only" in _row(html, "st-synth")
    assert "reman-seg 1.5.0" in _row(html, "st-synth")
    for name in ("st-site", "st-old"):
        assert "synthetic" not in _row(html, name)
