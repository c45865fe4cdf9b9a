"""`frame` answers for gateway tests, built the way a node would send them, and a stand-in for
the node's side of `frame/get` and `label/set` that speaks the real protocol over mosquitto."""

from __future__ import annotations

import base64
import json
import queue
import threading

import cv2
import numpy as np

from edge.contract import FrameReply
from edge.contract.timefmt import utc_now

WIDTH, HEIGHT = 480, 360
CORROSION_BOX = (280, 220, 330, 260)  # x0, y0, x1, y1 where the model sees corrosion


def photo_jpeg() -> bytes:
    """A raw photograph of a core: a grey part on a dark bench, no overlay."""
    img = np.full((HEIGHT, WIDTH, 3), 40, np.uint8)
    cv2.circle(img, (240, 180), 150, (160, 160, 160), -1)
    cv2.circle(img, (240, 180), 55, (80, 80, 80), -1)
    cv2.rectangle(img, CORROSION_BOX[:2], CORROSION_BOX[2:], (60, 90, 150), -1)
    ok, data = cv2.imencode(".jpg", img)
    assert ok
    return data.tobytes()


def mask_png(box: tuple[int, int, int, int] | None, size=(WIDTH, HEIGHT)) -> bytes:
    """A grey PNG of `size`, 255 inside `box`."""
    mask = np.zeros((size[1], size[0]), np.uint8)
    if box is not None:
        cv2.rectangle(mask, box[:2], box[2:], 255, -1)
    ok, data = cv2.imencode(".png", mask)
    assert ok
    return data.tobytes()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def frame_reply(station: str, rid: str, command_id: str | None, view: int = 1, **over) -> str:
    """A valid FrameReply (the model saw corrosion in CORROSION_BOX), fields replaced by `over`."""
    data = {
        "station": station,
        "id": rid,
        "view": view,
        "command_id": command_id,
        "ts": utc_now(),
        "width": WIDTH,
        "height": HEIGHT,
        "image": b64(photo_jpeg()),
        "masks": {"corrosion": b64(mask_png(CORROSION_BOX))},
        "model": "seg-7",
        **over,
    }
    return FrameReply.model_validate(data).model_dump_json(by_alias=True, exclude_none=True)


def decode_mask(text: str) -> np.ndarray:
    """A label's base64 PNG mask as an array (channels as stored)."""
    img = cv2.imdecode(np.frombuffer(base64.b64decode(text), np.uint8), cv2.IMREAD_UNCHANGED)
    assert img is not None, "not a PNG"
    return img


class FrameNode:
    """The node's side of labelling, on a test station's paho client: answers every `frame/get`
    once on `frame` (how is set by `mode`) and keeps every `label/set` it receives."""

    def __init__(self, station) -> None:
        self.station = station
        self.mode = "frame"  # frame | error | malformed | silent
        self.requests: queue.Queue[dict] = queue.Queue()
        self.labels: queue.Queue[dict] = queue.Queue()
        client, topics = station.client, station.topics
        client.message_callback_add(topics.frame_get, self._on_frame_get)
        client.message_callback_add(topics.label_set, self._on_label)
        subscribed = threading.Event()
        client.on_subscribe = lambda *args: subscribed.set()
        client.subscribe([(topics.frame_get, 1), (topics.label_set, 1)])
        assert subscribed.wait(10), "broker did not acknowledge the subscription"

    def _on_frame_get(self, client, userdata, msg) -> None:
        request = json.loads(msg.payload)
        self.requests.put(request)
        name = self.station.topics.station
        if self.mode == "silent":
            return
        if self.mode == "error":
            payload = json.dumps(
                {
                    "station": name,
                    "id": request["id"],
                    "view": request["view"],
                    "command_id": request["command_id"],
                    "ts": utc_now(),
                    "error": "raw frame gone with retention",
                }
            )
        elif self.mode == "malformed":  # a mask that is not the frame's size
            payload = frame_reply(
                name,
                request["id"],
                request["command_id"],
                masks={"corrosion": b64(mask_png(None, size=(100, 100)))},
            )
        else:
            payload = frame_reply(name, request["id"], request["command_id"], request["view"])
        client.publish(self.station.topics.frame, payload, qos=1)

    def _on_label(self, client, userdata, msg) -> None:
        self.labels.put(json.loads(msg.payload))
