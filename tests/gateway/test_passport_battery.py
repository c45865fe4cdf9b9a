"""A battery module's passport over the gateway's API, fed over mosquitto as a node would: the
battery submodel with its state of health for an API token, only what the public may read
without one, and a revoked token refused rather than served the public view."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from aas_core3 import jsonization, verification
from basyx.aas.adapter.json import read_aas_json_file

from edge.decision.families import load_families
from gateway import tokens
from gateway.config import GatewayConfig
from gateway.server import Gateway
from tests.conftest import REPO
from tests.gateway.conftest import Station, WriteWatcher, login, make_config
from tests.gateway.records import overridden, record

CORE = "BAT-API-000001"
ID_TEMPLATE = "https://id.example.com/01/09506000134352/21/{core_id}"
BATTERY = load_families(REPO / "config/families").get("battery-module")


def bench(capacity_pct: float, resistance_mohm: float) -> dict:
    return {
        "capacity_pct": {"value": capacity_pct, "unit": "%", "status": "Good"},
        "internal_resistance_mohm": {"value": resistance_mohm, "unit": "mOhm", "status": "Good"},
    }


@pytest.fixture(scope="module")
def battery_gateway(tmp_path_factory, mosquitto):
    """A public-passport gateway holding one battery module, reworked by an override."""
    config = make_config(tmp_path_factory.mktemp("battery"), mosquitto)
    data = config.model_dump(mode="json")
    data["site"] = {
        **data.get("site", {}),
        "public_passports": True,
        "operator": "Reman BV",
        "facility": "Hall 3",
        "id_template": ID_TEMPLATE,
    }
    gw = Gateway(GatewayConfig.model_validate(data)).start()
    assert gw.ingest is not None and gw.ingest.wait_connected(10)
    assert BATTERY is not None and BATTERY.passport and BATTERY.passport.battery
    station = Station(mosquitto, "st-battery")
    rec = record(
        station="st-battery",
        core_id=CORE,
        code=1,
        family="battery-module",
        part_number="BAT-48-2K2",
        measurements=bench(93.0, 21.0),
        battery=BATTERY.passport.battery.model_dump(mode="json"),
    )
    station.inspection(rec)
    changed = overridden(rec, 2, user="erin", reason="one cell group replaced")
    station.inspection(changed.model_copy(update={"revision": 2}))
    WriteWatcher(gw).until(lambda: (gw.store.get(rec.id, "st-battery") or {}).get("overridden"))
    yield gw
    station.close()
    gw.stop()


def _url(gw: Gateway, **query: str) -> str:
    params = "&".join(f"{k}={v}" for k, v in query.items())
    return f"{gw.url}/api/cores/{CORE}/passport" + (f"?{params}" if params else "")


def _verified(resp: httpx.Response) -> dict:
    """The AAS environment of a response, accepted by aas-core3.0 and BaSyx's strict decoder."""
    assert resp.status_code == 200, resp.text
    document = resp.json()
    errors = list(verification.verify(jsonization.environment_from_jsonable(document)))
    assert [f"{e.path}: {e.cause}" for e in errors] == []
    read_aas_json_file(io.StringIO(json.dumps(document)), failsafe=False)
    return document


def _battery_values(document: dict) -> dict[str, dict]:
    """The battery submodels' elements by idShort (collections opened): the IDTA 02035
    BatteryNameplate, TechnicalData and ProductCondition."""
    parts = ("BatteryNameplate", "TechnicalData", "ProductCondition")
    found: dict[str, dict] = {}

    def walk(elements: list[dict]) -> None:
        for element in elements:
            found[element["idShort"]] = element
            if element["modelType"] == "SubmodelElementCollection":
                walk(element.get("value", []))

    for submodel in document["submodels"]:
        if submodel["idShort"] in parts:
            walk(submodel["submodelElements"])
    return found


def test_a_token_reads_the_battery_submodel_with_its_state_of_health(battery_gateway):
    text = tokens.create(battery_gateway.store, "bms", "read")
    client = httpx.Client(headers={"Authorization": f"Bearer {text}"})
    document = _verified(client.get(_url(battery_gateway, format="aas")))
    [shell] = document["assetAdministrationShells"]
    assert shell["assetInformation"]["globalAssetId"] == ID_TEMPLATE.format(core_id=CORE)
    values = _battery_values(document)
    # capacity 93 %; resistance (45 - 21) / (45 - 15) = 80 %: the state of health is the lower
    assert values["StateOfHealth"]["value"] == "80.0"
    assert values["InternalResistance"]["value"] == "21.0"
    assert float(values["RemainingCapacityValue"]["value"]) == pytest.approx(42.594)
    assert values["LifeCycleStage"]["value"] == "remanufactured"  # the override's decision
    assert values["OriginalBatteryPassportId"]["value"] == CORE  # the trigger read it
    shown = client.get(_url(battery_gateway)).json()
    assert shown["tier"] == "legitimate_interest"
    assert shown["battery"]["state_of_health_pct"] == 80.0
    assert "one cell group replaced" not in json.dumps(shown)  # the authority's only


def test_the_public_tier_sees_status_and_origin_but_no_measured_health(battery_gateway):
    resp = httpx.get(_url(battery_gateway, format="aas"))
    values = _battery_values(_verified(resp))
    assert values["LifeCycleStage"]["value"] == "remanufactured"
    assert values["OriginalBatteryPassportId"]["value"] == CORE
    assert values["RatedCapacity"]["value"] == "45.8"
    for withheld in (
        "StateOfHealth",
        "CapacityStateOfHealth",
        "InternalResistance",
        "RemainingCapacity",
        "InternalResistanceIncreaseOfBatteryModuleLevel",
    ):
        assert withheld not in values
    shown = httpx.get(_url(battery_gateway)).json()
    assert shown["tier"] == "public" and "inspections" not in shown
    assert "state_of_health_pct" not in shown["battery"]
    assert "93.0" not in resp.text and "erin" not in resp.text


def test_a_revoked_token_is_refused_not_served_the_public_tier(battery_gateway):
    text = tokens.create(battery_gateway.store, "old-erp", "read")
    headers = {"Authorization": f"Bearer {text}"}
    assert httpx.get(_url(battery_gateway), headers=headers).status_code == 200
    assert tokens.revoke(battery_gateway.store, "old-erp")
    refused = httpx.get(_url(battery_gateway, format="aas"), headers=headers)
    assert refused.status_code == 401 and "StateOfHealth" not in refused.text


def test_a_read_token_may_not_ask_for_the_authority_tier_but_an_admin_may(battery_gateway):
    text = tokens.create(battery_gateway.store, "qdb", "read")
    headers = {"Authorization": f"Bearer {text}"}
    assert httpx.get(_url(battery_gateway, tier="authority"), headers=headers).status_code == 403
    admin = tokens.create(battery_gateway.store, "auditor", "admin")
    shown = httpx.get(_url(battery_gateway), headers={"Authorization": f"Bearer {admin}"}).json()
    assert shown["tier"] == "authority"
    [override] = shown["inspections"][0]["overrides"]
    assert (override["user"], override["reason"]) == ("erin", "one cell group replaced")
    account = login(battery_gateway.url, "olly").get(_url(battery_gateway)).json()
    assert account["tier"] == "legitimate_interest" and account["battery"]["resistance_soh_pct"]
