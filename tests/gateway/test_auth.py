"""Accounts: login, wrong password, roles, CSRF, kiosk, adduser; the override round trip."""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import pytest
from click.testing import CliRunner

from gateway import Gateway
from gateway.accounts import add_user
from gateway.auth import LoginThrottle, verify_password
from gateway.config import load_gateway
from reman.cli import cli
from tests.gateway.conftest import PASSWORDS, csrf_of, login, make_config
from tests.gateway.records import overridden, record


def test_pages_redirect_to_login(gateway):
    resp = httpx.get(f"{gateway.url}/history")
    assert resp.status_code == 303 and resp.headers["location"] == "/login?next=/history"


def test_login_and_logout(gateway):
    client = login(gateway.url, "erin")
    page = client.get("/")
    assert page.status_code == 200 and "erin · engineer" in page.text
    client.post("/logout", data={"csrf_token": csrf_of(page.text)})
    assert client.get("/", follow_redirects=False).status_code == 303


def _with_cookie(base_url: str, cookie: str) -> httpx.Client:
    """A fresh client that presents a saved session cookie."""
    return httpx.Client(base_url=base_url, cookies={"reman_session": cookie}, timeout=10)


def test_a_saved_cookie_stops_working_at_logout(gateway):
    client = login(gateway.url, "erin")
    saved = client.cookies["reman_session"]
    assert _with_cookie(gateway.url, saved).get("/").status_code == 200
    client.post("/logout", data={"csrf_token": csrf_of(client.get("/").text)})
    replay = _with_cookie(gateway.url, saved)
    resp = replay.get("/history", follow_redirects=False)
    assert resp.status_code == 303 and resp.headers["location"] == "/login?next=/history"
    assert replay.get("/api/stations").status_code == 401


def _adduser(path, name: str, role: str, password: str, tmp_path) -> None:
    (tmp_path / "pw").write_text(password + "\n")
    result = CliRunner().invoke(
        cli,
        ["gateway", "adduser", "--config", str(path), name, "--role", role]
        + ["--password-file", str(tmp_path / "pw")],
    )
    assert result.exit_code == 0, result.output


def _login_as(gw: Gateway, user: str, password: str) -> str:
    """Log in and return the session cookie."""
    client = httpx.Client(base_url=gw.url)
    assert _try_login(client, user, password).status_code == 303
    return client.cookies["reman_session"]


@pytest.mark.parametrize(
    "change",
    [("engineer", "kim-new-password"), ("operator", "kim-password")],
    ids=["password", "role"],
)
def test_a_changed_password_or_role_ends_the_sessions_before_it(tmp_path, change):
    path = tmp_path / "gateway.yaml"
    path.write_text(
        f"http:\n  port: 0\n  session_secret: test-secret-{'y' * 20}\n"
        f"store:\n  path: {tmp_path / 'gateway.db'}\n  snapshots_dir: {tmp_path / 'snaps'}\n"
    )
    _adduser(path, "kim", "engineer", "kim-password", tmp_path)
    with Gateway(load_gateway(path), mqtt=False) as gw:
        saved = _login_as(gw, "kim", "kim-password")
    with Gateway(load_gateway(path), mqtt=False) as gw:  # a restart alone keeps the login
        assert _with_cookie(gw.url, saved).get("/").status_code == 200
    _adduser(path, "kim", *change, tmp_path)
    with Gateway(load_gateway(path), mqtt=False) as gw:
        replay = _with_cookie(gw.url, saved)
        assert replay.get("/", follow_redirects=False).status_code == 303
        assert replay.get("/api/stations").status_code == 401
        fresh = _with_cookie(gw.url, _login_as(gw, "kim", change[1]))
        assert f"kim · {change[0]}" in fresh.get("/").text


def test_wrong_password_is_refused(gateway):
    client = httpx.Client(base_url=gateway.url)
    token = csrf_of(client.get("/login").text)
    resp = client.post("/login", data={"username": "erin", "password": "nope", "csrf_token": token})
    assert resp.status_code == 401 and "Wrong user name or password" in resp.text
    assert client.get("/", follow_redirects=False).status_code == 303


def _try_login(client: httpx.Client, user: str, password: str) -> httpx.Response:
    token = csrf_of(client.get("/login").text)
    return client.post("/login", data={"username": user, "password": password, "csrf_token": token})


def test_repeated_wrong_passwords_make_that_user_wait(tmp_path):
    config = make_config(tmp_path)
    config = config.model_copy(
        update={
            "http": config.http.model_copy(update={"login_max_failures": 3, "login_lockout_s": 2})
        }
    )
    with Gateway(config, mqtt=False) as gw:
        client = httpx.Client(base_url=gw.url)
        for _ in range(3):
            assert _try_login(client, "erin", "guess").status_code == 401
        refused = _try_login(client, "erin", PASSWORDS["erin"])  # even the right password waits
        assert refused.status_code == 429 and "Too many failed logins" in refused.text
        assert 1 <= int(refused.headers["retry-after"]) <= 2
        assert client.get("/", follow_redirects=False).status_code == 303  # not logged in
        assert _try_login(client, "olly", PASSWORDS["olly"]).status_code == 303  # others may
        time.sleep(float(refused.headers["retry-after"]) + 0.2)
        assert (
            _try_login(httpx.Client(base_url=gw.url), "erin", PASSWORDS["erin"]).status_code == 303
        )


def test_a_successful_login_clears_the_failures(tmp_path):
    config = make_config(tmp_path)
    config = config.model_copy(
        update={"http": config.http.model_copy(update={"login_max_failures": 2})}
    )
    with Gateway(config, mqtt=False) as gw:
        client = httpx.Client(base_url=gw.url)
        assert _try_login(client, "erin", "guess").status_code == 401
        assert _try_login(client, "erin", PASSWORDS["erin"]).status_code == 303
        other = httpx.Client(base_url=gw.url)
        assert _try_login(other, "erin", "guess").status_code == 401
        assert _try_login(other, "erin", PASSWORDS["erin"]).status_code == 303


def _throttled_gateway(tmp_path, **http) -> Gateway:
    config = make_config(tmp_path)
    update = {"login_max_failures": 2, **http}
    return Gateway(
        config.model_copy(update={"http": config.http.model_copy(update=update)}), mqtt=False
    )


def _login_from(client: httpx.Client, user: str, password: str, forwarded_for: str):
    token = csrf_of(client.get("/login").text)
    return client.post(
        "/login",
        data={"username": user, "password": password, "csrf_token": token},
        headers={"X-Forwarded-For": forwarded_for},
    )


def test_x_forwarded_for_does_not_dodge_the_throttle_without_a_trusted_proxy(tmp_path):
    with _throttled_gateway(tmp_path) as gw:
        client = httpx.Client(base_url=gw.url)
        for n in range(4):  # a new made-up address for every guess
            _login_from(client, "erin", "guess", f"10.9.8.{n}")
        resp = _login_from(client, "erin", PASSWORDS["erin"], "10.9.8.7")
        assert resp.status_code == 429
        assert client.get("/", follow_redirects=False).status_code == 303


def test_a_trusted_proxys_x_forwarded_for_is_the_client(tmp_path, caplog):
    with _throttled_gateway(tmp_path, trusted_proxies=["127.0.0.1"]) as gw:
        client = httpx.Client(base_url=gw.url)
        for _ in range(2):
            assert _login_from(client, "erin", "guess", "10.9.8.7").status_code == 401
        assert _login_from(client, "erin", PASSWORDS["erin"], "10.9.8.7").status_code == 429
        other = httpx.Client(base_url=gw.url)
        assert _login_from(other, "erin", PASSWORDS["erin"], "10.9.8.8").status_code == 303
    assert "failed login for 'erin' from 10.9.8.7" in caplog.text


def test_the_throttle_forgets_the_oldest_pairs_first(monkeypatch):
    now = [0.0]
    throttle = LoginThrottle(1, 60, clock=lambda: now[0])
    monkeypatch.setattr(LoginThrottle, "MAX_KEYS", 2)
    for name in ("a", "b", "c"):
        throttle.failed("10.0.0.1", name)
        now[0] += 1
    assert throttle.retry_after("10.0.0.1", "a") == 0  # forgotten: the table stays bounded
    assert throttle.retry_after("10.0.0.1", "b") == 58
    assert throttle.retry_after("10.0.0.2", "c") == 0
    now[0] = 62
    assert throttle.retry_after("10.0.0.1", "c") == 0


def test_post_without_csrf_token_is_403(gateway):
    client = httpx.Client(base_url=gateway.url)
    client.get("/login")
    resp = client.post("/login", data={"username": "erin", "password": PASSWORDS["erin"]})
    assert resp.status_code == 403
    erin = login(gateway.url, "erin")
    assert erin.post("/inspections/x/override", data={"code": 3, "reason": "r"}).status_code == 403
    assert (
        erin.post(
            "/inspections/x/override", data={"code": 3, "reason": "r", "csrf_token": "forged"}
        ).status_code
        == 403
    )


def _seed(gateway, watcher, station_factory, station="st-auth"):
    rec = record(station=station, core_id="C5001", code=1)
    station_factory(station).inspection(rec)
    watcher.until(lambda: gateway.store.get(rec.id))
    return rec


def test_operator_is_refused_an_override(gateway, watcher, station_factory):
    rec = _seed(gateway, watcher, station_factory)
    olly = login(gateway.url, "olly")
    page = olly.get(f"/inspections/{rec.id}").text
    assert "override-form" not in page
    resp = olly.post(
        f"/inspections/{rec.id}/override",
        data={"code": 3, "reason": "looks bad", "csrf_token": csrf_of(page)},
    )
    assert resp.status_code == 403
    resp = olly.post(f"/inspections/{rec.id}/confirm", data={"csrf_token": csrf_of(page)})
    assert resp.status_code == 303
    assert [a["action"] for a in gateway.store.audit(rec.id)] == ["confirmed"]


class Responder:
    """Test-side stand-in for the node's override handling (until the node exists in this test):
    takes `override/set`, republishes the record with `override` set."""

    def __init__(self, station, records):
        self.station, self.records = station, {r.id: r for r in records}
        self.commands: list[dict] = []
        self.done = threading.Event()
        station.client.message_callback_add(station.topics.override_set, self._on_override)
        station.client.subscribe(station.topics.override_set, qos=1)

    def _on_override(self, client, userdata, msg):
        cmd = json.loads(msg.payload)
        self.commands.append(cmd)
        rec = overridden(
            self.records[cmd["id"]], cmd["code"], user=cmd["user"], reason=cmd["reason"]
        )
        client.publish(self.station.topics.inspection, rec.to_json(), qos=1)
        self.done.set()


def test_override_round_trip(gateway, watcher, station_factory, listener_factory, mosquitto):
    station = station_factory("st-ovr")
    rec = record(station="st-ovr", core_id="C6001", code=1)
    responder = Responder(station, [rec])
    station.inspection(rec)
    watcher.until(lambda: gateway.store.get(rec.id))
    erin = login(gateway.url, "erin")
    page = erin.get(f"/inspections/{rec.id}").text
    resp = erin.post(
        f"/inspections/{rec.id}/override",
        data={"code": 3, "reason": "flange cracked", "csrf_token": csrf_of(page)},
    )
    assert resp.status_code == 303
    assert responder.done.wait(10)
    command = dict(responder.commands[0])
    assert re.fullmatch(r"[0-9a-f]{32}", command.pop("command_id"))  # unique per command
    assert len(responder.commands) == 1
    assert command == {"id": rec.id, "code": 3, "reason": "flange cracked", "user": "erin"}
    watcher.until(lambda: (gateway.store.get(rec.id) or {}).get("overridden"))
    detail = erin.get(f"/inspections/{rec.id}").text
    assert "Overridden by erin" in detail and "flange cracked" in detail
    actions = [a["action"] for a in gateway.store.audit(rec.id)]
    assert sorted(actions) == ["override", "override_requested"]


def test_kiosk_needs_no_login_and_is_read_only(gateway):
    resp = httpx.get(f"{gateway.url}/kiosk/st-1")
    assert (
        resp.status_code == 200 and "override-form" not in resp.text and "Log out" not in resp.text
    )


def test_adduser_keeps_comments_and_the_user_can_log_in(tmp_path):
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "# plant 4 dashboard\nhttp:\n  port: 8080  # behind nginx\n\nusers: []\n\n# screens\nkiosk:\n  enabled: true\n"
    )
    (tmp_path / "pw").write_text("correct horse\n")
    result = CliRunner().invoke(
        cli,
        [
            "gateway",
            "adduser",
            "--config",
            str(path),
            "kim",
            "--role",
            "engineer",
            "--password-file",
            str(tmp_path / "pw"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert add_user(path, "lee", "operator", "battery staple") is True
    text = path.read_text()
    assert "# plant 4 dashboard" in text and "# behind nginx" in text and "# screens" in text
    config = load_gateway(path)
    assert [(u.username, u.role) for u in config.users] == [
        ("kim", "engineer"),
        ("lee", "operator"),
    ]
    assert verify_password(config.users[0].password_hash, "correct horse")
    assert add_user(path, "kim", "admin", "new one") is False
    assert load_gateway(path).users[0].role == "admin"


def test_adduser_prompts_for_the_password(tmp_path):
    path = tmp_path / "gateway.yaml"
    result = CliRunner().invoke(
        cli, ["gateway", "adduser", "--config", str(path), "pat"], input="pw1\npw1\n"
    )
    assert result.exit_code == 0, result.output
    assert verify_password(load_gateway(path).users[0].password_hash, "pw1")


@pytest.mark.parametrize("name", ["bad name", ""])
def test_adduser_refuses_a_bad_name(tmp_path, name):
    (tmp_path / "pw").write_text("x\n")
    result = CliRunner().invoke(
        cli,
        [
            "gateway",
            "adduser",
            "--config",
            str(tmp_path / "g.yaml"),
            name,
            "--password-file",
            str(tmp_path / "pw"),
        ],
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
