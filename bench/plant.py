"""Plant figures: simulated stations through a mosquitto bridge into a gateway on PostgreSQL.

    .venv/bin/python bench/plant.py [--stations 200] [--rate 30] [--seconds 30]
                                    [--rows 1000000,10000000] [--skip-bridge] [--json-out F]

Everything runs on 127.0.0.1: a throwaway PostgreSQL (tests/support/postgres.py, Debian's
binaries) and three mosquitto brokers as deploy/plant/ ships them: the station broker (one
bridge connection per simulated station, station-bridge.conf rendered for each, TLS with the
station's own certificate), the plant broker (plant-broker.conf, plant.acl, persistence) and the
gateway's broker (gateway-bridge.conf). One station broker carries all the simulated stations
(on a plant each station has its own); the stations are paho clients, one per station, in two
publisher processes. `--skip-bridge` publishes straight to the gateway's broker instead.

Ingest, one run: each station publishes `--rate` contract-valid inspection records a second
(QoS 1, the publish time in the record's `ts`) for `--seconds`; the gateway (`Gateway` with
`store.url`, the StoreConfig defaults) writes them. The gateway writer's listener sees each
committed batch: the sustained rate is the rows committed over the steady window (after the
first fifth of the run, until publishing stops; on a small machine the publishers take CPU from
the gateway, so the rate while the backlog drains after publishing is given too), the lag is
commit time minus `ts` per record.
Next to it, in the same PostgreSQL: the same number of rows (up to 50,000) as executemany in
batches of the gateway's batch size, and as one COPY, into plain tables (no indexes).
Goals: ingest at least 5,000 records/s and 0.3 of raw INSERT; lag p99 at most 2 s.

Latency: a second database is filled to each `--rows` by COPY of generated rows (100
stations, 90 days; the secondary indexes dropped during the COPY and built again after), then a
gateway without MQTT serves it; a logged-in client asks the History page, and a client with a
`read` API token asks /api/inspections, with each filter in turn; the same pages' SQL (the
keyset query and the capped count) runs on a bare psycopg connection, set up as the store sets
up its own (no JIT, no parallel workers: gateway.backends.postgres.SESSION_SETTINGS). Goal: p95 at most 50 ms.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import queue
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx  # noqa: E402
import paho.mqtt.client as paho  # noqa: E402
import psycopg  # noqa: E402

from edge.contract import Disposition, InspectionRecord  # noqa: E402
from edge.contract.timefmt import UTC  # noqa: E402
from edge.errors import BrokerError  # noqa: E402
from edge.mqtt.mosquitto import MosquittoProcess, find_mosquitto  # noqa: E402
from edge.ports import free_port  # noqa: E402
from gateway import tokens  # noqa: E402
from gateway.auth import hash_password  # noqa: E402
from gateway.backends.postgres import SESSION_SETTINGS, PostgresDialect, _pg  # noqa: E402
from gateway.config import GatewayConfig  # noqa: E402
from gateway.server import Gateway  # noqa: E402
from gateway.store import (  # noqa: E402
    _INSPECTION_COLUMNS,
    _UPSERT,
    COUNT_CAP,
    Batch,
    InspectionFilter,
    Store,
    inspection_row,
    keyset_statements,
)
from tests.gateway.records import record  # noqa: E402
from tests.plant.pki import PlantPki, make_plant_pki  # noqa: E402
from tests.support.postgres import PostgresServer, postgres_bin  # noqa: E402

PLANT = REPO / "deploy" / "plant"
SITE, LINE = "site-a", "line-1"
GATEWAY_CN = "plant-gateway"
PUBLISHERS = 2
RAW_ROWS = 50_000
REQUEST_TIMEOUT_S = 60.0
FILL_STATIONS = [f"st-{i:03d}" for i in range(1, 101)]
FILL_DAYS = 90
FILL_START = datetime(2026, 1, 1, tzinfo=UTC)
FAMILIES = ["hydraulic-gear-pump", "heat-pump-compressor", "battery-module", None]
GOALS = {"ingest_records_per_s": 5000, "ingest_ratio": 0.3, "lag_p99_s": 2.0, "p95_ms": 50}


class Skip(Exception):
    """A tool the benchmark needs is not installed"""


# ---------------------------------------------------------------- brokers


def render(name: str, values: dict[str, object]) -> str:
    """A shipped deploy/plant config with its placeholders and file paths replaced."""
    text = (PLANT / name).read_text()
    for old, new in values.items():
        if old not in text:
            raise RuntimeError(f"{old} is not in deploy/plant/{name}")
        text = text.replace(old, str(new))
    return text


def as_invoker() -> str:
    # As root, mosquitto would drop to a user that cannot read our temporary folder.
    return "user root\n" if os.geteuid() == 0 else ""


def plant_broker(folder: Path, pki: PlantPki, autosave: str | None = None) -> MosquittoProcess:
    """plant-broker.conf on a free port, with the persistence Debian's mosquitto.conf adds;
    `autosave` ("changes:N" or "seconds:N") replaces the shipped autosave settings."""
    port = free_port()
    text = render(
        "plant-broker.conf",
        {
            "/etc/mosquitto/plant.acl": PLANT / "plant.acl",
            "/etc/mosquitto/certs/ca.crt": pki.ca,
            "/etc/mosquitto/certs/server.crt": pki.server_cert,
            "/etc/mosquitto/certs/server.key": pki.server_key,
            "listener 8883\n": f"listener {port} 127.0.0.1\n",
        },
    )
    if autosave:
        kind, _, count = autosave.partition(":")
        text = text.replace("autosave_on_changes false\n", "").replace(
            "autosave_interval 60\n",
            f"autosave_on_changes {'true' if kind == 'changes' else 'false'}\n"
            f"autosave_interval {int(count)}\n",
        )
    text += (
        f"persistence true\npersistence_location {folder}/\nlog_dest file {folder}/mosquitto.log\n"
        "log_type error\nlog_type warning\n" + as_invoker()
    )
    return MosquittoProcess(folder, port, full_config=text)


def station_broker(
    folder: Path, pki: PlantPki, plant: MosquittoProcess, stations: list[str]
) -> MosquittoProcess:
    """One broker with station-bridge.conf's bridge once per station (its own certificate)."""
    parts = []
    for station in stations:
        cert, key = pki.clients[station]
        text = render(
            "station-bridge.conf",
            {
                "@STATION@": station,
                "@SITE@": SITE,
                "@LINE@": LINE,
                "@PLANT_HOST@": "127.0.0.1",
                "@PLANT_PORT@": plant.port,
                "/etc/mosquitto/certs/plant-ca.crt": pki.ca,
                "/etc/mosquitto/certs/bridge.crt": cert,
                "/etc/mosquitto/certs/bridge.key": key,
            },
        )
        head, sep, connection = text.partition("connection reman-plant\n")
        if not parts:
            parts.append(head)  # the global queue limits, once
        parts.append(f"connection reman-plant-{station}\n" + connection)
    return MosquittoProcess(folder, free_port(), extra_config="\n".join(parts), persistence=True)


def gateway_broker(folder: Path, pki: PlantPki, plant: MosquittoProcess) -> MosquittoProcess:
    """The gateway's own broker, bridged to the plant broker by gateway-bridge.conf."""
    cert, key = pki.clients[GATEWAY_CN]
    bridge = render(
        "gateway-bridge.conf",
        {
            "@GATEWAY@": "plant-gw-1",
            "@SITE@": SITE,
            "@LINE@": LINE,
            "@PLANT_HOST@": "127.0.0.1",
            "@PLANT_PORT@": plant.port,
            "listener 1883 127.0.0.1\n": "",
            "/etc/mosquitto/certs/plant-ca.crt": pki.ca,
            "/etc/mosquitto/certs/plant-gateway.crt": cert,
            "/etc/mosquitto/certs/plant-gateway.key": key,
        },
    )
    return MosquittoProcess(
        folder, free_port(), extra_config=bridge + as_invoker(), persistence=True
    )


def start_brokers(
    tmp: Path, stations: list[str], args: argparse.Namespace
) -> tuple[MosquittoProcess, MosquittoProcess, list[MosquittoProcess]]:
    """(where the stations publish, the gateway's broker, every broker started)."""
    if args.skip_bridge:
        # the queue limit gateway-bridge.conf gives the gateway's broker (mosquitto's default
        # of 1,000 would drop what the gateway has not yet taken)
        only = MosquittoProcess(
            tmp / "gateway-broker",
            free_port(),
            extra_config="max_queued_messages 1000000\n" + as_invoker(),
        )
        only.start()
        return only, only, [only]
    pki = make_plant_pki(tmp / "pki", [*stations, GATEWAY_CN])
    started: list[MosquittoProcess] = []
    plant = plant_broker(tmp / "plant", pki, args.plant_autosave).start()
    started.append(plant)
    gateway = gateway_broker(tmp / "gateway-broker", pki, plant).start()
    started.append(gateway)
    station = station_broker(tmp / "station", pki, plant, stations).start(timeout_s=30)
    started.append(station)
    return station, gateway, started


def wait_bridges(station: MosquittoProcess, stations: list[str], timeout_s: float) -> int:
    """Wait until every station's bridge reports state 1 on the station broker; how many did."""
    up: set[str] = set()
    done = threading.Event()

    def on_message(client, userdata, msg) -> None:
        name = msg.topic.split("/")[3].removeprefix("bridge-")
        (up.add if msg.payload == b"1" else up.discard)(name)
        if len(up) >= len(stations):
            done.set()

    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="bench-bridge-watch")
    client.on_message = on_message
    client.on_connect = lambda c, *a: c.subscribe("$SYS/broker/connection/+/state", 1)
    client.connect("127.0.0.1", station.port)
    client.loop_start()
    done.wait(timeout_s)
    client.loop_stop()
    client.disconnect()
    return len(up)


# ---------------------------------------------------------------- simulated stations


def payload_template() -> str:
    """A contract-valid inspection as JSON, with markers for the fields each message sets."""
    rec = record(station="zz-station-marker", core_id="COREX", rid="IDX", code=2)
    text = rec.to_json()
    text = text.replace('"seq":' + str(rec.seq), '"seq":987654321')
    return text.replace(f'"ts":"{rec.ts}"', '"ts":"TSX"')


def rfc3339_ms(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


def publish_stations(
    port: int, names: list[str], rate: float, seconds: float, start_at: float, out: queue.Queue
) -> None:
    """A publisher process: one paho client per station, each `rate` records/s for `seconds`
    from wall-clock `start_at`; puts {"published": n} on `out` once the broker acknowledged all."""
    template = payload_template()
    clients = []
    for name in names:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"sim-{name}")
        client.max_inflight_messages_set(1000)
        client.connect("127.0.0.1", port, keepalive=60)
        client.loop_start()
        clients.append(client)
    sent = [0] * len(names)
    last: list[paho.MQTTMessageInfo | None] = [None] * len(names)
    time.sleep(max(0.0, start_at - time.time()))
    t0 = time.monotonic()
    while (elapsed := time.monotonic() - t0) < seconds:
        due = int(rate * elapsed) + 1
        for k, client in enumerate(clients):
            while sent[k] < due:
                now = time.time()
                payload = (
                    template.replace("zz-station-marker", names[k])
                    .replace("IDX", f"{names[k]}-{sent[k]:09d}")
                    .replace("COREX", f"C{k:03d}{sent[k]:07d}")
                    .replace("987654321", str(sent[k] + 1))
                    .replace("TSX", rfc3339_ms(now))
                )
                last[k] = client.publish(f"reman/{names[k]}/inspection", payload, qos=1)
                sent[k] += 1
        time.sleep(0.01)
    publish_s = time.monotonic() - t0
    for info in last:
        if info is not None:
            info.wait_for_publish(60)
    for client in clients:
        client.disconnect()
        client.loop_stop()
    out.put({"published": sum(sent), "publish_s": publish_s})


class Committed:
    """The gateway writer's listener: per committed batch, the time and the records' lags."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.points: list[tuple[float, int]] = []  # (monotonic, records committed so far)
        self.lags_s: list[float] = []
        self.total = 0

    def __call__(self, batch: Batch) -> None:
        now_wall, now = time.time(), time.monotonic()
        for rec in batch.inspections:
            sent = datetime.fromisoformat(rec.ts.replace("Z", "+00:00")).timestamp()
            self.lags_s.append(now_wall - sent)
        with self.lock:
            self.total += len(batch.inspections)
            self.points.append((now, self.total))
            self.lock.notify_all()

    def until(self, n: int, idle_s: float, limit_s: float) -> bool:
        """Wait until `n` records are committed; False when none came for `idle_s` or `limit_s`
        has passed."""
        deadline = time.monotonic() + limit_s
        with self.lock:
            while self.total < n:
                before = self.total
                self.lock.wait(min(idle_s, max(0.0, deadline - time.monotonic())))
                if self.total == before or time.monotonic() >= deadline:
                    return self.total >= n
        return True

    def rate_between(self, start: float, end: float) -> float:
        """Records committed a second from `start` to the last batch before `end`."""
        inside = [(t, n) for t, n in self.points if start <= t <= end]
        before = [n for t, n in self.points if t < start]
        if len(inside) < 2:
            return 0.0
        n0 = before[-1] if before else 0
        return (inside[-1][1] - n0) / (inside[-1][0] - start)


def gateway_config(tmp: Path, url: str, broker: MosquittoProcess | None) -> GatewayConfig:
    data = {
        "http": {"host": "127.0.0.1", "port": 0, "session_secret": "bench-" + "x" * 26},
        "store": {"url": url, "snapshots_dir": str(tmp / "snaps")},
        "users": [
            {"username": "bench", "password_hash": hash_password("bench"), "role": "engineer"}
        ],
    }
    if broker is not None:
        data["mqtt"] = {"host": broker.host, "port": broker.port, "client_id": "bench-plant-gw"}
    return GatewayConfig.model_validate(data)


def bench_ingest(tmp: Path, pg: PostgresServer, args: argparse.Namespace) -> dict:
    """Stations -> brokers -> gateway -> PostgreSQL; then raw INSERT and COPY of as many rows."""
    stations = [f"st-{i:03d}" for i in range(1, args.stations + 1)]
    url = pg.create_database("plant_ingest")
    publish_to, gw_broker, brokers = start_brokers(tmp, stations, args)
    committed = Committed()
    try:
        bridges = None if args.skip_bridge else wait_bridges(publish_to, stations, 60)
        with Gateway(gateway_config(tmp, url, gw_broker)) as gw:
            assert gw.ingest is not None and gw.ingest.wait_connected(10)
            gw.writer.add_listener(committed)
            published, publish_s, t_start = run_stations(publish_to, stations, args)
            t_end = t_start + publish_s
            t_warm = t_start + max(1.0, publish_s / 5)
            drained = committed.until(published, idle_s=15, limit_s=args.drain_s)
            drain_s = committed.points[-1][0] - t_end if committed.points else 0.0
            rate = committed.rate_between(t_warm, t_end)
            after = committed.rate_between(t_end, committed.points[-1][0] if drain_s > 0 else t_end)
            with psycopg.connect(url) as conn:
                (in_store,) = conn.execute("SELECT count(*) FROM inspections").fetchone()
    finally:
        for broker in reversed(brokers):
            broker.stop()
    raw = bench_raw(url, min(max(published, 1000), RAW_ROWS))
    lags = sorted(committed.lags_s)
    return {
        "bridge": "none (--skip-bridge)"
        if args.skip_bridge
        else f"station broker (all {len(stations)} stations, one TLS bridge each) -> plant "
        "broker -> gateway broker",
        "bridges_up": bridges,
        "published": published,
        "published_per_s": round(published / publish_s),
        "committed_by_gateway": committed.total,
        "rows_in_store": in_store,
        "not_in_store_at_end": published - in_store,
        "all_arrived": drained and in_store == published,
        "drain_after_publishing_s": round(drain_s, 2),
        "drain_limit_s": args.drain_s,
        "ingest_records_per_s": round(rate),
        "ingest_after_publishing_records_per_s": round(after),
        **raw,
        "ingest_ratio": round(rate / raw["raw_insert_records_per_s"], 3),
        "ingest_ratio_to_indexed_upsert": round(rate / raw["raw_upsert_indexed_records_per_s"], 3),
        "lag_p50_s": round(_quantile(lags, 0.5), 3),
        "lag_p99_s": round(_quantile(lags, 0.99), 3),
        "lag_max_s": round(lags[-1], 3) if lags else None,
    }


def run_stations(
    broker: MosquittoProcess, stations: list[str], args: argparse.Namespace
) -> tuple[int, float, float]:
    """Run the publisher processes; (records published, seconds, monotonic start)."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    start_at = time.time() + 3 + len(stations) / 50  # time for every client to connect
    shares = [stations[i::PUBLISHERS] for i in range(PUBLISHERS)]
    procs = [
        ctx.Process(
            target=publish_stations,
            args=(broker.port, share, args.rate, args.seconds, start_at, out),
        )
        for share in shares
        if share
    ]
    for proc in procs:
        proc.start()
    time.sleep(max(0.0, start_at - time.time()))
    t_start = time.monotonic()
    results = [out.get(timeout=args.seconds + 300) for _ in procs]
    for proc in procs:
        proc.join(30)
    return (
        sum(r["published"] for r in results),
        max(r["publish_s"] for r in results),
        t_start,
    )


def raw_rows(n: int) -> list[tuple]:
    """n rows in the store's columns, from the same records the stations publish."""
    template = payload_template()
    base = InspectionRecord.model_validate_json(
        template.replace("zz-station-marker", "st-001")
        .replace("COREX", "C0")
        .replace("IDX", "id")
        .replace("TSX", "2026-01-01T00:00:00.000Z")
    )
    row = list(inspection_row(base))
    out = []
    for i in range(n):
        row[0], row[1], row[3], row[4] = f"raw-{i:09d}", f"st-{1 + i % 200:03d}", i, f"C{i:09d}"
        row[2] = rfc3339_ms(1767225600 + i * 0.01)
        out.append(tuple(row))
    return out


def bench_raw(url: str, n: int) -> dict:
    """Raw executemany (batches of 200, one transaction each) into a plain table (no index)
    and into a copy of the store's table with all its indexes (the store's upsert statement),
    and one COPY into a plain table."""
    rows = raw_rows(n)
    cols = ", ".join(_INSPECTION_COLUMNS)
    marks = ", ".join(["%s"] * len(_INSPECTION_COLUMNS))
    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("raw_insert", "raw_copy"):
            conn.execute(f"CREATE TABLE {table} (LIKE inspections)")
        conn.execute("CREATE SCHEMA raw")
        conn.execute("CREATE TABLE raw.inspections (LIKE public.inspections INCLUDING ALL)")

        def batches(sql: str) -> float:
            t0 = time.perf_counter()
            for start in range(0, n, 200):
                with conn.transaction(), conn.cursor() as cur:
                    cur.executemany(sql, rows[start : start + 200])
            return time.perf_counter() - t0

        insert_s = batches(f"INSERT INTO raw_insert ({cols}) VALUES ({marks})")
        conn.execute("SET search_path TO raw")  # the store's statement, on the indexed copy
        upsert_s = batches(_pg(_UPSERT))
        conn.execute("SET search_path TO public")
        t0 = time.perf_counter()
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(f"COPY raw_copy ({cols}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        copy_s = time.perf_counter() - t0
    return {
        "raw_rows": n,
        "raw_insert_records_per_s": round(n / insert_s),
        "raw_upsert_indexed_records_per_s": round(n / upsert_s),
        "raw_copy_records_per_s": round(n / copy_s),
    }


# ---------------------------------------------------------------- a large store


def fill_templates() -> dict[tuple[int, str | None], list[str]]:
    """COPY text fields of one record per (code, family), with markers in id, core and ts."""
    out = {}
    for code in (1, 2, 3, 4):
        for family in FAMILIES:
            rec = record(
                station="zz-station-marker",
                core_id="COREX",
                rid="IDX",
                code=code,
                family=family,
                impact=(4.2, 11.5) if family else None,
            )
            rec = rec.model_copy(update={"ts": "2000-01-01T00:00:00.000Z", "seq": 1})
            fields = [
                r"\N" if v is None else str(v).replace("\\", "\\\\") for v in inspection_row(rec)
            ]
            out[(code, family)] = fields
    return out


def copy_lines(templates: dict, start: int, stop: int, step_s: float) -> bytes:
    """COPY text for rows start..stop-1 (100 stations, `step_s` apart, codes and families mixed)."""
    lines = []
    base = FILL_START.timestamp()
    for i in range(start, stop):
        fields = list(templates[(1 + (i * 7) % 4, FAMILIES[i % 4])])
        rid, station, core = f"F{i:011d}", FILL_STATIONS[i % 100], f"C{i:07d}"
        ts = rfc3339_ms(base + i * step_s)
        fields[0:5] = [rid, station, ts, str(i), core]
        fields[15] = (
            fields[15]
            .replace('"IDX"', f'"{rid}"')
            .replace('"zz-station-marker"', f'"{station}"')
            .replace('"COREX"', f'"{core}"')
            .replace("2000-01-01T00:00:00.000Z", ts)
        )
        lines.append("\t".join(fields))
    return ("\n".join(lines) + "\n").encode()


def fill(url: str, have: int, want: int) -> float:
    """Add rows have..want-1 by COPY (secondary indexes dropped, then built again); seconds."""
    step_s = FILL_DAYS * 86400 / want
    templates = fill_templates()
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'inspections' "
            "AND indexname <> 'inspections_pkey'"
        ).fetchall()
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        with conn.transaction(), conn.cursor() as cur:
            with cur.copy(f"COPY inspections ({', '.join(_INSPECTION_COLUMNS)}) FROM STDIN") as cp:
                for start in range(have, want, 20_000):
                    cp.write(copy_lines(templates, start, min(want, start + 20_000), step_s))
        for _, definition in indexes:
            conn.execute(definition)
        conn.execute(
            "INSERT INTO stations (station, last_seen) VALUES "
            + ", ".join(f"('{s}', '')" for s in FILL_STATIONS)
            + " ON CONFLICT DO NOTHING"
        )
        conn.execute("VACUUM (ANALYZE) inspections")
    return time.perf_counter() - t0


# ---------------------------------------------------------------- latency

QUERIES = [
    {"station": "st-003"},
    {"code": "RECYCLE"},
    {"station": "st-005", "code": "REVIEW"},
    {"family": "battery-module"},
    {"q": "C0123456"},
    {"since": "2026-02-01T00:00:00Z", "until": "2026-02-08T00:00:00Z"},
    {"station": "st-042", "since": "2026-03-01T00:00:00Z", "until": "2026-03-02T00:00:00Z"},
    {},
]


def bench_queries(tmp: Path, url: str, requests: int) -> dict:
    """p50/p95 of History (logged in), /api/inspections (read token) and their bare SQL."""
    store = Store(url)
    token = tokens.create(store, f"bench-{int(time.time())}", "read")
    with (
        Gateway(gateway_config(tmp, url, None), store=store, mqtt=False) as gw,
        httpx.Client(base_url=gw.url, timeout=REQUEST_TIMEOUT_S) as web,
        httpx.Client(
            base_url=gw.url,
            timeout=REQUEST_TIMEOUT_S,
            headers={"Authorization": f"Bearer {token}"},
        ) as api,
    ):
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', web.get("/login").text).group(1)
        web.post("/login", data={"username": "bench", "password": "bench", "csrf_token": csrf})
        out = {
            "history": _timed(lambda p: web.get("/history", params=p), requests),
            "api": _timed(lambda p: api.get("/api/inspections", params=p), requests),
        }
    store.close()
    with psycopg.connect(url) as conn:
        for statement in SESSION_SETTINGS:  # as the store's connections are set up
            conn.execute(statement)
        out["raw_sql"] = _timed(lambda p: _raw_page(conn, p), requests)
    return {f"{name}_{k}": v for name, figures in out.items() for k, v in figures.items()}


def _raw_page(conn: psycopg.Connection, params: dict) -> None:
    """The page's statements (capped count, keyset page: gateway.store's own, a search as
    the store runs it) on a bare connection."""
    code = params.get("code")
    flt = InspectionFilter(
        station=params.get("station"),
        since=params.get("since"),
        until=params.get("until"),
        code=int(Disposition[code]) if code else None,
        family=params.get("family"),
        q=params.get("q"),
    )
    dialect = PostgresDialect()
    where, values = flt.where(dialect)
    (n,) = conn.execute(
        f"SELECT count(*) FROM (SELECT 1 FROM inspections WHERE {_pg(where)} LIMIT %s) AS m",
        [*values, COUNT_CAP + 1],
    ).fetchone()
    for sql, params in keyset_statements(flt, dialect, 51, None, few=n <= COUNT_CAP):
        if len(conn.execute(_pg(sql), params).fetchall()) >= 51:
            break


def _timed(call, requests: int) -> dict:
    call({})  # warm: connections, templates
    times, unsearched, searched, timeouts = [], [], [], 0
    for i in range(requests):
        params = QUERIES[i % len(QUERIES)]
        t0 = time.perf_counter()
        try:
            resp = call(params)
        except httpx.TimeoutException:  # counted at the client's timeout, not fatal
            resp, timeouts = None, timeouts + 1
        ms = (time.perf_counter() - t0) * 1000
        times.append(ms)
        (searched if "q" in params else unsearched).append(ms)
        if resp is not None and resp.status_code != 200:
            raise RuntimeError(f"{resp.request.url}: {resp.status_code} {resp.text[:300]}")
    return {
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(_quantile(sorted(times), 0.95), 1),
        "p95_ms_without_search": round(_quantile(sorted(unsearched), 0.95), 1),
        "search_p50_ms": round(statistics.median(searched), 1) if searched else None,
        "timeouts": timeouts,
    }


def _quantile(ordered: list[float], q: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def bench_sizes(tmp: Path, pg: PostgresServer, sizes: list[int], requests: int) -> dict:
    """For each size in order: fill the store to it, then measure the pages."""
    url = pg.create_database("plant_rows")
    Store(url).close()  # the schema
    out, have = {}, 0
    for n in sorted(sizes):
        fill_s = fill(url, have, n)
        have = n
        print(f"plant bench: {n} rows filled in {fill_s:.0f} s", file=sys.stderr, flush=True)
        out[str(n)] = {"fill_s": round(fill_s, 1), **bench_queries(tmp, url, requests)}
    return out


# ---------------------------------------------------------------- main


def machine(bindir: Path) -> dict:
    pg = subprocess.run([str(bindir / "postgres"), "--version"], capture_output=True, text=True)
    mq = subprocess.run([find_mosquitto(), "-h"], capture_output=True, text=True)
    return {
        "cores": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "postgres": pg.stdout.strip(),
        "mosquitto": (mq.stdout or mq.stderr).splitlines()[0].strip(),
        "platform": platform.platform(),
    }


def tools() -> Path:
    """The PostgreSQL bin folder; Skip when it or mosquitto is missing."""
    try:
        find_mosquitto()
    except BrokerError as exc:
        raise Skip(str(exc)) from exc
    bindir = postgres_bin()
    if bindir is None:
        raise Skip("PostgreSQL is not installed (apt install postgresql)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        raise Skip("running as root needs runuser to start PostgreSQL")
    return bindir


def within_goals(result: dict) -> dict:
    ingest = result["ingest"]
    largest = result["latency"][max(result["latency"], key=int)] if result["latency"] else None
    return {
        "ingest_records_per_s": ingest["ingest_records_per_s"] >= GOALS["ingest_records_per_s"],
        "ingest_ratio": ingest["ingest_ratio"] >= GOALS["ingest_ratio"],
        "lag_p99_s": ingest["lag_p99_s"] <= GOALS["lag_p99_s"],
        "p95_ms_at_largest": None
        if largest is None
        else max(largest["history_p95_ms"], largest["api_p95_ms"]) <= GOALS["p95_ms"],
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=200, help="simulated stations")
    parser.add_argument(
        "--rate", type=float, default=30.0, help="records/s per station (default 30: 6,000/s)"
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="seconds of publishing")
    parser.add_argument(
        "--rows",
        default="1000000",
        help="store sizes for the latency run, comma-separated (e.g. 1000000,10000000)",
    )
    parser.add_argument(
        "--drain-s",
        type=float,
        default=60.0,
        help="longest wait for the backlog after publishing stops",
    )
    parser.add_argument("--requests", type=int, default=80, help="requests per endpoint and size")
    parser.add_argument(
        "--skip-bridge", action="store_true", help="publish straight to the gateway's broker"
    )
    parser.add_argument(
        "--plant-autosave",
        help="replace plant-broker.conf's autosave (every 60 s) with changes:N or "
        "seconds:N (mosquitto's own default is seconds:1800)",
    )
    parser.add_argument("--json-out", type=Path, help="also write the JSON to this file")
    return parser.parse_args()


def main() -> None:
    """Run the ingest and the latency benchmarks; print one JSON object."""
    args = parse_args()
    try:
        bindir = tools()
    except Skip as exc:
        result: dict = {"skipped": str(exc)}
    else:
        sizes = [int(s) for s in args.rows.split(",") if s.strip()]
        pg = PostgresServer(bindir).start()
        try:
            with tempfile.TemporaryDirectory(prefix="reman-plant-") as tmp_name:
                tmp = Path(tmp_name)
                result = {
                    "machine": machine(bindir),
                    "parameters": {
                        "stations": args.stations,
                        "rate_per_station": args.rate,
                        "offered_records_per_s": round(args.stations * args.rate),
                        "seconds": args.seconds,
                        "rows": sizes,
                        "requests": args.requests,
                        "skip_bridge": args.skip_bridge,
                        "plant_autosave": args.plant_autosave or "as shipped (seconds:60)",
                        "publisher_processes": PUBLISHERS,
                    },
                }
                result["ingest"] = bench_ingest(tmp, pg, args)
                result["latency"] = bench_sizes(tmp, pg, sizes, args.requests)
                result["goals"] = GOALS
                result["within_goals"] = within_goals(result)
        finally:
            pg.stop()
    text = json.dumps(result, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")


if __name__ == "__main__":
    main()
