"""Reading camera and file images as 8-bit BGR, with clear errors for anything unusable.

`read_image(path)` and `decode_image(data, name)` always return an (H, W, 3) uint8 BGR array:
grayscale is expanded to three channels, alpha is dropped, 16-bit is scaled to 8-bit (OpenCV's
IMREAD_COLOR does all three). Images whose longer side exceeds `max_side` are decoded reduced
(JPEG decodes at 1/2, 1/4 or 1/8 scale inside libjpeg, so an 8000x6000 photo never needs its
full 144 MB) and then resized. Every failure is an ImageError naming the file and the problem.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

from vision.errors import ImageError

MAX_SIDE = 2048
MAX_PIXELS = 250_000_000  # refuse decompression bombs before allocating anything

_JPEG_SOI = b"\xff\xd8"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_REDUCED = (
    (8, cv2.IMREAD_REDUCED_COLOR_8),
    (4, cv2.IMREAD_REDUCED_COLOR_4),
    (2, cv2.IMREAD_REDUCED_COLOR_2),
)


def read_image(path: str | Path, max_side: int = MAX_SIDE) -> np.ndarray:
    """The image file as (H, W, 3) uint8 BGR, longer side at most `max_side`.

    ImageError names the file: missing, not a file, empty, truncated, not an image.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageError(f"{path}: no such file") from exc
    except IsADirectoryError as exc:
        raise ImageError(f"{path}: is a directory, not an image") from exc
    except OSError as exc:
        raise ImageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return decode_image(data, str(path), max_side)


def decode_image(data: bytes, name: str, max_side: int = MAX_SIDE) -> np.ndarray:
    """Encoded image bytes (JPEG, PNG, TIFF, BMP, WebP, ...) as (H, W, 3) uint8 BGR.

    `name` is used in errors (a path, or a camera and frame id). The longer side is at most
    `max_side` (and, for a larger image, at least 3/4 of it): larger images are decoded
    reduced where the format allows it, then resized.
    """
    if not data:
        raise ImageError(f"{name}: empty file (0 bytes)")
    _check_complete(data, name)
    size = image_size(data)
    if size is not None and size[0] * size[1] > MAX_PIXELS:
        raise ImageError(f"{name}: image too large ({size[1]}x{size[0]} pixels)")
    image = _imdecode(data, name, _decode_flag(size, max_side))
    return _fit(image, max_side)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a JPEG or PNG header without decoding; None for other formats."""
    if data.startswith(_PNG_SIGNATURE) and len(data) >= 24:
        width, height = struct.unpack(">II", data[16:24])
        return height, width
    if data.startswith(_JPEG_SOI):
        return _jpeg_size(data)
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while pos + 9 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return height, width
        pos += 2 + length
    return None


def _check_complete(data: bytes, name: str) -> None:
    """Refuse JPEG and PNG files cut short (a decoder may otherwise return a partial image)."""
    if data.startswith(_JPEG_SOI) and data.rfind(b"\xff\xd9") < data.rfind(b"\xff\xda"):
        raise ImageError(f"{name}: truncated JPEG (no end-of-image marker after the image data)")
    if data.startswith(_PNG_SIGNATURE) and b"IEND" not in data[-64:]:
        raise ImageError(f"{name}: truncated PNG (no IEND chunk)")


def _decode_flag(size: tuple[int, int] | None, max_side: int) -> int:
    if size is None:
        return cv2.IMREAD_COLOR
    longer = max(size)
    for factor, flag in _REDUCED:  # the strongest reduction that keeps 3/4 of max_side
        if longer // factor >= max_side * 3 // 4:
            return flag
    return cv2.IMREAD_COLOR


def _imdecode(data: bytes, name: str, flag: int) -> np.ndarray:
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error as exc:
        raise ImageError(f"{name}: cannot decode: {exc.err or exc}") from exc
    if image is None or image.size == 0:
        raise ImageError(f"{name}: not a readable image (unknown format or corrupt data)")
    if image.ndim == 2:  # some codecs ignore IMREAD_COLOR for odd inputs
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return image


def _fit(image: np.ndarray, max_side: int) -> np.ndarray:
    height, width = image.shape[:2]
    longer = max(height, width)
    if longer <= max_side:
        return image
    scale = max_side / longer
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
