"""Camera sources: where an inspection's frames come from.

`open_camera(config, events)` builds one source from `edge.config.station.CameraConfig`:

| source      | class          | what it reads                                                |
|-------------|----------------|--------------------------------------------------------------|
| `usb`       | VideoCamera    | an OpenCV `VideoCapture` on a device index                   |
| `url`       | VideoCamera    | an RTSP or HTTP stream                                        |
| `gstreamer` | VideoCamera    | a GStreamer pipeline (Pi CSI via libcamerasrc, Jetson)       |
| `folder`    | FolderCamera   | the images of a folder, replayed in name order (demos, tests) |
| `file`      | FileCamera     | one image, every time                                        |

Files are decoded by `vision.imageio` (grey, alpha and 16-bit become BGR uint8; truncated files
are refused). Every source is async-friendly: decoding and `VideoCapture.read` run on the camera's own
single-thread executor, so a stream that hangs never blocks the event loop nor the grading pool,
and a `VideoCapture` is only ever used by one thread. A source that fails raises `CameraError`
(an unreadable image file: `ImageUnreadable`, which names the file) and reports an `event`; the
next capture works again (a live camera is reopened with capped exponential backoff).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config.station import CameraConfig
from edge.contract.timefmt import utc_now
from edge.errors import CameraError, ImageUnreadable
from edge.events import Events
from vision.errors import ImageError
from vision.imageio import read_image as vision_read_image

STALE_GRABS_MAX = 8
BUFFERED_GRAB_S = 0.005  # a grab that returns faster than this handed over a queued frame
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})


@dataclass(frozen=True)
class Frame:
    """One captured view: a BGR uint8 image and where it came from."""

    image: np.ndarray
    name: str  # file name, or e.g. "usb:0#17" for the 17th frame of a live camera
    ts: str = field(default_factory=utc_now)
    path: str | None = None  # the file it was read from, for folder and file sources


# ---------------------------------------------------------------- decoding


def read_image(path: Path | str) -> np.ndarray:
    """Read an image file as BGR uint8 (vision.imageio); ImageUnreadable names the file and the problem."""
    try:
        return vision_read_image(path)
    except ImageError as exc:
        raise ImageUnreadable(path, _problem(exc, path)) from exc


def _problem(exc: Exception, path: Path | str) -> str:
    """The error's text without a leading repetition of the path."""
    text = str(exc)
    prefix = f"{path}: "
    return text[len(prefix) :] if text.startswith(prefix) else text


def as_bgr8(image: np.ndarray, name: Path | str = "frame") -> np.ndarray:
    """Grey, BGRA and 16-bit images as 3-channel BGR uint8."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        raise ImageUnreadable(name, f"unsupported pixel type {image.dtype}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 3:
        return image
    raise ImageUnreadable(name, f"unsupported image shape {image.shape}")


# ---------------------------------------------------------------- sources


class Camera:
    """Base of every source: an executor of its own, `capture()` and `close()`."""

    kind = "camera"

    def __init__(self, events: Events, executor: ThreadPoolExecutor | None = None):
        self.events = events
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"camera-{self.kind}"
        )

    @property
    def description(self) -> str:
        """What the source is, for logs and start-up messages."""
        return self.kind

    async def capture(self) -> Frame:
        """One frame; raise CameraError when none can be had."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._capture_sync)

    async def capture_views(self, count: int) -> list[Frame]:
        """`count` frames, one per view of the core."""
        return [await self.capture() for _ in range(count)]

    def _capture_sync(self) -> Frame:
        raise NotImplementedError

    async def open(self) -> None:
        """Check that the source can deliver (start-up check); raise CameraError if not."""

    async def close(self) -> None:
        """Release the source and its executor."""
        if self._own_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)


class FileCamera(Camera):
    """One image file, read on every capture (a fixed test piece)."""

    kind = "file"

    def __init__(
        self, path: Path | str, events: Events, executor: ThreadPoolExecutor | None = None
    ):
        super().__init__(events, executor)
        self.path = Path(path)

    @property
    def description(self) -> str:
        return f"file {self.path}"

    async def open(self) -> None:
        if not self.path.is_file():
            raise CameraError(f"camera file {self.path} does not exist")

    def _capture_sync(self) -> Frame:
        return _read_frame(self.path, self.events)


class FolderCamera(Camera):
    """The images of a folder in name order; from the start again at the end when `loop`.

    The folder is listed again whenever the replay starts over, so images added while the
    node runs are picked up. An unreadable file raises ImageUnreadable and is skipped by the
    next capture.
    """

    kind = "folder"

    def __init__(
        self,
        path: Path | str,
        events: Events,
        *,
        loop: bool = True,
        executor: ThreadPoolExecutor | None = None,
    ):
        super().__init__(events, executor)
        self.path = Path(path)
        self.loop = loop
        self._files: list[Path] = []
        self._next = 0
        self._rounds = 0

    @property
    def description(self) -> str:
        return f"folder {self.path} ({'loop' if self.loop else 'once'})"

    async def open(self) -> None:
        if not self.path.is_dir():
            raise CameraError(f"camera folder {self.path} does not exist")
        if not list_images(self.path):
            raise CameraError(
                f"camera folder {self.path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )

    def _capture_sync(self) -> Frame:
        return _read_frame(self._next_file(), self.events)

    def _next_file(self) -> Path:
        if self._next >= len(self._files):
            if self._rounds and not self.loop:
                raise CameraError(
                    f"camera folder {self.path}: every image has been replayed (loop is off)"
                )
            self._files = list_images(self.path)
            self._next, self._rounds = 0, self._rounds + 1
            if not self._files:
                raise CameraError(f"camera folder {self.path} holds no images")
        path = self._files[self._next]
        self._next += 1
        return path


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder`, sorted by name."""
    try:
        entries = sorted(folder.iterdir())
    except OSError as exc:
        raise CameraError(f"camera folder {folder}: {exc.strerror or exc}") from exc
    return [p for p in entries if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]


def _read_frame(path: Path, events: Events) -> Frame:
    try:
        image = read_image(path)
    except ImageUnreadable as exc:
        events.warning(
            "image_unreadable",
            f"image {path.name} could not be read: {exc.problem}",
            path=str(path),
            problem=exc.problem,
        )
        raise
    return Frame(image=image, name=path.name, path=str(path))


class VideoCamera(Camera):
    """A live camera through OpenCV's VideoCapture: USB index, stream URL or GStreamer pipeline.

    A failed open or read releases the capture, reports `camera_failed` and makes the capture
    fail; the next capture reopens it once the backoff delay has passed (doubling from
    `reopen_min_s` up to `reopen_max_s`, reset by a good frame). `camera_recovered` follows.
    """

    def __init__(
        self,
        config: CameraConfig,
        events: Events,
        *,
        executor: ThreadPoolExecutor | None = None,
        opener: Callable[[], Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.kind = config.source
        super().__init__(events, executor)
        self.config = config
        self._opener = opener or (lambda: open_capture(config))
        self._clock = clock
        self._capture: Any = None
        self._delay_s = config.reopen_min_s
        self._next_open = 0.0
        self._failed = False
        self._count = 0
        # Network streams and GStreamer pipelines queue frames; a USB camera (buffer size 1) and
        # a video file do not need the skipping.
        self._live_stream = config.source == "gstreamer" or (
            config.source == "url" and "://" in (config.url or "")
        )

    @property
    def description(self) -> str:
        return f"{self.kind} {source_label(self.config)}"

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._ensure_open)

    def _capture_sync(self) -> Frame:
        self._ensure_open()
        if self._live_stream:
            self._skip_buffered()
        ok, image = self._capture.read()
        if not ok or image is None or image.size == 0:
            self._fail("the camera returned no frame")
        self._recovered()
        self._count += 1
        return Frame(image=as_bgr8(image, self.description), name=f"{self.kind}:{self._count}")

    def _skip_buffered(self) -> None:
        """Drop frames a stream queued before the trigger, so the core of *now* is graded.

        A buffered frame is handed over at once; a fresh one takes about a frame interval. Grab
        until a grab has to wait (or STALE_GRABS_MAX frames are dropped).
        """
        for _ in range(STALE_GRABS_MAX):
            started = time.perf_counter()
            if not self._capture.grab() or time.perf_counter() - started > BUFFERED_GRAB_S:
                return

    def _ensure_open(self) -> None:
        if self._capture is not None:
            return
        now = self._clock()
        if now < self._next_open:
            raise CameraError(
                f"camera {self.description} is unavailable; reopening in {self._next_open - now:.1f} s"
            )
        capture = self._opener()
        if capture is None or not capture.isOpened():
            if capture is not None:
                capture.release()
            self._fail("the camera could not be opened")
        self._capture = capture

    def _fail(self, problem: str) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
        retry_s = self._delay_s
        self._next_open = self._clock() + retry_s
        self._delay_s = min(self._delay_s * 2, self.config.reopen_max_s)
        self._failed = True
        self.events.warning(
            "camera_failed",
            f"camera {self.description}: {problem}; reopening in {retry_s:.1f} s",
            source=self.kind,
            retry_s=retry_s,
        )
        raise CameraError(f"camera {self.description}: {problem}")

    def _recovered(self) -> None:
        self._delay_s = self.config.reopen_min_s
        if self._failed:
            self._failed = False
            self.events.info(
                "camera_recovered",
                f"camera {self.description} delivers frames again",
                source=self.kind,
            )

    async def close(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._release)
        await super().close()

    def _release(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


def open_capture(config: CameraConfig) -> cv2.VideoCapture:
    """A VideoCapture for a usb, url or gstreamer source, with the configured frame size."""
    if config.source == "usb":
        capture = cv2.VideoCapture(config.device)
    else:
        url = config.url
        assert url is not None  # CameraConfig requires url for sources url and gstreamer
        if config.source == "gstreamer":
            capture = cv2.VideoCapture(url, cv2.CAP_GSTREAMER)
        else:
            capture = cv2.VideoCapture(url)
    if capture.isOpened():
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not one queued seconds ago
        if config.width:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, config.width)
        if config.height:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, config.height)
    return capture


def source_label(config: CameraConfig) -> str:
    """The source's address for messages, with any password in a URL hidden."""
    if config.source == "usb":
        return f"device {config.device}"
    if config.source in ("folder", "file"):
        return str(config.path)
    url = config.url or ""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


def open_camera(
    config: CameraConfig, events: Events, *, executor: ThreadPoolExecutor | None = None
) -> Camera:
    """The camera source the config describes (not yet opened: call `await camera.open()`)."""
    if config.source == "folder":
        return FolderCamera(config.path or ".", events, loop=config.loop, executor=executor)
    if config.source == "file":
        return FileCamera(config.path or "", events, executor=executor)
    return VideoCamera(config, events, executor=executor)
