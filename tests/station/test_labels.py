"""Labels from the dashboard reach the node's journal over MQTT, beside the raw frame; bad ones are
refused with an event and the node carries on."""

from __future__ import annotations

import base64
import json

import cv2
import numpy as np
from click.testing import CliRunner

from edge.contract import DEFECT_TYPES, InspectionRecord
from edge.journal.journal import Journal
from edge.journal.labels import labels_of
from reman.cli import cli
from tests.station.test_station_e2e import publish, wait_topic
from tests.support.stations import clean_core, start_node, station_config, write_folder
from vision.folders import scan_mask_pairs


def png_b64(mask: np.ndarray) -> str:
    return base64.b64encode(cv2.imencode(".png", mask)[1].tobytes()).decode("ascii")


async def inspected(tmp_path, mosquitto, listener_factory):
    camera = write_folder(tmp_path / "cores", [clean_core()])
    node, watch = await start_node(station_config(tmp_path, mosquitto, camera=camera))
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    topics = node.station.topics
    publish(listener, topics.topic("trigger/set"), json.dumps({"core": "HGP-000901"}))
    record = InspectionRecord.model_validate_json(
        (await wait_topic(listener, topics.inspection)).payload
    )
    return node, watch, listener, record


async def test_a_painted_mask_is_kept_beside_the_raw_frame(tmp_path, mosquitto, listener_factory):
    node, watch, listener, record = await inspected(tmp_path, mosquitto, listener_factory)
    topic = node.station.topics.topic("label/set")
    try:
        painted = np.zeros((480, 640), np.uint8)  # the raw frame's size (tests/support/images)
        cv2.circle(painted, (200, 150), 30, 255, -1)
        label = {"id": record.id, "masks": {"corrosion": png_b64(painted)}, "user": "erin"}
        publish(listener, topic, json.dumps({**label, "command_id": "l1"}))
        recorded = await watch.wait_for("label_recorded")
        publish(listener, topic, json.dumps({"id": record.id, "good": True, "user": "erin"}))
        await watch.wait_for("label_recorded", index=1)
    finally:
        await node.shutdown()
    assert recorded.detail["masks"] == ["corrosion"] and recorded.detail["user"] == "erin"
    with Journal.open(node.config.journal.path) as journal:
        first, second = labels_of(journal, record.id)
    kept = cv2.imread(first.masks["corrosion"], cv2.IMREAD_GRAYSCALE)
    assert np.array_equal(kept, painted)  # the painted pixels, exactly
    assert not first.good and second.good and second.masks == {}


async def test_bad_labels_are_refused_with_an_event_and_nothing_is_lost(
    tmp_path, mosquitto, listener_factory
):
    node, watch, listener, record = await inspected(tmp_path, mosquitto, listener_factory)
    topic = node.station.topics.topic("label/set")
    small = png_b64(np.zeros((10, 10), np.uint8))
    bad = [
        ({"id": "no-such-inspection", "good": True, "user": "erin"}, "no inspection"),
        ({"id": record.id, "masks": {"corrosion": small}, "user": "erin"}, "10x10 pixels"),
        ({"id": record.id, "view": 3, "good": True, "user": "erin"}, "no raw frame for view 3"),
        (
            {"id": record.id, "masks": {"rust": small}, "user": "erin"},
            "'rust' is not a defect type",
        ),
        ({"id": record.id, "masks": {"anomaly": small}, "user": "erin"}, "mark them good"),
    ]
    try:
        for payload, _ in bad:
            publish(listener, topic, json.dumps(payload))
        rejected = [await watch.wait_for("label_rejected", index=i) for i in range(len(bad))]
        publish(listener, topic, json.dumps({"id": record.id, "masks": {}, "user": "erin"}))
        refused = await watch.wait_for("command_rejected")
        publish(listener, node.station.topics.topic("trigger/set"), b"")
        await wait_topic(
            listener,
            node.station.topics.result,
            lambda m: json.loads(m.payload)["seq"] == record.seq + 1,
        )  # still inspecting
    finally:
        await node.shutdown()
    assert [e.level for e in rejected] == ["warning"] * len(bad)
    for event, (_, why) in zip(rejected, bad, strict=True):
        assert why in event.message, event.message
    assert "either good or carries masks" in refused.message
    with Journal.open(node.config.journal.path) as journal:
        assert labels_of(journal, record.id) == []
        assert journal.count() == 2


async def test_labelled_views_export_as_raw_frames_with_class_masks(
    tmp_path, mosquitto, listener_factory
):
    node, watch, listener, record = await inspected(tmp_path, mosquitto, listener_factory)
    painted = np.zeros((480, 640), np.uint8)
    painted[100:140, 300:380] = 255
    label = {"id": record.id, "masks": {"wear": png_b64(painted)}, "user": "erin"}
    try:
        publish(listener, node.station.topics.topic("label/set"), json.dumps(label))
        await watch.wait_for("label_recorded")
    finally:
        await node.shutdown()
    out, masks = tmp_path / "classes", tmp_path / "masks"
    done = CliRunner().invoke(
        cli,
        ["dataset", "export", "--journal", node.config.journal.path, "--out", str(out),
         "--masks", str(masks), "--json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)[str(masks)]["per_label"] == {"wear": 1}
    image, mask = masks / f"{record.id}_v1.jpg", masks / f"{record.id}_v1.png"
    with Journal.open(node.config.journal.path) as journal:
        raw = [i for i in journal.images(record.id) if i["kind"] == "raw"][0]
    assert image.read_bytes() == open(raw["path"], "rb").read()  # the frame as taken
    classes = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
    assert set(np.unique(classes)) == {0, DEFECT_TYPES.index("wear") + 1}
    assert np.array_equal(classes > 0, painted > 0)
    assert scan_mask_pairs(masks).images == [image]
    # which class value is which type, so reman train needs no --label-map
    label_map = json.loads((masks / "label-map.json").read_text())
    assert label_map == {"1": "wear", "2": "corrosion", "3": "coating_damage"}
