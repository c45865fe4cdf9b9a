"""Gateway figures: ingest rate, and History / API latency over a large store, as JSON.

    .venv/bin/python bench/gateway.py [--records 1000000] [--ingest 20000] [--requests 40]

Ingest, one run, same rows: (ours) contract-valid inspection payloads through `parse_message`
and the BatchWriter (upserts with override precedence, audit, station rows, FTS triggers, one
transaction per batch of StoreConfig.batch_size); (raw) the same rows' columns inserted with
sqlite-utils `insert_all` into a plain table. `ingest_ratio` is our rate over raw's;
`ingest_ratio_to_store_schema` compares with the same `insert_all` into the store's own table
(its secondary indexes and full-text triggers, which cost most of the difference).
Budget: at least 2,000 records/s.

Latency: the store is filled to `--records` rows with executemany in batches of 50,000 (rows
made from a few record templates, times spread over a year, 8 stations, 3 families), then a
gateway without MQTT serves it on a free port and a logged-in client asks the History page and
/api/inspections with each filter in turn (none, station, decision, station+decision, family,
core id search, time range, the second page). p50/p95 in milliseconds per endpoint.
Budget: p95 at most 100 ms. Filling a million rows takes a few minutes.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import sqlite_utils  # noqa: E402

from edge.contract import Disposition, InspectionRecord  # noqa: E402
from edge.contract.timefmt import UTC
from gateway.auth import hash_password  # noqa: E402
from gateway.config import GatewayConfig, StoreConfig  # noqa: E402
from gateway.ingest import BatchWriter, parse_message  # noqa: E402
from gateway.server import Gateway  # noqa: E402
from gateway.store import _INSPECTION_COLUMNS, Store, inspection_row  # noqa: E402

STATIONS = [f"st-{i}" for i in range(1, 9)]
FAMILIES = ["hydraulic-gear-pump", "heat-pump-compressor", "battery-module"]
START = datetime(2025, 11, 1, tzinfo=UTC)
FILL_BATCH = 50_000


def template(code: int, family: str | None) -> InspectionRecord:
    """A realistic record for one decision code."""
    texts = {
        1: "every grade within the REUSE limits",
        2: "wear grade 3 exceeds the REUSE limit 2",
        3: "corrosion Ri4 exceeds the REMANUFACTURE limit Ri3",
        4: "leak_rate_ml_min missing",
    }
    return InspectionRecord.model_validate(
        {
            "schema": 1,
            "id": "ID",
            "seq": 1,
            "ts": "2026-01-01T00:00:00.000Z",
            "station": "st-1",
            "core_id": "CORE",
            "family": family,
            "part_number": "P-200",
            "defects": {
                "wear": {"area_pct": 1.2, "grade": min(code, 3), "confidence": 0.9},
                "corrosion": {"area_pct": 0.4, "grade": 1, "confidence": 0.8},
            },
            "measurements": {
                "leak_rate_ml_min": {"value": 2.5, "unit": "ml/min", "status": "Good"}
            },
            "decision": {
                "code": code,
                "label": Disposition(code).name,
                "credit": 1,
                "reasons": [{"code": "r", "text": texts[code]}],
            },
            "impact": {"known": True, "material_kept_kg": 4.2, "co2e_avoided_kg": 11.5}
            if family
            else {"known": False},
            "model": {"name": "reman-grader", "version": "1.0.0", "sha256": "ab" * 32},
            "timings_ms": {"grade": 8.0},
        }
    )


def records(n: int, offset: int = 0) -> list[InspectionRecord]:
    """n distinct records (for the ingest run)."""
    out = []
    for i in range(offset, offset + n):
        rec = template(1 + i % 4, FAMILIES[i % 3])
        out.append(
            rec.model_copy(
                update={
                    "id": f"{i:026d}",
                    "seq": i,
                    "station": STATIONS[i % 8],
                    "core_id": f"C{i:07d}",
                    "ts": (START + timedelta(seconds=30 * i)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                }
            )
        )
    return out


# ---------------------------------------------------------------- ingest


def bench_ingest(tmp: Path, n: int, batch_size: int) -> dict:
    """Records/s through parse + BatchWriter, against sqlite-utils insert_all of the same rows."""
    recs = records(n)
    payloads = [(f"reman/{r.station}/inspection", r.to_json().encode()) for r in recs]
    rows = [dict(zip(_INSPECTION_COLUMNS, inspection_row(r), strict=True)) for r in recs]
    del recs  # the gateway holds only what arrived: the inputs are bytes and plain rows
    gc.collect()
    writer = BatchWriter(
        Store(tmp / "ingest.db"), tmp / "snaps", batch_size=batch_size, batch_interval_s=0.05
    )
    writer.start()
    t0 = time.perf_counter()
    for topic, payload in payloads:
        writer.submit(parse_message(topic, payload))
    assert writer.flush(600)
    ours_s = time.perf_counter() - t0
    writer.stop()
    raw_db = sqlite_utils.Database(tmp / "raw.db")
    raw_db.enable_wal()
    t0 = time.perf_counter()
    raw_db["inspections"].insert_all(rows, pk="id", batch_size=batch_size)
    raw_s = time.perf_counter() - t0
    # The same insert_all into the store's own table (its indexes and full-text triggers).
    Store(tmp / "raw-schema.db").close()
    same_db = sqlite_utils.Database(tmp / "raw-schema.db")
    same_db.conn.execute("PRAGMA synchronous = NORMAL")
    t0 = time.perf_counter()
    same_db["inspections"].insert_all(rows, batch_size=batch_size)
    same_s = time.perf_counter() - t0
    return {
        "ingest_records": n,
        "ingest_records_per_s": round(n / ours_s),
        "raw_insert_records_per_s": round(n / raw_s),
        "ingest_ratio": round(raw_s / ours_s, 3),  # our rate over raw's
        "raw_insert_into_store_schema_records_per_s": round(n / same_s),
        "ingest_ratio_to_store_schema": round(same_s / ours_s, 3),
    }


# ---------------------------------------------------------------- a large store


def fill(store: Store, n: int) -> float:
    """Put n inspections into the store with executemany; seconds taken."""
    templates = {
        (c, f): inspection_row(template(c, f)) for c in (1, 2, 3, 4) for f in [*FAMILIES, None]
    }
    step = 365 * 24 * 3600 / n
    t0 = time.perf_counter()
    sql = (
        f"INSERT INTO inspections ({', '.join(_INSPECTION_COLUMNS)}) "
        f"VALUES ({', '.join('?' for _ in _INSPECTION_COLUMNS)})"
    )
    conn = store.db.conn
    for start in range(0, n, FILL_BATCH):
        batch = [_row(templates, i, step) for i in range(start, min(n, start + FILL_BATCH))]
        with conn:
            conn.executemany(sql, batch)
    conn.execute(
        "INSERT INTO stations (station, last_seen) VALUES "
        + ", ".join(f"('{s}', '')" for s in STATIONS)
    )
    conn.commit()
    conn.execute("ANALYZE")
    return time.perf_counter() - t0


def _row(templates: dict, i: int, step: float) -> tuple:
    code = 1 + (i * 7) % 4
    family = FAMILIES[i % 3] if i % 10 else None
    base = list(templates[(code, family)])
    ts = (START + timedelta(seconds=i * step)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    rid, core = f"{i:026d}", f"C{i:07d}"
    base[0:5] = [rid, STATIONS[i % 8], ts, i, core]
    at = _INSPECTION_COLUMNS.index("record")
    base[at] = base[at].replace('"ID"', f'"{rid}"').replace('"CORE"', f'"{core}"', 1)
    return tuple(base)


# ---------------------------------------------------------------- latency


QUERIES = [
    {},
    {"station": "st-3"},
    {"code": "RECYCLE"},
    {"station": "st-5", "code": "REVIEW"},
    {"family": "battery-module"},
    {"q": "C0123456"},
    {"since": "2026-03-01T00:00:00Z", "until": "2026-03-08T00:00:00Z"},
    {"station": "st-2", "since": "2026-06-01T00:00:00Z", "until": "2026-06-02T00:00:00Z"},
]


def bench_queries(tmp: Path, store: Store, requests: int) -> dict:
    """p50/p95 of the History page and /api/inspections over the store."""
    config = GatewayConfig.model_validate(
        {
            "http": {"port": 0, "session_secret": "bench-" + "x" * 26},
            "store": {"path": str(store.path), "snapshots_dir": str(tmp / "snaps")},
            "users": [
                {"username": "bench", "password_hash": hash_password("bench"), "role": "engineer"}
            ],
        }
    )
    with (
        Gateway(config, store=store, mqtt=False) as gw,
        httpx.Client(base_url=gw.url, timeout=60) as client,
    ):
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text).group(1)
        client.post("/login", data={"username": "bench", "password": "bench", "csrf_token": token})
        out = {}
        for name, path in (("history", "/history"), ("api", "/api/inspections")):
            times = _timed(client, path, requests)
            out[f"{name}_p50_ms"] = round(statistics.median(times), 1)
            out[f"{name}_p95_ms"] = round(_p95(times), 1)
            out[f"{name}_max_ms"] = round(max(times), 1)
        out["slowest_filters_ms"] = _per_filter(client, "/api/inspections")
        return out


def _timed(client: httpx.Client, path: str, requests: int) -> list[float]:
    times = []
    cursor = client.get("/api/inspections").json()["next_cursor"]
    for i in range(requests):
        params = dict(QUERIES[i % len(QUERIES)])
        if i % (len(QUERIES) + 1) == len(QUERIES):
            params = {"cursor": cursor}
        t0 = time.perf_counter()
        resp = client.get(path, params=params)
        times.append((time.perf_counter() - t0) * 1000)
        assert resp.status_code == 200, resp.text[:300]
    return times


def _per_filter(client: httpx.Client, path: str) -> dict:
    out = {}
    for params in QUERIES:
        t0 = time.perf_counter()
        client.get(path, params=params)
        out[json.dumps(params) or "{}"] = round((time.perf_counter() - t0) * 1000, 1)
    return dict(sorted(out.items(), key=lambda kv: -kv[1])[:3])


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def main() -> None:
    """Run both benchmarks and print one JSON object."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--records", type=int, default=1_000_000, help="rows in the store for the latency run"
    )
    parser.add_argument("--ingest", type=int, default=20_000, help="records for the ingest run")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=StoreConfig().batch_size,
        help="ingest batch size, ours and raw (default: StoreConfig's)",
    )
    parser.add_argument("--requests", type=int, default=40, help="requests per endpoint")
    parser.add_argument(
        "--data-dir", type=Path, help="where the databases go (default: a temporary folder)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.data_dir) as tmp_name:
        tmp = Path(tmp_name)
        result = {"load_average": os.getloadavg()[0]}
        result.update(bench_ingest(tmp, args.ingest, args.batch_size))
        store = Store(tmp / "large.db")
        result["records"] = args.records
        result["fill_s"] = round(fill(store, args.records), 1)
        result.update(bench_queries(tmp, store, args.requests))
        result["budgets"] = {"ingest_records_per_s": 2000, "p95_ms": 100}
        result["within_budget"] = (
            result["ingest_records_per_s"] >= 2000
            and max(result["history_p95_ms"], result["api_p95_ms"]) <= 100
        )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
