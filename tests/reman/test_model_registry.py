"""`reman model`: a checked model is added by version, promoted to decide (a running node
follows the registry; see tests/station/test_model_commands.py),
and rolled back; every change and every refusal is an event in the journal."""

from __future__ import annotations

import json
from unittest.mock import ANY

import pytest
from click.testing import CliRunner

from edge.contract import InspectionRecord
from edge.journal.journal import Journal
from reman.cli import cli
from tests.station.test_station_e2e import publish, wait_topic
from tests.support.stations import (
    clean_core,
    start_node,
    station_config,
    write_config,
    write_folder,
)
from tests.vision.toy_models import colour_segmenter, segmentation_card


@pytest.fixture
def station(tmp_path, mosquitto):
    camera = write_folder(tmp_path / "cores", [clean_core()])
    data = station_config(tmp_path, mosquitto, camera=camera)
    return data, write_config(tmp_path / "station.yaml", data)


def model(cli_args: list[str], config) -> tuple[int, str]:
    done = CliRunner().invoke(cli, ["model", *cli_args, "--config", str(config)])
    return done.exit_code, done.output


def events_in(data) -> list[tuple[str, str]]:
    with Journal.open(data["journal"]["path"]) as journal:
        rows = journal.db.conn.execute("SELECT level, code FROM events ORDER BY ts").fetchall()
    return [tuple(r) for r in rows]


async def inspect_once(data, mosquitto, listener_factory, core: str) -> InspectionRecord:
    node, _ = await start_node(data)
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    try:
        publish(listener, node.station.topics.topic("trigger/set"), json.dumps({"core": core}))
        return InspectionRecord.model_validate_json(
            (await wait_topic(listener, node.station.topics.inspection)).payload
        )
    finally:
        await node.shutdown()


async def test_a_promoted_model_decides_and_rollback_restores_the_one_before(
    tmp_path, station, mosquitto, listener_factory
):
    data, config = station
    v2 = colour_segmenter(tmp_path / "v2.onnx", segmentation_card(version="2"))
    v3 = colour_segmenter(tmp_path / "v3.onnx", segmentation_card(version="3"))
    assert model(["add", str(v2)], config)[0] == 0
    assert model(["add", str(v2)], config)[0] == 0  # the same file again: nothing new
    assert model(["add", str(v3)], config)[0] == 0
    assert model(["promote", "2", "--reason", "site photos", "--user", "erin"], config)[0] == 0
    first = await inspect_once(data, mosquitto, listener_factory, "HGP-000801")
    assert model(["promote", "3", "--reason", "more photos", "--user", "erin"], config)[0] == 0
    second = await inspect_once(data, mosquitto, listener_factory, "HGP-000802")
    code, out = model(["rollback", "--reason", "worse on seals", "--user", "erin"], config)
    assert code == 0 and "model 2 is active again" in out
    third = await inspect_once(data, mosquitto, listener_factory, "HGP-000803")
    assert [r.model.version for r in (first, second, third)] == ["2", "3", "2"]
    listing = model(["list"], config)[1]
    assert "2  toy-seg  segmentation" in listing and "[active]" in listing.splitlines()[0]
    code, out = model(["rollback", "--reason", "back to the shipped model"], config)
    assert code == 0 and "the configured model is active again" in out
    code, out = model(["rollback", "--reason", "again"], config)
    assert code != 0 and "nothing to roll back to" in out
    changes = {"model_added", "model_promoted", "model_rolled_back", "model_refused"}
    codes = [c for _, c in events_in(data) if c in changes]
    assert codes == [
        "model_added",
        "model_added",
        "model_promoted",
        "model_promoted",
        "model_rolled_back",
        "model_rolled_back",
        "model_refused",
    ]


def test_bad_changes_are_one_line_and_an_event_and_change_nothing(tmp_path, station):
    data, config = station
    wrong = colour_segmenter(tmp_path / "wrong.onnx", segmentation_card(input_size=[32, 32]))
    good = colour_segmenter(tmp_path / "good.onnx", segmentation_card(version="5"))
    other = colour_segmenter(tmp_path / "other.onnx", segmentation_card(version="5", name="x"))
    assert model(["add", str(good)], config)[0] == 0
    refused = [
        (["add", str(wrong)], "refused"),
        (["add", str(other)], "already in the registry with another file"),
        (["promote", "9", "--reason", "r"], "no model 9 in the registry (known: 5)"),
        (["rollback", "--reason", "r"], "nothing to roll back to"),
        (["add", str(tmp_path / "missing.onnx")], "no model file"),
    ]
    for args, why in refused:
        code, out = model(args, config)
        assert code != 0 and why in out, out
        assert len(out.strip().splitlines()) == 1 and "Traceback" not in out
    levels = [(lvl, c) for lvl, c in events_in(data) if c in ("model_added", "model_refused")]
    assert levels == [("info", "model_added")] + [("warning", "model_refused")] * len(refused)
    listing = model(["list"], config)[1]
    assert (
        listing.strip() == "5  toy-seg  segmentation  " + listing.split()[3]
    )  # one model, no role


async def test_a_shadow_model_grades_beside_the_active_one_and_decides_nothing(
    tmp_path, station, mosquitto, listener_factory
):
    data, config = station
    candidate = colour_segmenter(tmp_path / "v7.onnx", segmentation_card(version="7"))
    assert model(["add", str(candidate)], config)[0] == 0
    assert model(["shadow", "7", "--user", "erin"], config)[0] == 0
    node, _ = await start_node(data)
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    records = []
    try:
        assert node.shadow is not None and node.shadow.version == "7"
        for n in range(3):
            publish(
                listener,
                node.station.topics.topic("trigger/set"),
                json.dumps({"core": f"HGP-00070{n}"}),
            )
            records.append(
                InspectionRecord.model_validate_json(
                    (
                        await wait_topic(
                            listener,
                            node.station.topics.inspection,
                            lambda m, n=n: json.loads(m.payload)["core_id"] == f"HGP-00070{n}",
                        )
                    ).payload
                )
            )
        shadow = node.shadow
    finally:
        await node.shutdown()  # waits for the shadow's inspection in hand
    assert {r.model.version for r in records} == {"1"}  # the active model decided
    assert shadow.done + shadow.skipped == 3 and shadow.done >= 1
    code, out = model(["agreement", "7"], config)
    figures = json.loads(out)
    assert code == 0 and figures["cores"] == shadow.done
    assert figures["decision_agreement"] == 1.0  # the same weights: the same decisions
    assert set(figures["grades"].values()) == {1.0}
    code, out = model(["end-shadow", "--reason", "enough cores", "--user", "erin"], config)
    assert code == 0 and out.strip() == (
        "model 7 no longer runs in shadow (a running node follows within seconds)"
    )
    assert model(["list"], config)[1].split() == ["7", "toy-seg", "segmentation", ANY]
    code, out = model(["end-shadow"], config)
    assert code != 0 and out.strip() == "error: no model runs in shadow"
    ended = [c for _, c in events_in(data) if c in ("model_shadow_ended", "model_refused")]
    assert ended == ["model_shadow_ended", "model_refused"]
