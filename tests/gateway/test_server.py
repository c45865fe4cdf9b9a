"""The Gateway as a library: start on a free port, stream live updates, stop cleanly."""

from __future__ import annotations

import os
import socket
import threading

import httpx
import pytest

from gateway import Gateway, run_gateway
from tests.gateway.conftest import login, make_config
from tests.gateway.records import record


def test_live_stream_announces_inspections_and_ends_when_the_gateway_stops(
    tmp_path, mosquitto, station_factory
):
    gw = Gateway(make_config(tmp_path, mosquitto)).start()
    assert gw.ingest.wait_connected(10)
    client = login(gw.url, "erin")
    lines: list[str] = []
    ended = threading.Event()
    connected = threading.Event()
    announced = threading.Event()

    def read() -> None:
        with client.stream("GET", "/stream", params={"station": "st-sse"}, timeout=None) as resp:
            for line in resp.iter_lines():
                lines.append(line)
                connected.set()
                if line.startswith("event: inspection"):
                    announced.set()
        ended.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert connected.wait(10)
    rec = record(station="st-sse", core_id="C9001")
    station_factory("st-other").inspection(record(station="st-other", core_id="C9002"))
    station_factory("st-sse").inspection(rec)
    assert announced.wait(10)
    assert f'data: {{"station": "st-sse", "id": "{rec.id}"}}' in lines
    assert not any("st-other" in line for line in lines)
    gw.stop()
    assert ended.wait(10), "the stream did not end when the gateway stopped"


def test_run_gateway_returns_when_stop_is_set(tmp_path, mosquitto):
    config = make_config(tmp_path, mosquitto)
    stop = threading.Event()
    runner = threading.Thread(target=run_gateway, args=(config, stop), daemon=True)
    runner.start()
    stop.set()
    runner.join(20)
    assert not runner.is_alive()


def test_gateway_without_mqtt_serves_its_store(tmp_path):
    with Gateway(make_config(tmp_path), mqtt=False) as gw:
        assert gw.port and gw.port > 0
        assert httpx.get(f"{gw.url}/healthz").json() == {"status": "ok"}
        client = login(gw.url, "erin")
        page = client.get("/inspections/nope", headers={"accept": "text/html"})
        assert page.status_code == 404 and "no inspection nope" in page.text


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    """A Unix datagram socket like the one systemd hands a Type=notify service, with a watchdog."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(10)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    # 2 s: a ping each second; a loaded machine may take a while to answer /healthz
    monkeypatch.setenv("WATCHDOG_USEC", "2000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    yield sock
    sock.close()


def test_run_gateway_tells_systemd_ready_pings_the_watchdog_and_says_stopping(
    tmp_path, mosquitto, notify_socket
):
    stop = threading.Event()
    seen: list[Gateway] = []
    runner = threading.Thread(
        target=run_gateway,
        args=(make_config(tmp_path, mosquitto), stop),
        kwargs={"started": seen.append},
        daemon=True,
    )
    runner.start()
    ready = notify_socket.recv(256).decode()
    (gw,) = seen
    assert ready == f"READY=1\nSTATUS=dashboard at {gw.url}"
    assert httpx.get(f"{gw.url}/healthz").json() == {"status": "ok"}  # ready means it answers
    assert notify_socket.recv(64) == b"WATCHDOG=1"
    assert notify_socket.recv(64) == b"WATCHDOG=1"
    stop.set()
    messages = [notify_socket.recv(64)]
    while messages[-1] == b"WATCHDOG=1":
        messages.append(notify_socket.recv(64))
    assert messages[-1] == b"STOPPING=1"
    runner.join(20)
    assert not runner.is_alive()


def test_a_dashboard_that_stops_answering_is_unhealthy(tmp_path):
    gw = Gateway(make_config(tmp_path), mqtt=False).start()
    try:
        assert gw.healthy()
        gw._server.should_exit = True  # the web server ends; the process would still run
        gw._thread.join(10)
        assert not gw.healthy(timeout_s=1)
    finally:
        gw.stop()


def test_a_gateway_whose_writer_died_is_unhealthy(tmp_path):
    gw = Gateway(make_config(tmp_path), mqtt=False).start()
    try:
        gw.writer.stop()
        assert not gw.healthy()
    finally:
        gw.stop()
