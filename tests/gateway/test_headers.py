"""Over real HTTP: the API docs need a login, every response forbids framing and sniffing, and
cookies are Secure on requests that came over HTTPS (through a trusted proxy)."""

from __future__ import annotations

import httpx
import pytest

from gateway.server import Gateway
from tests.gateway.conftest import PASSWORDS, csrf_of, login, make_config

SECURITY = {
    "x-frame-options": "DENY",
    "content-security-policy": "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


@pytest.fixture(scope="module")
def web(tmp_path_factory):
    """A gateway without MQTT that trusts the proxy on 127.0.0.1 (where the tests connect from)."""
    config = make_config(tmp_path_factory.mktemp("headers"))
    http = config.http.model_copy(update={"trusted_proxies": ["127.0.0.1"]})
    with Gateway(config.model_copy(update={"http": http}), mqtt=False) as gw:
        yield gw


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_the_api_docs_pages_send_a_stranger_to_the_login(web, path):
    resp = httpx.get(f"{web.url}{path}")
    assert resp.status_code == 303 and resp.headers["location"] == f"/login?next={path}"


def test_the_openapi_document_needs_a_login(web):
    assert httpx.get(f"{web.url}/openapi.json").status_code == 401


def test_any_logged_in_role_reads_the_api_docs(web):
    olly = login(web.url, "olly")  # operator, the least role
    assert "/api/inspections" in olly.get("/openapi.json").json()["paths"]
    docs = olly.get("/docs").text
    assert "swagger-ui" in docs and "cdn" not in docs  # served offline (test_api_docs.py)
    assert "/docs/assets/swagger-ui-bundle.js" in docs
    redoc = olly.get("/redoc")
    assert redoc.status_code == 308 and redoc.headers["location"] == "/docs"


def test_the_docs_assets_are_the_two_swagger_files_only(web):
    olly = login(web.url, "olly")
    script = olly.get("/docs/assets/swagger-ui-bundle.js")
    assert script.status_code == 200 and "SwaggerUIBundle" in script.text
    assert script.headers["content-type"].startswith("application/javascript")
    assert olly.get("/docs/assets/swagger-ui.css").headers["content-type"].startswith("text/css")
    for name in ("__init__.py", "favicon-32x32.png", "..%2F__init__.py", "nothing.js"):
        assert olly.get(f"/docs/assets/{name}").status_code == 404, name
    stranger = httpx.get(f"{web.url}/docs/assets/swagger-ui.css")
    assert stranger.status_code == 303


def test_the_icon_is_served_to_anyone(web):
    for path in ("/favicon.ico", "/static/favicon.svg"):
        resp = httpx.get(f"{web.url}{path}")
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("image/svg")
        assert resp.text.startswith("<svg")


@pytest.mark.parametrize(
    "path,status",
    [
        ("/login", 200),
        ("/", 303),
        ("/healthz", 200),
        ("/metrics", 200),
        ("/api/inspections", 401),
        ("/openapi.json", 401),
        ("/static/vendor/htmx.min.js", 200),
        ("/nowhere", 404),
    ],
)
def test_every_response_forbids_framing_sniffing_and_referrers(web, path, status):
    resp = httpx.get(f"{web.url}{path}")
    assert resp.status_code == status
    assert {k: resp.headers.get(k) for k in SECURITY} == SECURITY


def _login_cookie(base_url: str, headers: dict[str, str]) -> str:
    """The Set-Cookie header of a successful login sent with `headers`."""
    form = httpx.get(f"{base_url}/login", headers=headers)
    # sent by hand: httpx, like a browser, keeps a Secure cookie off this plain-HTTP hop
    cookie = {"Cookie": f"reman_session={form.cookies['reman_session']}"}
    resp = httpx.post(
        f"{base_url}/login",
        data={"username": "erin", "password": PASSWORDS["erin"], "csrf_token": csrf_of(form.text)},
        headers={**headers, **cookie},
    )
    assert resp.status_code == 303
    return resp.headers["set-cookie"]


def test_cookies_are_secure_when_the_proxy_says_https(web):
    over_https = _login_cookie(web.url, {"X-Forwarded-Proto": "https"})
    assert over_https.startswith("reman_session=") and "; secure" in over_https.lower()
    over_http = _login_cookie(web.url, {})
    assert "secure" not in over_http.lower()


def test_an_untrusted_client_cannot_claim_https_but_secure_cookies_forces_it(tmp_path):
    config = make_config(tmp_path)  # no trusted proxies
    with Gateway(config, mqtt=False) as gw:
        assert "secure" not in _login_cookie(gw.url, {"X-Forwarded-Proto": "https"}).lower()
    forced = config.model_copy(
        update={"http": config.http.model_copy(update={"secure_cookies": True})}
    )
    with Gateway(forced, mqtt=False) as gw:
        assert "; secure" in _login_cookie(gw.url, {}).lower()
