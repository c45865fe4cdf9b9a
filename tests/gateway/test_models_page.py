"""A station's models page over a real mosquitto: the test station publishes what a node's model
switch publishes (the retained `models` state, `shadow` reports, `label_recorded`,
`model_promoted` and `model_refused` events) and receives the dashboard's `model/set`; the page
is read in headless Chromium and over HTTP.

Screenshots land in tests/artifacts/.
"""

from __future__ import annotations

import json
import re
import uuid
from contextlib import closing

import httpx
import pytest
from playwright.sync_api import Page, expect

from edge.contract import Event, ModelsState, RegistryModel, ShadowReport
from gateway import agreement, models_store
from tests.gateway.conftest import Station, csrf_of, login
from tests.gateway.records import ts_at
from tests.support.browser import shot as support_shot

VERSIONS = ("1", "2", "3")


class ModelsNode:
    """A test station publishing what a node's registry and shadow publish (QoS 1, acked)."""

    def __init__(self, broker, name: str):
        self.name = name
        self.station = Station(broker, name)
        self.station.publish("available", b"online", retain=True)  # as a node does on connect
        self._events = 0

    def models(self, minutes: float, active: str | None, shadow: str | None = None, **kw) -> str:
        """Publish the retained models state; returns its ts."""
        roles = {active: "active", shadow: "shadow"}
        state = ModelsState(
            station=self.name,
            ts=ts_at(minutes),
            active=active,
            shadow=shadow,
            models=[
                RegistryModel(
                    version=v,
                    name=f"pump-seg-v{v}",
                    task="segment",
                    sha256=v * 64,
                    added=ts_at(-1000 + int(v)),
                    role=roles.get(v),  # type: ignore[arg-type]
                )
                for v in VERSIONS
            ],
            **kw,
        )
        self.station.publish("models", state.model_dump_json(by_alias=True), retain=True)
        return state.ts

    def shadow(self, inspection_id: str, codes: tuple[int, int], **grades: tuple[int, int]):
        """Publish a shadow report: codes and each defect's grades as (active, candidate)."""
        report = self.report(inspection_id, codes, **grades)
        self.station.publish("shadow", report.model_dump_json(by_alias=True))

    def report(self, inspection_id: str, codes: tuple[int, int], **grades: tuple[int, int]):
        def defects(which: int) -> dict:
            return {
                name: {"area_pct": 2.0 * pair[which], "grade": pair[which], "confidence": 0.9}
                for name, pair in grades.items()
            }

        return ShadowReport.model_validate(
            {
                "id": inspection_id,
                "station": self.name,
                "ts": ts_at(1),
                "candidate": "2",
                "active": "1",
                "defects": defects(1),
                "active_defects": defects(0),
                "code": codes[1],
                "active_code": codes[0],
            }
        )

    def event(self, code: str, message: str, level: str = "info", **detail) -> str:
        """Publish an event as the node's Events would (each a second later); returns its id."""
        self._events += 1
        event = Event(
            id=uuid.uuid4().hex,
            ts=ts_at(2 + self._events / 60),
            station=self.name,
            level=level,  # type: ignore[arg-type]
            code=code,
            message=message,
            detail=detail,
        )
        self.station.publish("event", event.model_dump_json(by_alias=True))
        return event.id

    def close(self) -> None:
        self.station.publish("models", b"", retain=True)
        self.station.close()


@pytest.fixture
def node(web, mosquitto):
    """Make test stations that publish like a node; retained models cleared at the end."""
    made: list[ModelsNode] = []

    def make(name: str) -> ModelsNode:
        made.append(ModelsNode(mosquitto, name))
        return made[-1]

    yield make
    for n in made:
        n.close()


def _wait_state(web, name: str, ts: str) -> None:
    gw, watcher = web
    watcher.until(
        lambda: (s := models_store.latest_state(gw.store, name)) is not None and s[0].ts == ts
    )


def _wait_reports(web, name: str, n: int) -> None:
    gw, watcher = web
    watcher.until(lambda: len(models_store.shadow_reports(gw.store, name)) == n)


def _wait_event(web, name: str, event_id: str) -> None:
    gw, watcher = web
    watcher.until(lambda: any(e["id"] == event_id for e in gw.store.events(station=name)[0]))


def _four_cores(node: ModelsNode) -> None:
    """Four cores graded by active 1 and candidate 2 (codes and grades as (active, candidate))."""
    node.shadow("i1", (1, 1), corrosion=(0, 0), wear=(0, 0))
    node.shadow("i2", (2, 1), corrosion=(2, 0), wear=(3, 3))
    node.shadow("i3", (2, 2), corrosion=(2, 2), wear=(3, 2))
    node.shadow("i4", (3, 4), corrosion=(4, 5), wear=(1, 1))


def shot(pg: Page, name: str) -> None:
    support_shot(pg, f"gateway-{name}")


def _post(client: httpx.Client, name: str, **form: str) -> httpx.Response:
    token = csrf_of(client.get(f"/stations/{name}/models").text)
    return client.post(
        f"/stations/{name}/models/command",
        data={"csrf_token": token, **form},
        headers={"Accept": "text/html"},
        follow_redirects=True,
    )


def _model_set(listener, name: str) -> dict:
    message = listener.wait_topic(f"reman/{name}/model/set")
    assert message.retain is False and message.qos == 1
    return json.loads(message.payload)


# ---------------------------------------------------------------- the figures


@pytest.mark.browser
def test_engineer_sees_agreement_decisions_and_the_labels(web, node, as_user):
    st = node("st-models-a")
    ts = st.models(0, active="1", shadow="2", shadow_seen=4, shadow_skipped=1)
    _four_cores(st)
    # i2's first label said good; the engineer's later label of the same view marks corrosion
    st.event("label_recorded", "erin labelled i1", inspection_id="i1", view=1, good=True, masks=[])
    st.event("label_recorded", "erin labelled i2", inspection_id="i2", view=1, good=True, masks=[])
    last = st.event(
        "label_recorded", "erin labelled i2", inspection_id="i2", view=1, good=False,
        masks=["corrosion"],
    )  # fmt: skip
    _wait_state(web, st.name, ts)
    _wait_reports(web, st.name, 4)
    _wait_event(web, st.name, last)

    pg = as_user("erin")
    pg.goto("/")
    pg.locator("#models-links").get_by_role("link", name=st.name).click()
    expect(pg.locator("h1")).to_contain_text(f"Models · {st.name}")
    expect(pg.locator("#active-version")).to_have_text("1")
    expect(pg.locator("#shadow-version")).to_have_text("2")
    expect(pg.locator("#registry tr[data-version='3']")).to_contain_text("pump-seg-v3")
    cand = pg.locator(".candidate[data-candidate='2']")
    expect(cand.locator("[data-figure=reports]")).to_have_text("4")
    expect(cand.locator("[data-figure=seen-skipped]")).to_have_text("4 · 1")
    expect(cand.locator("[data-figure=same-decision]")).to_have_text("50.0 %")
    corrosion = cand.locator("tr[data-defect=corrosion]")
    expect(corrosion.locator("[data-cell=same-grade]")).to_have_text("50.0 %")
    expect(corrosion.locator("[data-cell=mean-difference]")).to_have_text("-0.25")
    wear = cand.locator("tr[data-defect=wear]")
    expect(wear.locator("[data-cell=same-grade]")).to_have_text("75.0 %")
    expect(wear.locator("[data-cell=mean-difference]")).to_have_text("-0.25")

    decisions = cand.locator("[data-table=decisions]")
    expected = {
        ("REUSE", "REUSE"): "1",
        ("REMANUFACTURE", "REUSE"): "1",
        ("REMANUFACTURE", "REMANUFACTURE"): "1",
        ("RECYCLE", "REVIEW"): "1",
        ("RECYCLE", "RECYCLE"): "0",
        ("REVIEW", "REVIEW"): "0",
    }
    for (active, candidate), n in expected.items():
        cell = decisions.locator(f"tr[data-active={active}] td[data-candidate-code={candidate}]")
        expect(cell).to_have_text(n)

    # i1 labelled good: both graded it defect-free; i2's corrosion: active found it, 2 did not
    expect(cand.locator("tr[data-label=good]")).to_contain_text("labelled good (1)")
    good_cells = cand.locator("tr[data-label=good] td.num")
    expect(good_cells.nth(0)).to_have_text("100.0 % (1/1)")
    expect(good_cells.nth(1)).to_have_text("100.0 % (1/1)")
    found = cand.locator("tr[data-label=corrosion] td.num")
    expect(found.nth(0)).to_have_text("100.0 % (1/1)")
    expect(found.nth(1)).to_have_text("0.0 % (0/1)")
    expect(pg.locator("#commands")).to_contain_text("Only an admin may change")
    expect(pg.locator("#commands form")).to_have_count(0)
    shot(pg, "models")


@pytest.mark.browser
def test_the_page_follows_the_station_without_a_reload(web, node, as_user):
    st = node("st-models-live")
    _wait_state(web, st.name, st.models(0, active="1"))
    pg = as_user("ada")  # an admin, with the command forms
    pg.goto(f"/stations/{st.name}/models")
    expect(pg.locator("#shadow-version")).to_have_text("none")
    pg.evaluate("document.querySelector('#commands textarea').value = 'typed before'")
    st.models(1, active="1", shadow="2", shadow_seen=1)  # `reman train --candidate` at the node
    expect(pg.locator("#shadow-version")).to_have_text("2", timeout=10_000)
    st.shadow("live-1", (1, 1), wear=(0, 0))  # the candidate grades a core
    cand = pg.locator(".candidate[data-candidate='2']")
    expect(cand.locator("[data-figure=reports]")).to_have_text("1", timeout=10_000)
    st.shadow("live-2", (1, 2), wear=(0, 2))
    expect(cand.locator("[data-figure=reports]")).to_have_text("2", timeout=10_000)
    expect(cand.locator("[data-figure=same-decision]")).to_have_text("50.0 %")
    # the command forms are not redrawn: what an admin types stays
    assert pg.evaluate("document.querySelector('#commands textarea').value") == "typed before"


def test_no_labelled_cores_is_said_and_operators_may_not_look(web, node):
    gw, _ = web
    st = node("st-models-b")
    st.models(0, active="1", shadow="2")
    st.shadow("j1", (1, 2), corrosion=(0, 1))
    _wait_reports(web, st.name, 1)
    with closing(login(gw.url, "erin")) as erin:
        html = erin.get(f"/stations/{st.name}/models").text
    assert "No labelled cores yet among the cores candidate 2 graded" in html
    with closing(login(gw.url, "olly")) as olly:
        assert olly.get(f"/stations/{st.name}/models").status_code == 403


# ---------------------------------------------------------------- commands


@pytest.mark.browser
def test_admin_promotes_and_the_page_waits_for_the_station(
    web, node, as_user, mosquitto, listener_factory
):
    st = node("st-models-c")
    _wait_state(web, st.name, st.models(0, active="1", shadow="2"))
    listener = listener_factory(mosquitto, f"reman/{st.name}/model/set")

    pg = as_user("ada")
    pg.goto(f"/stations/{st.name}/models")
    form = pg.locator("form[data-action=promote]")
    form.locator("select[name=version]").select_option("2")
    form.locator("textarea[name=reason]").fill("agrees with the labels on 180 cores")
    form.get_by_role("button", name="Promote").click()

    command = _model_set(listener, st.name)
    assert command["action"] == "promote" and command["version"] == "2"
    assert command["reason"] == "agrees with the labels on 180 cores"
    assert command["user"] == "ada"
    assert re.fullmatch(r"[0-9a-f]{32}", command["command_id"])
    row = pg.locator(f"#model-commands tr[data-command-id='{command['command_id']}']")
    expect(row).to_contain_text("sent; the station will confirm")
    expect(row).to_contain_text("promote 2")

    st.models(5, active="2", can_roll_back=True)  # the node promoted it
    expect(row).to_contain_text("confirmed", timeout=15000)
    pg.reload()
    expect(pg.locator("#active-version")).to_have_text("2")
    expect(pg.locator("form[data-action=rollback] button")).to_be_enabled()
    shot(pg, "models-promoted")


def test_the_nodes_refusal_is_shown(web, node, mosquitto, listener_factory):
    gw, _ = web
    st = node("st-models-d")
    _wait_state(web, st.name, st.models(0, active="1"))
    listener = listener_factory(mosquitto, f"reman/{st.name}/model/set")
    with closing(login(gw.url, "ada")) as ada:
        resp = _post(ada, st.name, action="shadow", version="3", reason="try the new one")
        assert resp.status_code == 200 and "sent; the station will confirm" in resp.text
        command = _model_set(listener, st.name)
        assert command["action"] == "shadow" and command["version"] == "3"
        why = "ada's shadow 3 refused, nothing changed: model 3's file changed since it was added"
        event = st.event(
            "model_refused", why, level="warning", action="shadow", version="3", user="ada",
            reason="try the new one", command_id=command["command_id"],
        )  # fmt: skip
        _wait_event(web, st.name, event)
        html = ada.get(f"/stations/{st.name}/models").text
    row = re.search(rf'data-command-id="{command["command_id"]}">(.*?)</tr>', html, re.S)
    assert row and "refused" in row.group(1) and "file changed since it was added" in row.group(1)


def test_engineer_may_not_send_and_nothing_is_published(web, node, mosquitto, listener_factory):
    gw, _ = web
    st = node("st-models-e")
    _wait_state(web, st.name, st.models(0, active="1", shadow="2"))
    listener = listener_factory(mosquitto, f"reman/{st.name}/model/set")
    with closing(login(gw.url, "erin")) as erin:
        resp = _post(erin, st.name, action="promote", version="2", reason="looks fine")
        assert resp.status_code == 403
    with closing(login(gw.url, "ada")) as ada:
        assert _post(ada, st.name, action="end_shadow", reason="enough").status_code == 200
    first = _model_set(listener, st.name)  # the admin's, so the engineer's never went out
    assert first["action"] == "end_shadow" and first["user"] == "ada"


def test_unknown_version_and_impossible_rollback_are_refused_here(
    web, node, mosquitto, listener_factory
):
    gw, _ = web
    st = node("st-models-f")
    _wait_state(web, st.name, st.models(0, active="1"))
    listener = listener_factory(mosquitto, f"reman/{st.name}/model/set")
    with closing(login(gw.url, "ada")) as ada:
        resp = _post(ada, st.name, action="promote", version="99", reason="newest")
        assert resp.status_code == 400
        error = re.search(r'id="model-error">(.*?)</div>', resp.text, re.S)
        assert error, resp.text
        assert "99" in error.group(1) and f"is not in {st.name}" in error.group(1)
        assert "it lists 1, 2, 3" in error.group(1) and "nothing was sent" in error.group(1)
        resp = _post(ada, st.name, action="rollback", reason="back")
        assert resp.status_code == 400 and "Nothing to roll back to" in resp.text
        resp = _post(ada, st.name, action="promote", version="2", reason="   ")
        assert resp.status_code == 400 and "reason" in resp.text
        assert _post(ada, st.name, action="shadow", version="2", reason="a try").status_code == 200
    first = _model_set(listener, st.name)
    assert first["action"] == "shadow" and first["version"] == "2"


# ---------------------------------------------------------------- ingest


def test_malformed_models_and_shadow_are_counted_and_nothing_breaks(web, node):
    gw, _ = web
    st = node("st-models-g")
    before = gw.counters.snapshot()["malformed"]
    st.station.publish("models", b'{"station": "st-models-g", "ts": ', retain=True)
    wrong = st.report("k1", (1, 1), corrosion=(0, 0)).model_copy(update={"station": "st-other"})
    st.station.publish("shadow", wrong.model_dump_json(by_alias=True))
    st.station.publish("shadow", b'{"id": "k1", "station": "st-models-g", "code": "1"}')
    st.shadow("k2", (1, 1), corrosion=(0, 0))
    _wait_reports(web, st.name, 1)
    after = gw.counters.snapshot()["malformed"]
    assert after.get("models", 0) - before.get("models", 0) == 1
    assert after.get("shadow", 0) - before.get("shadow", 0) == 2
    assert [r.id for r in models_store.shadow_reports(gw.store, st.name)] == ["k2"]
    with closing(login(gw.url, "erin")) as erin:
        resp = erin.get(f"/stations/{st.name}/models")
    assert resp.status_code == 200
    assert "has not published its models yet" in resp.text


def test_a_redelivered_shadow_report_counts_once(web, node):
    gw, _ = web
    st = node("st-models-h")
    st.models(0, active="1", shadow="2")
    received = gw.counters.snapshot()["received"].get("shadow", 0)
    st.shadow("m1", (2, 1), wear=(2, 1))
    st.shadow("m1", (2, 1), wear=(2, 1))  # QoS 1 delivers it again
    st.shadow("m2", (2, 2), wear=(2, 2))
    _wait_reports(web, st.name, 2)
    assert gw.counters.snapshot()["received"]["shadow"] - received == 3
    with closing(login(gw.url, "erin")) as erin:
        html = erin.get(f"/stations/{st.name}/models").text
    assert re.search(r'data-figure="reports">2<', html)
    assert re.search(r'data-figure="same-decision">50.0 %<', html)


def test_an_older_models_message_does_not_undo_a_newer_one(web, node):
    gw, _ = web
    st = node("st-models-i")
    st.models(5, active="2", can_roll_back=True)
    st.models(0, active="1")  # a late redelivery of the state before the promotion
    st.shadow("n1", (1, 1), wear=(0, 0))  # after both, on the same connection
    _wait_reports(web, st.name, 1)
    state = models_store.latest_state(gw.store, st.name)
    assert state is not None and state[0].active == "2" and state[0].ts == ts_at(5)


def test_the_nodes_change_event_confirms_a_command(web, node, mosquitto, listener_factory):
    gw, _ = web
    st = node("st-models-j")
    _wait_state(web, st.name, st.models(0, active="1", shadow="3", can_roll_back=True))
    listener = listener_factory(mosquitto, f"reman/{st.name}/model/set")
    with closing(login(gw.url, "ada")) as ada:
        assert _post(ada, st.name, action="rollback", reason="bad week").status_code == 200
        command = _model_set(listener, st.name)
        assert command["action"] == "rollback" and "version" not in command
        event = st.event(
            "model_rolled_back", "ada rolled back from model 1 to 0: bad week", level="warning",
            version="0", previous="1", user="ada", reason="bad week",
            command_id=command["command_id"],
        )  # fmt: skip
        _wait_event(web, st.name, event)
        html = ada.get(f"/stations/{st.name}/models").text
    row = re.search(rf'data-command-id="{command["command_id"]}">(.*?)</tr>', html, re.S)
    assert row and "confirmed" in row.group(1) and "rolled back from model 1" in row.group(1)


def test_a_core_is_good_only_when_every_labelled_view_is():
    def label(view: int, good: bool, *masks: str) -> dict:
        return {"detail": {"inspection_id": "p1", "view": view, "good": good, "masks": list(masks)}}

    labels = agreement.labels_by_inspection([label(1, True), label(2, False, "wear")])
    assert labels["p1"] == agreement.CoreLabel(good=False, defect_types=frozenset({"wear"}))
    labels = agreement.labels_by_inspection([label(2, False, "wear"), label(2, True)])
    assert labels["p1"] == agreement.CoreLabel(good=True, defect_types=frozenset())
