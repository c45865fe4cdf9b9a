"""Reading camera and file images as 8-bit BGR, with clear errors for anything unusable.

`read_image(path)` and `decode_image(data, name)` always return an (H, W, 3) uint8 BGR array:
grayscale is expanded to three channels, alpha is dropped, 16-bit is scaled to 8-bit (OpenCV's
IMREAD_COLOR does all three). Images whose longer side exceeds `max_side` are decoded reduced
(JPEG decodes at 1/2, 1/4 or 1/8 scale inside libjpeg, so an 8000x6000 photo never needs its
full 144 MB) and then resized. Every failure is an ImageError naming the file and the problem.

Two rules keep a bad file from being graded as if it were a part:

- The pixel budget (`MAX_PIXELS`) is checked from the header before anything is decoded, for
  every format read (JPEG, PNG, TIFF, BMP, WebP); any other format is refused, since OpenCV
  would decode it without a size check.
- A JPEG whose decoder reports a warning (corrupt entropy data, a stray marker) is unreadable.
  OpenCV only prints libjpeg's warnings and returns the garbled image, so JPEGs are decoded by
  simplejpeg (libjpeg-turbo) in strict mode, which raises on them instead.
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import simplejpeg

from vision.errors import ImageError

MAX_SIDE = 2048
MAX_PIXELS = 250_000_000  # refuse decompression bombs before allocating anything

_JPEG_SOI = b"\xff\xd8"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*")
FORMATS = "JPEG, PNG, TIFF, BMP or WebP"  # what image_size reads; others are refused
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
    if size is None:
        raise ImageError(f"{name}: not a readable image (not {FORMATS}, or a broken header)")
    if size[0] * size[1] > MAX_PIXELS:
        raise ImageError(f"{name}: image too large ({size[1]}x{size[0]} pixels)")
    if data.startswith(_JPEG_SOI):
        image = _decode_jpeg(data, name, size, max_side)
    else:
        image = _imdecode(data, name, cv2.IMREAD_COLOR)
    return _fit(image, max_side)


def image_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) from the header of a JPEG, PNG, TIFF, BMP or WebP without decoding;
    None for any other format or an unreadable header."""
    try:
        if data.startswith(_PNG_SIGNATURE) and len(data) >= 24:
            width, height = struct.unpack(">II", data[16:24])
            return height, width
        if data.startswith(_JPEG_SOI):
            return _jpeg_size(data)
        if data[:4] in _TIFF_MAGIC:
            return _tiff_size(data)
        if data.startswith(b"BM") and len(data) >= 26:
            width, height = struct.unpack("<ii", data[18:26])
            return abs(height), abs(width)  # a negative height is a top-down bitmap
        if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            return _webp_size(data)
    except struct.error:
        return None
    return None


def _tiff_size(data: bytes) -> tuple[int, int] | None:
    """The first image's size from a TIFF's first IFD (tags 256 ImageWidth, 257 ImageLength)."""
    order = "<" if data.startswith(b"II") else ">"
    (offset,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[offset : offset + 2])
    found: dict[int, int] = {}
    for i in range(count):
        entry = data[offset + 2 + 12 * i : offset + 14 + 12 * i]
        tag, kind = struct.unpack(order + "HH", entry[:4])
        if tag in (256, 257):
            fmt = {3: "H", 4: "I"}.get(kind)
            if fmt is None:
                return None
            found[tag] = struct.unpack(order + fmt, entry[8 : 8 + struct.calcsize(fmt)])[0]
    if 256 not in found or 257 not in found:
        return None
    return found[257], found[256]


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
        width, height = struct.unpack("<HH", data[26:30])
        return height & 0x3FFF, width & 0x3FFF
    if chunk == b"VP8L" and data[20:21] == b"\x2f":
        bits = int.from_bytes(data[21:25], "little")
        return ((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1
    if chunk == b"VP8X":
        width = int.from_bytes(data[24:27], "little") + 1
        height = int.from_bytes(data[27:30], "little") + 1
        return height, width
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


def _decode_jpeg(data: bytes, name: str, size: tuple[int, int], max_side: int) -> np.ndarray:
    """Decode strictly, reduced inside libjpeg-turbo when the image is larger than needed."""
    height, width = size
    keep = max_side * 3 // 4  # the strongest reduction that keeps 3/4 of max_side
    reduced = max(size) > max_side
    min_height, min_width = (keep, 1) if height >= width else (1, keep)
    kwargs = {"min_height": min_height, "min_width": min_width} if reduced else {}
    try:
        return simplejpeg.decode_jpeg(data, colorspace="BGR", strict=True, **kwargs)
    except ValueError as exc:
        problem = str(exc)
    try:
        simplejpeg.decode_jpeg(data, colorspace="BGR", strict=False, **kwargs)
    except ValueError:
        # Not a warning but something libjpeg-turbo cannot do here (CMYK, 12-bit): OpenCV's
        # own decoder may, and refuses what is corrupt beyond that.
        return _imdecode(data, name, _decode_flag(size, max_side))
    raise ImageError(f"{name}: corrupt JPEG data ({problem})")


def _decode_flag(size: tuple[int, int], max_side: int) -> int:
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
