"""bench/plant.py with tiny settings: three stations through the bridge into PostgreSQL, a small
store for the pages; the JSON has every figure and its counts add up (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from edge.errors import BrokerError
from edge.mqtt.mosquitto import find_mosquitto
from tests.conftest import REPO
from tests.support.postgres import postgres_bin

SCRIPT = REPO / "bench" / "plant.py"
STATIONS, RATE, SECONDS, ROWS = 3, 10, 2, 2000


def tools_missing() -> str | None:
    try:
        find_mosquitto()
    except BrokerError as exc:
        return str(exc)
    return None if postgres_bin() else "PostgreSQL is not installed"


def run_bench(tmp_path, *extra: str) -> dict:
    out = tmp_path / "plant.json"
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--stations", str(STATIONS), "--rate", str(RATE),
         "--seconds", str(SECONDS), "--rows", str(ROWS), "--requests", "8",
         "--json-out", str(out), *extra],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    printed = json.loads(run.stdout)
    assert json.loads(out.read_text()) == printed
    return printed


def test_the_bench_reports_every_figure_and_each_record_arrives_once(tmp_path):
    missing = tools_missing()
    if missing:
        pytest.skip(missing)
    figures = run_bench(tmp_path)
    assert {"cores", "python", "postgres", "mosquitto"} <= set(figures["machine"])
    assert figures["parameters"]["stations"] == STATIONS
    ingest = figures["ingest"]
    assert ingest["bridges_up"] == STATIONS
    assert ingest["published"] == STATIONS * RATE * SECONDS
    assert ingest["rows_in_store"] == ingest["published"] and ingest["not_in_store_at_end"] == 0
    assert ingest["all_arrived"] is True
    assert ingest["committed_by_gateway"] >= ingest["published"]  # QoS 1 may deliver twice
    assert ingest["raw_insert_records_per_s"] > 0 and ingest["raw_copy_records_per_s"] > 0
    assert {"ingest_records_per_s", "ingest_ratio", "lag_p50_s", "lag_p99_s"} <= set(ingest)
    assert ingest["lag_p50_s"] <= ingest["lag_p99_s"]
    (size,) = figures["latency"]
    assert int(size) == ROWS
    page = figures["latency"][size]
    for name in ("history", "api", "raw_sql"):
        assert page[f"{name}_p50_ms"] <= page[f"{name}_p95_ms"], name
    assert set(figures["within_goals"]) == {
        "ingest_records_per_s",
        "ingest_ratio",
        "lag_p99_s",
        "p95_ms_at_largest",
    }
