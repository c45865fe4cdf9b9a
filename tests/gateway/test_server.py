"""The Gateway as a library: start on a free port, stream live updates, stop cleanly."""

from __future__ import annotations

import threading

import httpx

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
