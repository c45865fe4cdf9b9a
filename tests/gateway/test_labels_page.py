"""Labelling a photograph on the dashboard, in headless Chromium, over a real mosquitto: the test
station answers the gateway's `frame/get` with a real FrameReply and receives `label/set`,
as the node would. Operators may only flag a core for labelling.

Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import queue
import re
import threading

import httpx
import pytest
from playwright.sync_api import Page, expect

from gateway.server import Gateway
from tests.gateway.conftest import PASSWORDS, Station, csrf_of, login
from tests.gateway.frames import CORROSION_BOX, HEIGHT, WIDTH, FrameNode, b64, decode_mask, mask_png
from tests.gateway.records import record
from tests.support.browser import shot as support_shot

pytestmark = pytest.mark.browser


@pytest.fixture
def node(web, mosquitto):
    """A test station with one stored inspection, answering frame/get like a node."""
    gw, watcher = web
    made: list[Station] = []

    def make(name: str, core_id: str):
        st = Station(mosquitto, name)
        made.append(st)
        rec = record(station=name, core_id=core_id)
        responder = FrameNode(st)
        st.inspection(rec)
        watcher.until(lambda: gw.store.get(rec.id, name))
        return responder, rec

    yield make
    for st in made:
        st.close()


def shot(pg: Page, name: str) -> None:
    support_shot(pg, f"gateway-{name}")


def _open_editor(pg: Page, rec) -> None:
    pg.goto(f"/inspections/{rec.station}/{rec.id}")
    pg.get_by_role("link", name="Label this photograph").click()
    expect(pg.locator("#label-work")).to_be_visible(timeout=15000)


def _stroke(pg: Page, points: list[tuple[int, int]]) -> None:
    """Drag the mouse through `points` (the photograph's pixels) on the editor's canvas."""
    box = pg.locator("canvas.cursor").bounding_box()
    assert box is not None

    def at(x: int, y: int) -> tuple[float, float]:
        return box["x"] + x * box["width"] / WIDTH, box["y"] + y * box["height"] / HEIGHT

    pg.mouse.move(*at(*points[0]))
    pg.mouse.down()
    for x, y in points[1:]:
        pg.mouse.move(*at(x, y), steps=8)
    pg.mouse.up()


def _label(responder: FrameNode) -> dict:
    try:
        return responder.labels.get(timeout=10)
    except queue.Empty:
        raise AssertionError("no label/set reached the station") from None


def test_engineer_paints_a_stroke_and_the_station_receives_the_mask(as_user, node):
    responder, rec = node("st-lab", "C9001")
    pg = as_user("erin")
    _open_editor(pg, rec)
    request = responder.requests.get(timeout=5)
    assert request["id"] == rec.id and request["user"] == "erin" and request["view"] == 1
    layers = pg.locator("#label-layers .label-layer")
    expect(layers.first).to_contain_text("corrosion")  # the model's mask first
    expect(layers.first).to_contain_text("from the model")
    expect(layers).to_have_count(3)  # and the other defect types a person labels
    pg.locator('#label-layers .label-layer[data-type="wear"]').click()
    pg.fill("#brush-size", "20")
    _stroke(pg, [(60, 80), (200, 80), (200, 140)])
    shot(pg, "label-editor")
    pg.click("#label-submit")
    expect(pg.locator("#label-done")).to_contain_text("Label sent to st-lab")

    label = _label(responder)
    assert label["user"] == "erin" and label["id"] == rec.id and label.get("good") is not True
    assert re.fullmatch(r"[0-9a-f]{32}", label["command_id"])
    wear = decode_mask(label["masks"]["wear"])
    assert wear.shape[:2] == (HEIGHT, WIDTH)
    painted = wear[..., 3] if wear.ndim == 3 else wear
    assert painted[80, 130] > 0 and painted[110, 200] > 0  # along the stroke
    assert painted[300, 400] == 0 and painted[20, 20] == 0  # away from it
    corrosion = decode_mask(label["masks"]["corrosion"])[..., 3]
    x0, y0, x1, y1 = CORROSION_BOX
    assert corrosion[(y0 + y1) // 2, (x0 + x1) // 2] > 0  # the model's mask, kept
    assert decode_mask(label["masks"]["coating_damage"])[..., 3].max() == 0
    assert "anomaly" not in label["masks"]  # an anomaly map is no label

    pg.goto(f"/inspections/{rec.station}/{rec.id}")
    expect(pg.locator("#audit")).to_contain_text("label sent to station")


def test_a_german_engineer_labels_in_german(as_user, node):
    responder, rec = node("st-lab-de", "C9010")
    pg = as_user("erin")
    with pg.expect_navigation():
        pg.select_option("#language", "de")
    pg.goto(f"/inspections/{rec.station}/{rec.id}")
    pg.get_by_role("link", name="Dieses Foto labeln").click()
    expect(pg.locator("#label-work")).to_be_visible(timeout=15000)
    expect(pg.locator("h1")).to_contain_text("Foto von C9010 labeln")
    expect(pg.locator(".label-tools h2").first).to_have_text("Ebenen")
    expect(pg.locator("#tool-paint")).to_have_text("Malen")
    expect(pg.locator("#label-model")).to_contain_text("Beginnt mit den Masken von Modell")
    layers = pg.locator("#label-layers .label-layer")
    expect(layers.first).to_contain_text("Korrosion")
    expect(layers.first).to_contain_text("vom Modell")
    pg.click("#label-submit")  # the model's corrosion mask is painted
    expect(pg.locator("#label-done")).to_have_text(
        "Label an st-lab-de gesendet: Korrosion. Die Station bewahrt es in ihrem Journal auf."
    )
    assert set(_label(responder)["masks"]) == {"wear", "corrosion", "coating_damage"}
    shot(pg, "label-editor-de")


def test_undo_and_erase_change_what_is_sent(as_user, node):
    responder, rec = node("st-lab-undo", "C9002")
    pg = as_user("ada")
    _open_editor(pg, rec)
    pg.locator('#label-layers .label-layer[data-type="wear"]').click()
    _stroke(pg, [(40, 40), (120, 40)])
    _stroke(pg, [(40, 200), (120, 200)])
    pg.click("#label-undo")  # the second stroke is gone
    pg.locator('#label-layers .label-layer[data-type="corrosion"]').click()
    pg.click("#tool-erase")
    pg.fill("#brush-size", "120")
    x0, y0, x1, y1 = CORROSION_BOX
    _stroke(pg, [(x0, (y0 + y1) // 2), (x1, (y0 + y1) // 2)])
    pg.click("#zoom-in")
    expect(pg.locator("#zoom-value")).not_to_have_text("100 %")
    pg.click("#label-submit")
    expect(pg.locator("#label-done")).to_contain_text("Label sent")
    label = _label(responder)
    wear = decode_mask(label["masks"]["wear"])[..., 3]
    assert wear[40, 80] > 0 and wear[200, 80] == 0
    assert decode_mask(label["masks"]["corrosion"])[..., 3].max() == 0  # erased


def test_mark_as_good_sends_a_good_label(as_user, node):
    responder, rec = node("st-lab-good", "C9003")
    pg = as_user("erin")
    _open_editor(pg, rec)
    pg.click("#label-good")
    expect(pg.locator("#label-done")).to_contain_text("good")
    label = _label(responder)
    assert label["good"] is True and not label.get("masks") and label["user"] == "erin"


def test_the_page_waits_for_the_station(as_user, node):
    responder, rec = node("st-lab-wait", "C9008")
    responder.mode = "silent"
    pg = as_user("erin")
    pg.goto(f"/inspections/{rec.station}/{rec.id}/label")
    expect(pg.locator("#label-status")).to_have_text("Waiting for the station…")
    assert responder.requests.get(timeout=10)["id"] == rec.id
    expect(pg.locator("#label-work")).to_be_hidden()


def test_touch_paints_on_a_tablet(browser, web, node):
    gw, _ = web
    responder, rec = node("st-lab-touch", "C9009")
    context = browser.new_context(
        viewport={"width": 1024, "height": 768}, base_url=gw.url, has_touch=True
    )
    pg = context.new_page()
    pg.goto("/login")
    pg.fill("input[name=username]", "erin")
    pg.fill("input[name=password]", PASSWORDS["erin"])
    pg.click("button[type=submit]")
    expect(pg.locator("header.bar .who")).to_contain_text("erin")
    pg.goto(f"/inspections/{rec.station}/{rec.id}/label")
    expect(pg.locator("#label-work")).to_be_visible(timeout=15000)
    pg.locator('#label-layers .label-layer[data-type="coating_damage"]').tap()
    canvas = pg.locator("canvas.cursor")
    # touch points are viewport coordinates: the stroke's row must be on screen, and the layout
    # settled (the photograph loaded, the header drawn) before the box is read
    canvas.evaluate("c => c.scrollIntoView({block: 'end'})")
    box, previous = canvas.bounding_box(), None
    while box != previous:
        pg.wait_for_timeout(200)
        box, previous = canvas.bounding_box(), box
    assert box is not None and box["y"] + box["height"] <= 768
    cdp = context.new_cdp_session(pg)

    def touch(kind: str, x: int, y: int) -> None:
        at = {"x": box["x"] + x * box["width"] / WIDTH, "y": box["y"] + y * box["height"] / HEIGHT}
        points = [] if kind == "touchEnd" else [at]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", 100, 300)
    for x in range(110, 260, 10):
        touch("touchMove", x, 300)
    touch("touchEnd", 260, 300)
    shot(pg, "label-editor-tablet")
    pg.locator("#label-submit").click()  # the stroke was the touch part
    expect(pg.locator("#label-error")).to_be_hidden()
    # the gateway checks every mask before it publishes: slow on a loaded machine
    expect(pg.locator("#label-done")).to_contain_text(
        ": corrosion, coating damage.", timeout=20_000
    )
    coating = decode_mask(_label(responder)["masks"]["coating_damage"])[..., 3]
    assert coating[300, 180] > 0 and coating[100, 180] == 0
    context.close()


def test_the_node_error_is_shown(as_user, node):
    responder, rec = node("st-lab-err", "C9004")
    responder.mode = "error"
    pg = as_user("erin")
    pg.goto(f"/inspections/{rec.station}/{rec.id}/label")
    expect(pg.locator("#label-error")).to_contain_text(
        "raw frame gone with retention", timeout=15000
    )
    expect(pg.locator("#label-work")).to_be_hidden()
    expect(pg.locator("#label-retry-button")).to_be_visible()


def test_a_malformed_frame_is_refused_counted_and_the_next_one_works(as_user, node, web):
    gw, _ = web
    responder, rec = node("st-lab-bad", "C9005")
    responder.mode = "malformed"
    pg = as_user("erin")
    pg.goto(f"/inspections/{rec.station}/{rec.id}/label")
    expect(pg.locator("#label-status")).to_contain_text("not the frame's size", timeout=15000)
    expect(pg.locator("#label-work")).to_be_hidden()
    metrics = login(gw.url, "erin").get("/metrics").text
    assert re.search(r'reman_gateway_malformed_total\{kind="frame"\} [1-9]', metrics), metrics
    responder.mode = "frame"
    pg.reload()
    expect(pg.locator("#label-work")).to_be_visible(timeout=15000)


def test_operator_can_only_flag_and_engineers_see_the_flag(as_user, node, web):
    gw, _ = web
    responder, rec = node("st-lab-op", "C9006")
    pg = as_user("olly")
    pg.goto(f"/inspections/{rec.station}/{rec.id}")
    expect(pg.get_by_role("link", name="Label this photograph")).to_have_count(0)
    pg.get_by_role("button", name="Flag for labelling").click()
    expect(pg.get_by_role("status")).to_contain_text("Flagged for labelling")
    expect(pg.locator("#audit")).to_contain_text("flagged for labelling")
    expect(pg.locator("#audit")).to_contain_text("olly")
    shot(pg, "detail-flagged-by-operator")

    olly = login(gw.url, "olly")
    token = csrf_of(olly.get(f"/inspections/{rec.station}/{rec.id}").text)
    base = f"/inspections/{rec.station}/{rec.id}"
    forged = olly.post(
        f"{base}/label",
        json={"view": 1, "masks": {"wear": b64(mask_png((0, 0, 10, 10)))}},
        headers={"X-CSRF-Token": token},
    )
    assert forged.status_code == 403 and "operator" in forged.json()["detail"]
    assert olly.post(f"{base}/frame-request", headers={"X-CSRF-Token": token}).status_code == 403
    assert olly.get(f"{base}/label").status_code == 403
    assert responder.labels.empty() and responder.requests.empty()

    erin = as_user("erin")
    erin.goto(f"/history?station={rec.station}")
    expect(erin.locator(f'#history tr[data-id="{rec.id}"] .flagged')).to_be_visible()
    shot(erin, "history-flagged")
    erin.click("#flagged-link")
    expect(erin.locator(f'#flagged tr[data-id="{rec.id}"]')).to_contain_text("olly")


def test_label_masks_are_checked_against_the_frame(web, node):
    gw, _ = web
    responder, rec = node("st-lab-chk", "C9007")
    erin = login(gw.url, "erin")
    base = f"/inspections/{rec.station}/{rec.id}"
    token = csrf_of(erin.get(base).text)
    headers = {"X-CSRF-Token": token}
    no_frame = erin.post(f"{base}/label", json={"good": True}, headers=headers)
    assert no_frame.status_code == 409  # no frame asked for yet
    asked = erin.post(f"{base}/frame-request", headers=headers).json()
    _wait_ready(gw, erin, base, asked)
    cases = [
        ({"masks": {"wear": b64(mask_png(None, (10, 10)))}}, 400, "the frame is 480x360"),
        ({"masks": {"rust": b64(mask_png(None))}}, 400, "not a defect type"),
        ({"masks": {"wear": b64(b"GIF89a")}}, 400, "not a PNG"),
        ({"masks": {"wear": b64(mask_png(None))}}, 400, "mark the photograph as good"),
        ({"good": True, "masks": {"wear": b64(mask_png(None))}}, 400, "not both"),
        ({"good": True}, 403, "CSRF"),
    ]
    for body, status, why in cases:
        sent_headers = {} if why == "CSRF" else headers
        resp = erin.post(f"{base}/label", json=body, headers=sent_headers)
        assert resp.status_code == status and why in resp.json()["detail"], (body, resp.text)
    assert responder.labels.empty()
    small = {"masks": {"wear": b64(mask_png(None, (10, 10)))}}
    german = erin.post(f"{base}/label", json=small, headers={**headers, "Accept-Language": "de"})
    assert german.json()["detail"] == "masks.wear ist 10x10; das Bild ist 480x360"
    anomaly = {"masks": {"anomaly": b64(mask_png((0, 0, 10, 10)))}}
    refused = erin.post(f"{base}/label", json=anomaly, headers=headers)
    assert refused.status_code == 400 and "not a defect type to label" in refused.text
    painted = {"wear": b64(mask_png((0, 0, 10, 10))), "coating_damage": b64(mask_png(None))}
    sent = erin.post(f"{base}/label", json={"masks": painted}, headers=headers).json()
    assert sent["summary"] == "defects: wear; none of coating_damage"
    assert set(_label(responder)["masks"]) == {"wear", "coating_damage"}


def _wait_ready(gw: Gateway, client: httpx.Client, base: str, asked: dict) -> dict:
    """The frame's state as the editor polls it, once the gateway holds the answer."""
    arrived = threading.Condition()

    def noted() -> None:
        with arrived:
            arrived.notify_all()

    gw.frames.add_listener(noted)
    url = f"{base}/frame?command_id={asked['command_id']}&after={asked['after']}"
    with arrived:
        arrived.wait_for(lambda: client.get(url).json()["state"] != "waiting", 10)
    answer = client.get(url).json()
    assert answer["state"] == "ready", answer
    return answer
