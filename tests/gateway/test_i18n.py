"""The dashboard in English, Dutch and German: complete catalogues, the browser's language as the
default, a language per user in the config, and a choice on the page that lasts the session.

Browser pages are read in headless Chromium over a gateway fed by a real mosquitto."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from babel.messages.pofile import read_po
from playwright.sync_api import Page, expect

from gateway import i18n
from gateway.server import Gateway
from tests.gateway.conftest import PASSWORDS, WriteWatcher, make_config
from tests.gateway.records import record
from tests.support.browser import chromium, log_in, shot

PLACEHOLDER = re.compile(r"%\([a-z_]+\)s|\{[a-z_]+(?:![rs])?\}")


def test_every_message_has_a_translation_in_every_catalogue():
    """Extract from the templates and modules: each msgid has a non-fuzzy, non-empty msgstr."""
    template = i18n.extract()
    assert len([m for m in template if m.id]) > 150
    gaps = i18n.missing(template)
    assert gaps == {"nl": [], "de": []}, "run `python -m gateway.i18n extract` and translate"


@pytest.mark.parametrize("language", ["nl", "de"])
def test_translations_keep_every_placeholder(language):
    """A translation names the same fields as its English text, so no page loses a value."""
    with i18n.po_path(language).open("rb") as f:
        catalog = read_po(f, locale=language)
    for m in catalog:
        if not m.id:
            continue
        ids = m.id if isinstance(m.id, tuple) else (m.id,)
        strings = m.string if isinstance(m.string, tuple) else (m.string,)
        expected = sorted(PLACEHOLDER.findall(ids[-1]))
        for s in strings:
            assert sorted(PLACEHOLDER.findall(s)) == expected, (m.id, s)


def test_the_completeness_check_sees_an_untranslated_and_a_fuzzy_message(tmp_path):
    template = i18n.extract()
    i18n.update(template, tmp_path)  # fresh catalogues: nothing translated
    gaps = i18n.missing(template, tmp_path)
    assert "Stations" in gaps["nl"] and "Stations" in gaps["de"]
    po = i18n.po_path("de", tmp_path)
    with po.open("rb") as f:
        catalog = read_po(f, locale="de")
    for m in catalog:
        if m.id and not isinstance(m.id, tuple):
            m.string = "x"
            m.flags.add("fuzzy") if m.id == "Stations" else None
    from babel.messages.pofile import write_po

    with po.open("wb") as f:
        write_po(f, catalog)
    assert "Stations" in i18n.missing(template, tmp_path)["de"]


def test_catalogues_compile_in_memory():
    catalogues = i18n.Catalogues.load()
    assert catalogues.get("nl").gettext("REUSE") == "Hergebruik"
    assert catalogues.get("de").gettext("REVIEW") == "Prüfen"
    assert (
        catalogues.get("de").ngettext("%(count)s core", "%(count)s cores", 2) == "%(count)s Kerne"
    )
    assert catalogues.get("fr").gettext("REUSE") == "REUSE"
    assert not list(i18n.LOCALE_DIR.rglob("*.mo")), "catalogues are compiled at start, not kept"


@pytest.mark.parametrize(
    ("header", "language"),
    [
        ("de-DE,de;q=0.9,en;q=0.8", "de"),
        ("nl-NL", "nl"),
        ("fr-FR,nl;q=0.5,de;q=0.4", "nl"),
        ("fr-FR", "en"),
        ("de;q=0.3,nl;q=0.7", "nl"),
        (None, "en"),
    ],
)
def test_the_browsers_language_is_the_default(header, language):
    assert i18n.choose_language(None, None, header) == language


def test_a_choice_on_the_page_beats_the_users_language_which_beats_the_browsers():
    assert i18n.choose_language("nl", "de", "en") == "nl"
    assert i18n.choose_language(None, "de", "nl") == "de"
    assert i18n.choose_language("xx", None, "de") == "de"


@pytest.fixture(scope="module")
def web(tmp_path_factory, mosquitto):
    """A gateway whose operator olly has German set in the config."""
    config = make_config(tmp_path_factory.mktemp("i18n"), mosquitto)
    users = [
        u.model_copy(update={"language": "de"}) if u.username == "olly" else u for u in config.users
    ]
    gw = Gateway(config.model_copy(update={"users": users})).start()
    assert gw.ingest is not None and gw.ingest.wait_connected(10)
    yield gw, WriteWatcher(gw)
    gw.stop()


@pytest.mark.parametrize(
    ("accept", "title", "button"),
    [
        ("nl-BE,nl;q=0.9", "Inloggen", "Inloggen"),
        ("de-AT", "Anmelden", "Anmelden"),
        ("en-GB", "Log in", "Log in"),
    ],
)
def test_the_login_page_follows_accept_language(web, accept, title, button):
    gw, _ = web
    html = httpx.get(f"{gw.url}/login", headers={"Accept-Language": accept}).text
    assert f"<h1>{title}</h1>" in html and f'<button type="submit">{button}</button>' in html
    assert f'<html lang="{accept[:2]}">' in html


def test_a_users_configured_language_and_a_translated_error(web):
    gw, _ = web
    client = httpx.Client(base_url=gw.url, timeout=10, headers={"Accept-Language": "nl"})
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token
    resp = client.post(
        "/login",
        data={"username": "olly", "password": PASSWORDS["olly"], "csrf_token": token.group(1)},
    )
    assert resp.status_code == 303
    page = client.get("/")
    assert "<h1>Stationen</h1>" in page.text  # the config's German beats the browser's Dutch
    missing = client.get("/inspections/st-none/NOPE", headers={"Accept": "text/html"})
    assert missing.status_code == 404 and "keine Prüfung NOPE" in missing.text
    forbidden = client.get("/events", headers={"Accept": "text/html"})
    assert forbidden.status_code == 403
    assert "Ihre Rolle (operator) darf das nicht: events" in forbidden.text
    api = client.get("/api/inspections/st-none/NOPE")
    assert api.json() == {"detail": "no inspection NOPE"}  # the API stays English


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser, web) -> Page:
    """erin (no language set) in a browser that asks for English."""
    gw, _ = web
    context = browser.new_context(
        base_url=gw.url, viewport={"width": 1440, "height": 900}, locale="en-US"
    )
    pg = log_in(context.new_page(), "erin", PASSWORDS["erin"])
    yield pg
    context.close()


def _rfc3339(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _choose(page: Page, language: str) -> None:
    with page.expect_navigation():
        page.select_option("#language", language)
    expect(page.locator("html")).to_have_attribute("lang", language)


@pytest.mark.browser
@pytest.mark.expect_errors(r"/NOPE: Failed to load resource: .* 404")  # the translated 404 page
def test_a_user_switches_to_dutch_and_to_german(page, web, station_factory):
    gw, watcher = web
    st = station_factory("st-i18n")
    st.publish("available", b"online", retain=True)
    now = datetime.now(timezone.utc).replace(microsecond=0)
    rec = record(
        station="st-i18n", core_id="C8801", code=1, ts=_rfc3339(now - timedelta(minutes=2))
    )
    review = record(
        station="st-i18n", core_id="C8802", code=4, ts=_rfc3339(now - timedelta(minutes=1))
    )
    for r in (rec, review):
        st.inspection(r)
    watcher.until(lambda: gw.store.get(rec.id) and gw.store.get(review.id))
    page.goto("/")
    expect(page.locator("h1")).to_have_text("Stations")
    tile = page.locator("[data-station=st-i18n]")

    _choose(page, "nl")
    expect(page.locator("header nav")).to_contain_text("Historie")
    expect(tile).to_contain_text("Beoordelen")
    expect(tile.locator("[data-figure=cores]")).to_have_text("2 kernen")
    expect(tile.locator("[data-figure=rates]")).to_contain_text(
        "hergebruik 100,0 % · reviseren 0,0 % van 1 besliste kern, Beoordelen niet meegeteld"
    )
    shot(page, "stations-nl")
    page.goto("/history?station=st-i18n")
    expect(page.locator("h1")).to_have_text("Historie")
    expect(page.locator("#count")).to_have_text("2 inspecties")
    expect(page.locator(f"#history tr[data-id='{rec.id}']")).to_contain_text("Hergebruik")
    # a known reason's meaning in the reader's language, then the node's words with the figures
    expect(page.locator(f"#history tr[data-id='{review.id}']")).to_contain_text(
        "Een meting ontbreekt (leak_rate_ml_min missing from the bench)"
    )
    expect(page.locator("#filters")).to_contain_text("Beslissing")
    page.goto(f"/inspections/st-i18n/{rec.id}")
    expect(page.locator("#decision .label")).to_have_text("Hergebruik")
    expect(page.get_by_role("heading", name="Logboek")).to_be_visible()
    expect(page.locator("#override-form")).to_contain_text("Nieuwe beslissing")
    shot(page, "detail-nl")
    page.goto("/inspections/st-i18n/NOPE")
    expect(page.locator("p.error")).to_have_text("geen inspectie NOPE")
    expect(page.locator("main")).to_contain_text("Terug naar de stations")

    _choose(page, "de")
    expect(page.locator("p.error")).to_have_text("keine Prüfung NOPE")
    page.goto("/")
    expect(page.locator("h1")).to_have_text("Stationen")
    expect(tile).to_contain_text("Prüfen")
    page.goto("/history?station=st-i18n")
    expect(page.locator("h1")).to_have_text("Verlauf")
    expect(page.locator("#count")).to_have_text("2 Prüfungen")
    expect(page.locator(f"#history tr[data-id='{rec.id}']")).to_contain_text("Wiederverwenden")
    page.goto(f"/inspections/st-i18n/{rec.id}")
    expect(page.locator("#decision .label")).to_have_text("Wiederverwenden")
    expect(page.get_by_role("heading", name="Prüfprotokoll")).to_be_visible()
    expect(page.locator("#override-form option[value='3']")).to_have_text("Recyceln")
    shot(page, "detail-de")
    page.goto("/live/st-i18n")
    expect(page.locator("#latest-label")).to_have_text("Prüfen")
    expect(page.locator("#live-panel h2").first).to_have_text("Foto")
    expect(page.locator("#reasons")).to_have_text(
        "Ein Messwert fehlt (leak_rate_ml_min missing from the bench)"
    )

    _choose(page, "en")
    expect(page.locator("#latest-label")).to_have_text("REVIEW")
    expect(page.locator("#reasons")).to_have_text("leak_rate_ml_min missing from the bench")


@pytest.mark.browser
@pytest.mark.expect_errors(r"/login: Failed to load resource: .* 401")  # the wrong password
def test_a_form_error_in_the_browsers_language(browser, web):
    gw, _ = web
    context = browser.new_context(base_url=gw.url, locale="de-DE")
    pg = context.new_page()
    pg.goto("/login")
    expect(pg.locator("h1")).to_have_text("Anmelden")
    pg.fill("input[name=username]", "erin")
    pg.fill("input[name=password]", "wrong")
    pg.click("button[type=submit]")
    expect(pg.get_by_role("alert")).to_have_text("Falscher Benutzername oder falsches Passwort.")
    context.close()


@pytest.mark.browser
def test_a_language_chosen_on_the_login_page_lasts_after_logging_in(browser, web):
    gw, _ = web
    context = browser.new_context(base_url=gw.url, locale="en-US")
    pg = context.new_page()
    pg.goto("/login")
    _choose(pg, "nl")
    pg.fill("input[name=username]", "erin")
    pg.fill("input[name=password]", PASSWORDS["erin"])
    pg.click("button[type=submit]")
    expect(pg.locator("h1")).to_have_text("Stations")
    expect(pg.locator("header nav")).to_contain_text("Meldingen")
    context.close()


def test_every_event_code_the_node_raises_has_a_display_text():
    """An event code written in edge/ as `….info("code", …)` (or warning, error) is explained
    on the Events page in each language; a new code without one fails here."""
    import re

    from gateway.i18n import EVENT_TEXT
    from tests.conftest import REPO

    # events.info("code", ...), and a link's state change: _set_state(state, "info", "code", ...)
    call = re.compile(
        r'\.(?:info|warning|error)\(\s*"([a-z][a-z0-9_]+)"'
        r'|_set_state\(\s*"[a-z]+",\s*"(?:info|warning|error)",\s*"([a-z][a-z0-9_]+)"'
    )
    raised = {
        code
        for path in (REPO / "edge").rglob("*.py")
        for found in call.findall(path.read_text(encoding="utf-8"))
        for code in found
        if code
    }
    assert len(raised) > 50  # the scan finds the node's events
    assert sorted(raised - set(EVENT_TEXT)) == []
