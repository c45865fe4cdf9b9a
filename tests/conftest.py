"""Shared fixtures: a real mosquitto broker and a real asyncua server on free loopback ports."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from edge.events import Events
from tests.support.broker import Mosquitto
from tests.support.mqtt import Listener
from tests.support.opcua import start_server

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory) -> Mosquitto:
    """One broker for the whole session (anonymous, no persistence). Do not stop it in a test."""
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield broker
    broker.stop()


@pytest.fixture
def broker_factory(tmp_path):
    """Start dedicated brokers a test may stop and restart (outages); all stopped at the end."""
    started: list[Mosquitto] = []

    def make(extra_config: str = "", name: str = "broker") -> Mosquitto:
        broker = Mosquitto(tmp_path / f"{name}-{len(started)}", extra_config=extra_config).start()
        started.append(broker)
        return broker

    yield make
    for broker in started:
        broker.stop()


@pytest.fixture
def listener_factory():
    """Subscribe test clients; all closed at the end."""
    made: list[Listener] = []

    def make(broker: Mosquitto, topics="#", **kw) -> Listener:
        listener = Listener(broker.host, broker.port, topics, **kw)
        made.append(listener)
        return listener

    yield make
    for listener in made:
        listener.close()


@pytest.fixture
async def opcua_server():
    """An asyncua server with bench-like variables on a free port: (server, nodes by name)."""
    server, nodes = await start_server()
    yield server, nodes
    await server.stop()


@pytest.fixture
def events() -> tuple[Events, list]:
    """An Events object for station `test-1` and the list every event lands in."""
    seen: list = []
    return Events("test-1", sinks=[seen.append]), seen


def pytest_configure(config) -> None:
    config.addinivalue_line(
        "markers",
        "expect_errors(*patterns): the test expects ERROR logs or error events matching these "
        "regular expressions (none given: any); every other ERROR fails the test",
    )


@pytest.fixture(autouse=True)
def no_unexpected_errors(request, caplog):
    """Fail a test whose code logs at ERROR (an error event logs so too) unless it expects that.

    Like `filterwarnings = error` for warnings: an error nobody looked at is a failure. A test
    that provokes one on purpose says so with `@pytest.mark.expect_errors("pattern", ...)`.
    """
    yield
    marker = request.node.get_closest_marker("expect_errors")
    patterns = [re.compile(p) for p in marker.args] if marker else []
    unexpected = [
        record
        for phase in ("setup", "call")
        for record in caplog.get_records(phase)
        if record.levelno >= logging.ERROR and not _expected(record, marker, patterns)
    ]
    if unexpected:
        lines = [f"{r.name}: {r.getMessage()}" for r in unexpected[:5]]
        pytest.fail("unexpected ERROR log:\n  " + "\n  ".join(lines), pytrace=False)


def _expected(record: logging.LogRecord, marker, patterns: list[re.Pattern]) -> bool:
    if marker is None:
        return False
    if not patterns:
        return True
    text = f"{record.name}: {record.getMessage()}"
    return any(p.search(text) for p in patterns)
