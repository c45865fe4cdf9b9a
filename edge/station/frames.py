"""Frames for the label editor: one view's raw frame and the active model's masks (`frame`).

    path = raw_frame_path(journal, inspection_id, view)   JournalError: why there is none
    drawn = draw_frame(grader, path)                      blocking: run it on a worker thread
    reply = frame_reply(command, station, drawn, version) the FrameReply to publish

The masks are the model's own view of the frame, the starting point for a person's label: one
binary PNG (0/255) per defect type, at the raw frame's size (the size `label/set` masks must
have), non-zero where the model sees that defect.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.contract import FrameReply, FrameRequest
from edge.contract.timefmt import utc_now
from edge.errors import JournalError
from edge.journal.journal import Journal
from vision.card import PART_CLASS
from vision.errors import ImageError
from vision.imageio import decode_image, image_size


@dataclass(frozen=True)
class DrawnFrame:
    """A raw frame as taken and the model's masks at its size."""

    jpeg: bytes
    width: int
    height: int
    masks: dict[str, bytes]  # defect type -> PNG


def raw_frame_path(journal: Journal, inspection_id: str, view: int) -> Path:
    """The file of an inspection's raw frame; JournalError saying why there is none."""
    if journal.get(inspection_id) is None:
        raise JournalError(f"no inspection {inspection_id}")
    raw = [image for image in journal.images(inspection_id) if image["kind"] == "raw"]
    if view > len(raw):
        raise JournalError(f"inspection {inspection_id} has no raw frame for view {view}")
    image = raw[view - 1]
    if image["pruned_at"] is not None:
        raise JournalError(f"the raw frame of view {view} is gone with retention")
    return Path(image["path"])


def draw_frame(grader: Any, path: Path) -> DrawnFrame:
    """Read the raw frame and grade it with `grader`; JournalError when the file is gone or not
    an image, a VisionError when the model fails."""
    try:
        jpeg = path.read_bytes()
    except OSError as exc:
        raise JournalError(f"the raw frame {path} cannot be read: {exc.strerror or exc}") from exc
    size = image_size(jpeg)
    try:
        if size is None:
            raise ImageError(f"{path}: not a readable image")
        view = grader.grade(decode_image(jpeg, str(path)))
    except ImageError as exc:
        raise JournalError(f"the raw frame is unreadable: {exc}") from exc
    masks = {name: _png(mask, size) for name, mask in view.masks.items() if name != PART_CLASS}
    return DrawnFrame(jpeg, size[1], size[0], masks)


def frame_reply(
    command: FrameRequest, station: str, drawn: DrawnFrame, model: str | None
) -> FrameReply:
    """The answer to `command`: the frame and masks, base64."""
    return FrameReply(
        id=command.id,
        station=station,
        view=command.view,
        command_id=command.command_id,
        ts=utc_now(),
        width=drawn.width,
        height=drawn.height,
        image=_b64(drawn.jpeg),
        masks={name: _b64(png) for name, png in drawn.masks.items()},
        model=model,
    )


def refused_reply(command: FrameRequest, station: str, why: str) -> FrameReply:
    """The answer to `command` when there is no frame to give: `error` and no image."""
    return FrameReply(
        id=command.id,
        station=station,
        view=command.view,
        command_id=command.command_id,
        ts=utc_now(),
        error=why,
    )


def _png(mask: np.ndarray, size: tuple[int, int]) -> bytes:
    height, width = size
    binary = np.where(mask > 0, 255, 0).astype(np.uint8)
    if binary.shape != (height, width):  # the model's resolution: nearest keeps it binary
        binary = np.asarray(
            cv2.resize(binary, (width, height), interpolation=cv2.INTER_NEAREST), np.uint8
        )
    ok, png = cv2.imencode(".png", binary)
    if not ok:
        raise JournalError("cannot encode a mask as PNG")
    return png.tobytes()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
