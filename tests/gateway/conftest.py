"""Gateway fixtures: a config with three accounts, a running Gateway on a free port, a station
that publishes contract messages with paho, and a watcher that waits for the batch writer."""

from __future__ import annotations

import itertools
import re
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
import pytest

from edge.contract import InspectionRecord, Topics
from gateway.auth import hash_password
from gateway.config import GatewayConfig
from gateway.server import Gateway
from gateway.store import Store
from tests.mqtt.conftest import node_factory  # noqa: F401 - the MQTT tests' nodes (gaps)
from tests.support.browser import chromium, log_in
from tests.support.postgres import PostgresServer, postgres_bin

PASSWORDS = {"erin": "erin-engineer-pw", "olly": "olly-operator-pw", "ada": "ada-admin-pw"}
ROLES = {"erin": "engineer", "olly": "operator", "ada": "admin"}
_HASHES = {name: hash_password(pw) for name, pw in PASSWORDS.items()}
PG_TEMPLATE = "reman_template"
_databases = itertools.count(1)


def make_config(tmp_path: Path, broker=None, **store) -> GatewayConfig:
    """A gateway config in tmp_path with erin (engineer), olly (operator) and ada (admin)."""
    data = {
        "http": {"host": "127.0.0.1", "port": 0, "session_secret": "test-secret-" + "x" * 20},
        "store": {
            "path": str(tmp_path / "gateway.db"),
            "snapshots_dir": str(tmp_path / "snapshots"),
            "batch_interval_s": 0.05,
            **store,
        },
        "users": [
            {"username": n, "password_hash": _HASHES[n], "role": ROLES[n]} for n in PASSWORDS
        ],
        "kiosk": {"enabled": True, "stations": []},
    }
    if broker is not None:
        data["mqtt"] = {"host": broker.host, "port": broker.port}
    return GatewayConfig.model_validate(data)


STORE_BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server for the session, with a template database holding the store's
    current schema (so each test's database is a fast copy); skipped where not installed."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (scripts/bootstrap test installs Debian's)")
    server = PostgresServer(bindir).start()
    Store(server.create_database(PG_TEMPLATE)).close()  # applies every migration
    yield server
    server.stop()


@pytest.fixture(params=STORE_BACKENDS)
def store_backend(request) -> str:
    """`sqlite` or `postgresql`: each store test runs on both."""
    return request.param


@pytest.fixture
def store_target(request, store_backend, tmp_path):
    """`target(name)`: where a test's store called `name` lives on this backend (a file in
    tmp_path, or a database of its own on the session's PostgreSQL); one name, one store."""
    names: dict[str, str] = {}

    def target(name: str = "gateway") -> str:
        if store_backend == "sqlite":
            return str(tmp_path / f"{name}.db")
        if name not in names:
            server = request.getfixturevalue("postgres")
            names[name] = f"t{next(_databases)}"
            server.create_database(names[name], template=PG_TEMPLATE)
        return request.getfixturevalue("postgres").url(names[name])

    yield target
    if names:
        server = request.getfixturevalue("postgres")
        for database in names.values():
            server.drop_database(database)


@pytest.fixture(scope="module", params=STORE_BACKENDS)
def module_store(request, tmp_path_factory):
    """A fresh Store shared by a module's tests, on each backend in turn."""
    if request.param == "sqlite":
        store = Store(tmp_path_factory.mktemp("store") / "gateway.db")
        yield store
        store.close()
        return
    server = request.getfixturevalue("postgres")
    name = f"m{next(_databases)}"
    store = Store(server.create_database(name, template=PG_TEMPLATE))
    yield store
    store.close()
    server.drop_database(name)


@pytest.fixture
def make_store(store_target):
    """`make(name)`: a Store on the test's backend (see store_target); closed at the end."""
    made: list[Store] = []

    def make(name: str = "gateway") -> Store:
        made.append(Store(store_target(name)))
        return made[-1]

    yield make
    for store in made:
        store.close()


class WriteWatcher:
    """Wakes waiting tests after every batch the gateway's writer commits."""

    def __init__(self, gateway: Gateway):
        self._cond = threading.Condition()
        gateway.writer.add_listener(self._written)

    def _written(self, batch) -> None:
        with self._cond:
            self._cond.notify_all()

    def until(self, condition: Callable[[], object], timeout_s: float = 10.0):
        """Return condition()'s first truthy value, re-checked after each batch; fail on timeout."""
        with self._cond:
            result = self._cond.wait_for(condition, timeout_s)
        assert result, f"condition not met within {timeout_s} s"
        return result


class Station:
    """A test station: publishes contract messages like a node would (QoS 1, acknowledged)."""

    def __init__(self, broker, station: str = "st-1"):
        self.topics = Topics(station)
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def publish(self, kind: str, payload: bytes | str, retain: bool = False) -> None:
        """Publish on this station's `kind` topic and wait for the broker's PUBACK."""
        info = self.client.publish(self.topics.topic(kind), payload, qos=1, retain=retain)
        info.wait_for_publish(10)
        assert info.is_published()

    def inspection(self, record: InspectionRecord) -> None:
        """Publish a full record."""
        self.publish("inspection", record.to_json())

    def close(self) -> None:
        """Clear retained messages and disconnect."""
        for kind in ("available", "result"):
            self.publish(kind, b"", retain=True)
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def station_factory(mosquitto):
    """Make test stations on the session broker; closed at the end."""
    made: list[Station] = []

    def make(station: str = "st-1") -> Station:
        made.append(Station(mosquitto, station))
        return made[-1]

    yield make
    for s in made:
        s.close()


@pytest.fixture
def gateway(tmp_path, mosquitto):
    """A running gateway on a free port, ingesting from the session broker."""
    gw = Gateway(make_config(tmp_path, mosquitto)).start()
    assert gw.ingest is not None and gw.ingest.wait_connected(10)
    yield gw
    gw.stop()


@pytest.fixture
def watcher(gateway) -> WriteWatcher:
    """Wait for the gateway's writer."""
    return WriteWatcher(gateway)


def csrf_of(html: str) -> str:
    """The CSRF token in a page's forms."""
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF token"
    return match.group(1)


def login(base_url: str, user: str) -> httpx.Client:
    """An HTTP client logged in as `user`."""
    client = httpx.Client(base_url=base_url, timeout=10)
    token = csrf_of(client.get("/login").text)
    resp = client.post(
        "/login", data={"username": user, "password": PASSWORDS[user], "csrf_token": token}
    )
    assert resp.status_code == 303, resp.text
    return client


# ---------------------------------------------------------------- the dashboard in Chromium


@pytest.fixture(scope="module")
def web(tmp_path_factory, mosquitto):
    """A gateway on the session broker and a watcher of its writer (one per test module)."""
    gw = Gateway(make_config(tmp_path_factory.mktemp("web"), mosquitto)).start()
    assert gw.ingest is not None and gw.ingest.wait_connected(10)
    yield gw, WriteWatcher(gw)
    gw.stop()


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless (the module is skipped without it)."""
    with chromium() as b:
        yield b


@pytest.fixture
def as_user(browser, web):
    """Pages logged in as a given user (erin, olly or ada), 1440x900."""
    gw, _ = web
    contexts = []

    def make(user: str):
        context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=gw.url)
        contexts.append(context)
        return log_in(context.new_page(), user, PASSWORDS[user])

    yield make
    for context in contexts:
        context.close()
