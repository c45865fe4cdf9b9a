"""A plant gateway with its own client id keeps its broker session: what stations publish while
it is down (restarting, upgraded) reaches its store when it is back; one without keeps none."""

from __future__ import annotations

from gateway.server import Gateway
from gateway.store import InspectionFilter
from tests.gateway.conftest import Station, WriteWatcher, make_config
from tests.gateway.records import record


def _gateway(tmp_path, mosquitto, client_id: str | None) -> Gateway:
    config = make_config(tmp_path, mosquitto)
    config = config.model_copy(
        update={"mqtt": config.mqtt.model_copy(update={"client_id": client_id})}
    )
    gw = Gateway(config).start()
    assert gw.ingest is not None and gw.ingest.wait_connected(10)
    return gw


def _ids(gw: Gateway, station: str) -> set[str]:
    return {r["id"] for r in gw.store.page(InspectionFilter(station=station), limit=100).rows}


def test_records_published_while_a_plant_gateway_is_down_arrive_when_it_is_back(
    tmp_path, mosquitto
):
    gw = _gateway(tmp_path, mosquitto, "plant-gateway-1")
    station = Station(mosquitto, "st-away")
    first = record(station="st-away", core_id="C5001")
    station.inspection(first)
    WriteWatcher(gw).until(lambda: _ids(gw, "st-away") == {first.id})
    gw.stop()
    away = [record(station="st-away", core_id=f"C50{i:02d}") for i in range(10, 20)]
    for rec in away:  # acknowledged by the broker, queued in the gateway's session
        station.inspection(rec)
    gw = _gateway(tmp_path, mosquitto, "plant-gateway-1")
    try:
        want = {first.id} | {r.id for r in away}
        WriteWatcher(gw).until(lambda: _ids(gw, "st-away") == want, timeout_s=15)
        assert _ids(gw, "st-away") == want
    finally:
        gw.stop()
        station.close()


def test_a_gateway_without_a_client_id_starts_a_fresh_session(tmp_path, mosquitto):
    gw = _gateway(tmp_path, mosquitto, None)
    assert not gw.ingest.persistent
    gw.stop()
    station = Station(mosquitto, "st-fresh")
    station.inspection(record(station="st-fresh", core_id="C5101"))
    later = record(station="st-fresh", core_id="C5102")
    gw = _gateway(tmp_path, mosquitto, None)
    try:
        station.inspection(later)
        WriteWatcher(gw).until(lambda: later.id in _ids(gw, "st-fresh"))
        assert _ids(gw, "st-fresh") == {later.id}  # the one sent while it was away is not kept
    finally:
        gw.stop()
        station.close()
