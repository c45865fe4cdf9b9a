"""Passport access tiers over HTTP against a real gateway fed over mosquitto: the public view
without a login only where the site enables it, legitimate interest for accounts and tokens,
authority for admins; a tier above the caller's is refused."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from aas_core3 import jsonization, verification
from basyx.aas.adapter.json import read_aas_json_file

from edge.contract import tiers
from gateway.config import GatewayConfig
from gateway.server import Gateway
from tests.gateway.conftest import Station, WriteWatcher, login, make_config
from tests.gateway.records import overridden, record

CORE = "HGP-TIER-1"


def _gateway(tmp_path, mosquitto, public: bool) -> Gateway:
    config = make_config(tmp_path, mosquitto)
    data = config.model_dump(mode="json")
    data["site"] = {**data.get("site", {}), "public_passports": public, "operator": "Reman BV"}
    gw = Gateway(GatewayConfig.model_validate(data)).start()
    assert gw.ingest is not None and gw.ingest.wait_connected(10)
    return gw


@pytest.fixture(scope="module")
def public_gateway(tmp_path_factory, mosquitto):
    gw = _gateway(tmp_path_factory.mktemp("tiers"), mosquitto, public=True)
    station = Station(mosquitto, "st-tier")
    rec = record(station="st-tier", core_id=CORE, code=2)
    station.inspection(rec)
    changed = overridden(rec, 3, user="erin", reason="flange cracked").model_copy(
        update={"revision": 2}
    )
    station.inspection(changed)
    WriteWatcher(gw).until(lambda: (gw.store.get(rec.id, "st-tier") or {}).get("overridden"))
    yield gw
    station.close()
    gw.stop()


def _url(gw: Gateway, **query: str) -> str:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    return f"{gw.url}/api/cores/{CORE}/passport" + (f"?{params}" if params else "")


def test_the_public_tier_needs_no_login_and_shows_no_inspection(public_gateway):
    resp = httpx.get(_url(public_gateway))
    assert resp.status_code == 200
    shown = resp.json()
    assert shown["tier"] == "public"
    assert shown["status"]["label"] == "RECYCLE" and shown["operator"]["operator"] == "Reman BV"
    assert "inspections" not in shown
    assert "flange cracked" not in resp.text and "erin" not in resp.text
    for higher in ("legitimate_interest", "authority"):
        refused = httpx.get(_url(public_gateway, tier=higher))
        assert refused.status_code == 403 and "public tier" in refused.json()["detail"]
    document = httpx.get(_url(public_gateway, format="aas")).json()
    errors = list(verification.verify(jsonization.environment_from_jsonable(document)))
    assert [f"{e.path}: {e.cause}" for e in errors] == []
    read_aas_json_file(io.StringIO(json.dumps(document)), failsafe=False)
    assert "flange cracked" not in json.dumps(document)


def test_an_account_or_token_reads_legitimate_interest_without_who_overrode(public_gateway):
    from gateway import tokens

    text = tokens.create(public_gateway.store, "qdb", "read")
    for client in (
        login(public_gateway.url, "olly"),
        httpx.Client(headers={"Authorization": f"Bearer {text}"}),
    ):
        shown = client.get(_url(public_gateway)).json()
        assert shown["tier"] == "legitimate_interest"
        [inspection] = shown["inspections"]
        assert inspection["measurements"] and inspection["decision"]["code"] == 2
        assert inspection["overrides"] and all(
            "user" not in o and "reason" not in o for o in inspection["overrides"]
        )
        assert client.get(_url(public_gateway, tier="authority")).status_code == 403
        assert client.get(_url(public_gateway, tier="public")).json()["tier"] == "public"


def test_an_admin_reads_the_authority_tier(public_gateway):
    shown = login(public_gateway.url, "ada").get(_url(public_gateway)).json()
    assert shown["tier"] == "authority"
    [override] = shown["inspections"][0]["overrides"]
    assert (override["user"], override["reason"]) == ("erin", "flange cracked")


def test_without_public_passports_a_login_is_needed(tmp_path, mosquitto):
    gw = _gateway(tmp_path, mosquitto, public=False)
    try:
        resp = httpx.get(f"{gw.url}/api/cores/{CORE}/passport")
        assert resp.status_code == 401
        forged = httpx.get(
            f"{gw.url}/api/cores/{CORE}/passport", headers={"Authorization": "Bearer rmn_x"}
        )
        assert forged.status_code == 401
    finally:
        gw.stop()


def test_restrict_keeps_the_public_from_a_batterys_measured_health():
    passport = {
        "unique_identifier": {"core_id": "BAT-1"},
        "status": {"label": "REMANUFACTURE"},
        "battery": {
            "battery_status": "Remanufactured",
            "original_passport_id": "urn:x:1",
            "state_of_health_pct": 91.2,
            "internal_resistance_mohm": 1.4,
        },
        "inspections": [{"overrides": [{"user": "u", "reason": "r", "code": 2}]}],
        "something_new": 1,
    }
    public = tiers.restrict(passport, "public")
    assert public["battery"] == {
        "battery_status": "Remanufactured",
        "original_passport_id": "urn:x:1",
    }
    assert "inspections" not in public and "something_new" not in public
    legitimate = tiers.restrict(passport, "legitimate_interest")
    assert legitimate["battery"]["state_of_health_pct"] == 91.2
    assert legitimate["inspections"][0]["overrides"] == [{"code": 2}]
    assert tiers.restrict(passport, "authority")["something_new"] == 1
    with pytest.raises(ValueError, match="unknown passport tier"):
        tiers.restrict(passport, "everyone")
