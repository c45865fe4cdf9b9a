"""Raw frames for the label editor: the node's `frame` answers, checked and kept for a while.

    parse_frame(payload)         -> Frame, or ContractViolation saying why it was refused
    png_size(data)               -> (width, height) of a PNG, or ContractViolation
    png_painted(data)            -> whether a PNG mask has any non-zero pixel
    FrameCache(max_frames, max_bytes, retention_s)
                                 the latest frame per (station, inspection id, view), in memory

A frame is kept in memory, not on disk: it is a working copy of what the node's journal holds
(the system of record), asked for by one person who is about to label it. Writing up to 8 MB per
frame to a Pi's SD card would wear it and need a second retention policy; after a restart the
editor simply asks the node again. The cache is bounded by count and bytes, and a frame is
forgotten `retention_s` after it arrived, so a label is drawn over a frame the node still has.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import struct
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import simplejpeg

from edge.contract import DEFECT_TYPES, MAX_FRAME_BYTES, ContractViolation, FrameReply, parse_json

log = logging.getLogger("reman.gateway.frames")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
FrameKey = tuple[str, str, int]
"""(station, inspection id, view)."""


@dataclass(frozen=True)
class Frame:
    """One checked `frame` answer: the raw JPEG and the model's masks as bytes, or an error."""

    station: str
    id: str
    view: int
    ts: str
    command_id: str | None = None
    width: int | None = None
    height: int | None = None
    image: bytes | None = None
    masks: dict[str, bytes] = field(default_factory=dict)
    model: str | None = None
    error: str | None = None

    @property
    def key(self) -> FrameKey:
        """Where the cache keeps it."""
        return (self.station, self.id, self.view)

    @property
    def nbytes(self) -> int:
        """Bytes it holds."""
        return len(self.image or b"") + sum(len(m) for m in self.masks.values())


def decode_base64(text: str, what: str) -> bytes:
    """Strict base64 (no stray characters); ContractViolation naming `what` when it is not."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ContractViolation(f"{what}: not base64: {exc}") from exc


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; ContractViolation when it is not a PNG."""
    if not data.startswith(PNG_SIGNATURE) or len(data) < 33 or data[12:16] != b"IHDR":
        raise ContractViolation("not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    if binascii.crc32(data[12:29]) != struct.unpack(">I", data[29:33])[0]:
        raise ContractViolation("PNG header is corrupt (CRC)")
    return width, height


_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # by PNG colour type
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)


def png_painted(data: bytes) -> bool:
    """Whether a PNG has any non-zero pixel (any channel); ContractViolation when its image data
    cannot be read. Every PNG row filter maps an all-zero image to all-zero bytes and nothing
    else to them, so the filtered rows need no unfiltering."""
    width, height = png_size(data)
    depth, colour, interlace = data[24], data[25], data[28]
    if colour not in _CHANNELS or interlace not in (0, 1):
        raise ContractViolation("PNG of an unknown colour type")
    bits = _CHANNELS[colour] * depth
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    rows = [
        (-(-(width - x0) // dx) * bits + 7) // 8 + 1
        for x0, y0, dx, dy in passes
        if width > x0 and height > y0
        for _ in range(-(-(height - y0) // dy))
    ]
    pixels = _png_image_data(data, limit=sum(rows))
    if len(pixels) < sum(rows):
        raise ContractViolation("PNG image data is shorter than its size")
    at = 0
    for length in rows:
        if any(pixels[at + 1 : at + length]):
            return True
        at += length
    return False


def _png_image_data(data: bytes, limit: int) -> bytes:
    chunks, at = [], 8
    while at + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[at : at + 8])
        if kind == b"IDAT":
            chunks.append(data[at + 8 : at + 8 + length])
        at += 12 + length
    try:
        # bounded: a small PNG must not inflate to more than its stated size allows
        return zlib.decompressobj().decompress(b"".join(chunks), limit)
    except zlib.error as exc:
        raise ContractViolation(f"PNG image data is corrupt: {exc}") from exc


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a JPEG; ContractViolation when it is not one."""
    if not data.startswith(JPEG_MAGIC):
        raise ContractViolation("not a JPEG")
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError as exc:
        raise ContractViolation(f"unreadable JPEG: {exc}") from exc
    return width, height


def parse_frame(payload: bytes) -> Frame:
    """A `frame` answer as a Frame: the contract's FrameReply, then its image and masks checked
    (a JPEG of the stated size, known defect types, PNGs of that size). An answer with `error`
    carries no image."""
    reply = parse_json(FrameReply, payload, max_bytes=MAX_FRAME_BYTES)
    head = Frame(reply.station, reply.id, reply.view, reply.ts, command_id=reply.command_id)
    if reply.error is not None:
        return dataclasses.replace(head, error=reply.error[:500])
    if reply.image is None or reply.width is None or reply.height is None:
        raise ContractViolation("a frame without `error` needs image, width and height")
    size = (reply.width, reply.height)
    image = decode_base64(reply.image, "image")
    if jpeg_size(image) != size:
        raise ContractViolation(f"image is {jpeg_size(image)}, not the stated {size}")
    masks = {name: _mask(name, text, size) for name, text in reply.masks.items()}
    return dataclasses.replace(
        head,
        width=reply.width,
        height=reply.height,
        image=image,
        masks=masks,
        model=reply.model,
    )


def _mask(name: str, text: str, size: tuple[int, int]) -> bytes:
    if name not in DEFECT_TYPES:
        raise ContractViolation(f"masks.{name}: not a defect type ({', '.join(DEFECT_TYPES)})")
    data = decode_base64(text, f"masks.{name}")
    try:
        found = png_size(data)
    except ContractViolation as exc:
        raise ContractViolation(f"masks.{name}: {exc}") from exc
    if found != size:
        raise ContractViolation(f"masks.{name}: {found[0]}x{found[1]}, not the frame's size")
    return data


@dataclass(frozen=True)
class Held:
    """A frame in the cache, with the cache's arrival number (higher is later)."""

    frame: Frame
    seq: int
    arrived: float


class FrameCache:
    """The latest frame per (station, inspection id, view), bounded; thread-safe (the ingest
    puts from paho's thread, the web handlers read)."""

    def __init__(
        self,
        max_frames: int = 32,
        max_bytes: int = 256_000_000,
        retention_s: float = 1800.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        self.retention_s = retention_s
        self._clock = clock
        self._lock = threading.Lock()
        self._held: OrderedDict[FrameKey, Held] = OrderedDict()
        self._refused: dict[str, tuple[int, str]] = {}
        self._seq = 0
        self._listeners: list[Callable[[], None]] = []

    def add_listener(self, listener: Callable[[], None]) -> None:
        """Call `listener()` after every frame or refusal is noted (in the ingest's thread)."""
        self._listeners.append(listener)

    @property
    def seq(self) -> int:
        """The arrival number of the latest frame or refusal (0 before any)."""
        with self._lock:
            return self._seq

    def put(self, frame: Frame) -> None:
        """Keep `frame` as its view's latest; forget the oldest beyond the bounds."""
        with self._lock:
            self._seq += 1
            self._held.pop(frame.key, None)
            self._held[frame.key] = Held(frame, self._seq, self._clock())
            self._expire()
        self._notify()

    def refused(self, station: str, reason: str) -> None:
        """Note that a `frame` from `station` broke the contract (a waiting editor says so)."""
        with self._lock:
            self._seq += 1
            self._refused[station] = (self._seq, reason[:300])
        self._notify()

    def _notify(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:  # noqa: BLE001 - a listener must not stop the ingest
                log.exception("listener of frames failed")

    def get(self, key: FrameKey) -> Held | None:
        """The frame held for `key`, or None (never came, or forgotten)."""
        with self._lock:
            self._expire()
            return self._held.get(key)

    def refusal_after(self, station: str, seq: int) -> str | None:
        """Why the latest refused `frame` from `station` was refused, if it came after `seq`."""
        with self._lock:
            seen = self._refused.get(station)
            return seen[1] if seen and seen[0] > seq else None

    def _expire(self) -> None:
        cutoff = self._clock() - self.retention_s
        total = sum(h.frame.nbytes for h in self._held.values())
        while self._held:
            oldest = next(iter(self._held.values()))
            if (
                oldest.arrived > cutoff
                and len(self._held) <= self.max_frames
                and total <= self.max_bytes
            ):
                return
            total -= oldest.frame.nbytes
            self._held.popitem(last=False)
