"""API tokens for machine clients, over HTTP against a real gateway and mosquitto: made, listed
and revoked with `reman gateway token`, sent as `Authorization: Bearer`, scoped, audited."""

from __future__ import annotations

import json
import queue
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from edge.contract.timefmt import ago_ts
from gateway import tokens
from gateway.api_models import (
    Circularity,
    EventPage,
    InspectionDetail,
    InspectionPage,
    StationState,
    Trends,
)
from reman.cli import cli
from tests.gateway.conftest import csrf_of, login
from tests.gateway.records import record


@pytest.fixture(scope="module")
def config_file(web, tmp_path_factory) -> Path:
    """A gateway config naming the running gateway's store, for the CLI."""
    gw, _ = web
    path = tmp_path_factory.mktemp("tokens") / "gateway.yaml"
    path.write_text(json.dumps({"store": gw.config.store.model_dump()}))  # JSON is YAML
    return path


def _reman(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def _create(config_file: Path, name: str, scope: str, *extra: str) -> str:
    code, out, err = _reman(
        "gateway", "token", "create", "--config", str(config_file), name, "--scope", scope, *extra
    )
    assert code == 0, err
    assert "not shown again" in err
    return out.strip()


def _bearer(text: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {text}"}


@pytest.fixture
def inspected(web, station_factory):
    """A stored inspection of a test station that records each override/set it is sent."""
    gw, watcher = web
    station = station_factory("st-token")
    sent: queue.Queue = queue.Queue()
    topic = station.topics.override_set
    station.client.message_callback_add(topic, lambda c, u, m: sent.put(json.loads(m.payload)))
    station.client.subscribe(topic, qos=1)
    rec = record(station="st-token", core_id="C7001", code=2)
    station.inspection(rec)
    watcher.until(lambda: gw.store.get(rec.id, "st-token"))
    return rec, sent


def test_a_read_token_reads_the_api_but_cannot_override(web, config_file, inspected):
    gw, _ = web
    rec, sent = inspected
    text = _create(config_file, "mes-read", "read")
    assert text.startswith("rmn_")
    api = httpx.Client(base_url=gw.url, headers=_bearer(text), timeout=10)
    page = api.get("/api/inspections?station=st-token")
    assert page.status_code == 200
    assert [r.id for r in InspectionPage.model_validate(page.json()).items] == [rec.id]
    detail = api.get(f"/api/inspections/st-token/{rec.id}")
    assert InspectionDetail.model_validate(detail.json()).record.core_id == "C7001"
    for url, model in (
        ("/api/stations", None),
        ("/api/events", EventPage),
        ("/api/trends", Trends),
        ("/api/circularity", Circularity),
    ):
        resp = api.get(url)
        assert resp.status_code == 200, (url, resp.text)
        if model is None:
            [StationState.model_validate(s) for s in resp.json()]
        else:
            model.model_validate(resp.json())
    refused = api.post(
        f"/api/inspections/st-token/{rec.id}/override", json={"code": 3, "reason": "cracked"}
    )
    assert refused.status_code == 403 and "may not override" in refused.json()["detail"]
    assert api.post(f"/api/inspections/st-token/{rec.id}/confirm").status_code == 403
    assert sent.empty()
    assert gw.store.audit(rec.id, "st-token") == []


def test_an_override_token_overrides_and_confirms_in_the_audit_trail(web, config_file, inspected):
    gw, _ = web
    rec, sent = inspected
    api = httpx.Client(
        base_url=gw.url, headers=_bearer(_create(config_file, "erp", "override")), timeout=10
    )
    resp = api.post(
        f"/api/inspections/st-token/{rec.id}/override", json={"code": 3, "reason": "flange cracked"}
    )
    assert resp.status_code == 202, resp.text
    answer = resp.json()
    command = sent.get(timeout=10)
    assert command["command_id"] == answer["command_id"]
    assert {k: command[k] for k in ("id", "code", "reason", "user")} == {
        "id": rec.id,
        "code": 3,
        "reason": "flange cracked",
        "user": "token:erp",
    }
    assert api.post(f"/api/inspections/st-token/{rec.id}/confirm").json()["confirmed"] is True
    audit = [(a["user"], a["action"]) for a in gw.store.audit(rec.id, "st-token")]
    assert audit == [("token:erp", "override_requested"), ("token:erp", "confirmed")]
    for body in ({"code": True, "reason": "r"}, {"code": 9, "reason": "r"}, {"code": 3}):
        bad = api.post(f"/api/inspections/st-token/{rec.id}/override", json=body)
        assert bad.status_code == 422, body
    assert api.post("/api/inspections/st-token/NOPE/confirm").status_code == 404
    assert sent.empty()


def test_a_revoked_an_expired_or_a_forged_token_gets_401(web, config_file):
    gw, _ = web
    text = _create(config_file, "qdb", "read")
    assert httpx.get(f"{gw.url}/api/stations", headers=_bearer(text)).status_code == 200
    code, out, _ = _reman("gateway", "token", "revoke", "--config", str(config_file), "qdb")
    assert code == 0 and "revoked token qdb" in out
    revoked = httpx.get(f"{gw.url}/api/stations", headers=_bearer(text))
    assert revoked.status_code == 401
    assert revoked.headers["www-authenticate"].startswith("Bearer")
    assert revoked.json() == {"detail": "invalid, expired or revoked API token"}
    expired = tokens.create(gw.store, "old", "read", ago_ts(seconds=1))
    assert httpx.get(f"{gw.url}/api/stations", headers=_bearer(expired)).status_code == 401
    forged = text[:-4] + ("AAAA" if not text.endswith("AAAA") else "BBBB")
    for header in (f"Bearer {forged}", "Bearer nonsense", f"Basic {text}", "Bearer"):
        resp = httpx.get(f"{gw.url}/api/stations", headers={"Authorization": header})
        assert resp.status_code == 401, header
    code, out, _ = _reman("gateway", "token", "list", "--config", str(config_file))
    assert code == 0 and "qdb\tread" in out and "revoked" in out and "rmn_" not in out
    code, _, err = _reman("gateway", "token", "revoke", "--config", str(config_file), "qdb")
    assert code == 1 and "no active token named 'qdb'" in err


def test_a_token_opens_no_page_and_a_login_still_needs_its_csrf_token(web, config_file, inspected):
    gw, _ = web
    rec, sent = inspected
    text = _create(config_file, "mes-admin", "admin")
    page = httpx.get(f"{gw.url}/history", headers=_bearer(text))
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    erin = login(gw.url, "erin")
    url = f"/api/inspections/st-token/{rec.id}/override"
    assert erin.post(url, json={"code": 1, "reason": "r"}).status_code == 403
    token = csrf_of(erin.get(f"/inspections/st-token/{rec.id}").text)
    resp = erin.post(url, json={"code": 1, "reason": "looks fine"}, headers={"X-CSRF-Token": token})
    assert resp.status_code == 202
    assert sent.get(timeout=10)["user"] == "erin"


def test_the_openapi_document_declares_the_token_and_typed_responses(web, config_file):
    gw, _ = web
    text = _create(config_file, "docs", "read")
    doc = httpx.get(f"{gw.url}/openapi.json", headers=_bearer(text))
    assert doc.status_code == 401  # tokens are for /api/; the docs need a login
    doc = login(gw.url, "erin").get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"
    listing = doc["paths"]["/api/inspections"]["get"]
    assert listing["security"] == [{"apiToken": []}, {"session": []}]
    schema = listing["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/InspectionPage"}
    override = doc["paths"]["/api/inspections/{station}/{inspection_id}/override"]["post"]
    assert "202" in override["responses"]
    assert {"InspectionRecord", "InspectionDetail", "StationState", "EventPage"} <= set(
        doc["components"]["schemas"]
    )


def test_token_names_scopes_and_expiry_are_checked(config_file):
    for args, why in (
        (["bad name", "--scope", "read"], "use 1 to 64"),
        (["x1", "--scope", "read", "--expires", "yesterday"], "give 90d, 12h"),
        (["x2", "--scope", "read", "--expires", "2020-01-01"], "that time has passed"),
    ):
        code, _, err = _reman("gateway", "token", "create", "--config", str(config_file), *args)
        assert code == 1 and why in err and "Traceback" not in err, (args, err)
    _create(config_file, "twice", "read")
    code, _, err = _reman(
        "gateway", "token", "create", "--config", str(config_file), "twice", "--scope", "read"
    )
    assert code == 1 and "exists; revoke it first" in err
