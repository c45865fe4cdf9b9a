"""Station configs and helpers for end-to-end tests: a node on the test broker, the bench
simulator, a folder camera and the toy colour model (tests/vision/toy_models.py), whose grades
follow the colours painted on an image, so the right disposition of a test image is known."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config.station import StationConfig
from edge.contract import Event
from edge.events import Events
from edge.node import Node
from tests.support.images import textured_image
from tests.vision.toy_models import colour_segmenter

REPO = Path(__file__).resolve().parents[2]
NSU = "nsu=urn:reman-edge:bench-sim;s=Bench."
RED_BGR = (0, 0, 255)


def station_id() -> str:
    """A fresh station id, so retained messages and persistent sessions never mix between tests."""
    return f"st-{uuid.uuid4().hex[:10]}"


def clean_core(seed: int = 0) -> np.ndarray:
    """A textured grey core: the toy model sees part everywhere and no defect (REUSE)."""
    return textured_image(seed)


def corroded_core(seed: int = 0) -> np.ndarray:
    """A core with about 10 % of its area rust-red: corrosion Ri4 under ISO 4628-3 (RECYCLE)."""
    image = textured_image(seed)
    image[100:250, 100:300] = RED_BGR
    return image


def write_folder(folder: Path, images: list[np.ndarray]) -> Path:
    """Images as 000.png, 001.png, ... in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        cv2.imwrite(str(folder / f"{i:03d}.png"), image)
    return folder


def station_config(
    tmp_path: Path, broker: Any, *, camera: Path, bench: Any = None, **sections: Any
) -> dict:
    """A station config as plain data (for StationConfig or a YAML file)."""
    model = tmp_path / "toy-seg.onnx"
    if not model.exists():
        colour_segmenter(model)
    data: dict[str, Any] = {
        "station_id": station_id(),
        "mqtt": {
            "host": broker.host,
            "port": broker.port,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1,
        },
        "camera": {"source": "folder" if camera.is_dir() else "file", "path": str(camera)},
        "model": {"path": str(model)},
        "families_dir": str(REPO / "config" / "families"),
        "journal": {"path": str(tmp_path / "journal.db"), "images_dir": str(tmp_path / "images")},
        "stats": {"interval_s": 3600},
    }
    if bench is not None:
        data["bench"] = {
            "enabled": True,
            "endpoint": bench.endpoint,
            "max_age_s": 3600,
            "timeout_s": 5,
            "reconnect_min_s": 0.2,
            "reconnect_max_s": 1,
            "nodes": {
                "leak_rate_ml_min": {"node_id": NSU + "LeakRate", "unit": "ml/min"},
                "flow_l_min": {"node_id": NSU + "Flow", "unit": "l/min"},
            },
            "trigger_node": NSU + "ResultReady",
            "core_id_node": NSU + "CoreId",
            "part_number_node": NSU + "PartNumber",
            "writeback": {
                "code": NSU + "Disposition",
                "credit": NSU + "Credit",
                "seq": NSU + "Seq",
            },
        }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    return data


def write_config(path: Path, data: dict) -> Path:
    """The config as a YAML file (JSON is YAML)."""
    path.write_text(json.dumps(data, indent=2))
    return path


class EventWatch:
    """Every event of a node, and a way to wait for one."""

    def __init__(self) -> None:
        self.seen: list[Event] = []
        self._changed = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()

    def __call__(self, event: Event) -> None:
        if threading.get_ident() == self._thread:
            self._add(event)
        else:  # the camera reports from its own thread
            self._loop.call_soon_threadsafe(self._add, event)

    def _add(self, event: Event) -> None:
        self.seen.append(event)
        self._changed.set()

    async def wait_for(self, code: str, timeout_s: float = 15.0, index: int = 0) -> Event:
        """The first event with this code (seen before or arriving); with `index` n, the n+1th."""

        async def first() -> Event:
            while True:
                matching = [event for event in self.seen if event.code == code]
                if len(matching) > index:
                    return matching[index]
                self._changed.clear()
                await self._changed.wait()

        return await asyncio.wait_for(first(), timeout_s)

    def codes(self) -> list[str]:
        return [e.code for e in self.seen]


async def start_node(data: dict) -> tuple[Node, EventWatch]:
    """A node started in this event loop, with an event watch attached."""
    config = StationConfig.model_validate(data)
    watch = EventWatch()
    node = Node(config, events=Events(config.station_id, sinks=[watch]))
    await node.start()
    return node, watch
