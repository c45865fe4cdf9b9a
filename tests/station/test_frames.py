"""`frame/get` from the label editor: the node answers once on `frame` with the raw frame and the
active model's masks, or with an error and an event when it has no frame to give."""

from __future__ import annotations

import base64
import json

import cv2
import numpy as np

from edge.contract import FrameReply, InspectionRecord
from edge.journal.journal import Journal
from tests.station.test_station_e2e import publish, wait_topic
from tests.support.stations import corroded_core, start_node, station_config, write_folder


def decoded(text: str, flags: int) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(base64.b64decode(text, validate=True), np.uint8), flags)
    assert image is not None
    return image


async def test_the_raw_frame_comes_with_the_active_models_masks(
    tmp_path, mosquitto, listener_factory
):
    camera = write_folder(tmp_path / "cores", [corroded_core()])
    node, watch = await start_node(station_config(tmp_path, mosquitto, camera=camera))
    topics = node.station.topics
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    try:
        publish(listener, topics.topic("trigger/set"), json.dumps({"core": "HGP-000911"}))
        record = InspectionRecord.model_validate_json(
            (await wait_topic(listener, topics.inspection)).payload
        )
        ask = {"id": record.id, "view": 1, "user": "erin", "command_id": "f1"}
        publish(listener, topics.frame_get, json.dumps(ask))
        message = await wait_topic(listener, topics.frame)
    finally:
        await node.shutdown()
    reply = FrameReply.model_validate_json(message.payload)
    assert not message.retain and reply.error is None
    assert (reply.id, reply.view, reply.command_id, reply.model) == (record.id, 1, "f1", "1")
    with Journal.open(node.config.journal.path) as journal:
        raw = [i for i in journal.images(record.id) if i["kind"] == "raw"][0]
    assert reply.image is not None
    assert base64.b64decode(reply.image) == open(raw["path"], "rb").read()  # the frame as taken
    frame = decoded(reply.image, cv2.IMREAD_COLOR)
    assert frame.shape[:2] == (reply.height, reply.width) == (480, 640)
    assert set(reply.masks) == {"wear", "corrosion", "coating_damage"}
    masks = {name: decoded(text, cv2.IMREAD_UNCHANGED) for name, text in reply.masks.items()}
    assert {m.shape for m in masks.values()} == {(480, 640)}
    corrosion = masks["corrosion"] > 0
    assert corrosion[150:200, 150:250].all()  # the rust-red patch (rows 100:250, cols 100:300)
    assert not corrosion[300:, 400:].any() and not masks["wear"].any()
    assert "frame_refused" not in watch.codes()


async def test_a_frame_that_is_not_there_is_an_error_reply_and_an_event(
    tmp_path, mosquitto, listener_factory
):
    camera = write_folder(tmp_path / "cores", [corroded_core()])
    node, watch = await start_node(station_config(tmp_path, mosquitto, camera=camera))
    topics = node.station.topics
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    try:
        ask = {"id": "no-such-inspection", "user": "erin", "command_id": "f2"}
        publish(listener, topics.frame_get, json.dumps(ask))
        message = await wait_topic(listener, topics.frame)
        refused = await watch.wait_for("frame_refused")
        publish(listener, topics.frame_get, json.dumps({"id": "x", "user": "erin", "view": 0}))
        rejected = await watch.wait_for("command_rejected")
    finally:
        await node.shutdown()
    reply = FrameReply.model_validate_json(message.payload)
    assert reply.command_id == "f2" and reply.id == "no-such-inspection"
    assert reply.image is None and reply.masks == {} and reply.width is None
    assert reply.error is not None and "no inspection no-such-inspection" in reply.error
    assert refused.level == "warning" and refused.detail["command_id"] == "f2"
    assert rejected.detail["topic"] == topics.frame_get
