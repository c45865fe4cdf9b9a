"""Camera sources: folder replay, single file, corrupt files, a live source that fails and recovers."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.config.station import CameraConfig
from edge.errors import CameraError
from edge.station.camera import (
    FileCamera,
    FolderCamera,
    ImageUnreadable,
    VideoCamera,
    open_camera,
    read_image,
)
from tests.support.images import textured_image, write_images


async def test_folder_replays_in_name_order_and_loops(tmp_path, events):
    ev, _ = events
    write_images(tmp_path, 3)
    camera = open_camera(CameraConfig(source="folder", path=str(tmp_path)), ev)
    await camera.open()
    names = [(await camera.capture()).name for _ in range(5)]
    await camera.close()
    assert names == ["000.png", "001.png", "002.png", "000.png", "001.png"]


async def test_folder_without_loop_ends_with_a_clear_error(tmp_path, events):
    ev, _ = events
    write_images(tmp_path, 2)
    camera = FolderCamera(tmp_path, ev, loop=False)
    frames = await camera.capture_views(2)
    assert [f.name for f in frames] == ["000.png", "001.png"]
    with pytest.raises(CameraError, match="every image has been replayed"):
        await camera.capture()
    await camera.close()


async def test_corrupt_image_names_the_file_reports_an_event_and_the_next_capture_works(
    tmp_path, events
):
    ev, seen = events
    write_images(tmp_path, 2)
    (tmp_path / "000b.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    camera = FolderCamera(tmp_path, ev)
    assert (await camera.capture()).name == "000.png"
    with pytest.raises(ImageUnreadable, match="000b.jpg") as info:
        await camera.capture()
    assert isinstance(info.value, CameraError)
    assert [e.code for e in seen] == ["image_unreadable"]
    assert seen[0].detail["path"].endswith("000b.jpg")
    frame = await camera.capture()
    assert frame.name == "001.png" and frame.image.dtype == np.uint8 and frame.image.shape[2] == 3
    await camera.close()


async def test_folder_start_up_check_refuses_a_missing_or_empty_folder(tmp_path, events):
    ev, _ = events
    with pytest.raises(CameraError, match="does not exist"):
        await FolderCamera(tmp_path / "nope", ev).open()
    with pytest.raises(CameraError, match="holds no images"):
        await FolderCamera(tmp_path, ev).open()


async def test_file_camera_reads_the_same_file_every_time(tmp_path, events):
    ev, _ = events
    [path] = write_images(tmp_path, 1)
    camera = open_camera(CameraConfig(source="file", path=str(path)), ev)
    assert isinstance(camera, FileCamera)
    await camera.open()
    first, second = await camera.capture_views(2)
    assert first.name == second.name == "000.png"
    assert np.array_equal(first.image, second.image)
    await camera.close()


@pytest.mark.parametrize(
    "content,problem", [(b"", "empty"), (b"GIF89a garbage", "not a readable image")]
)
def test_read_image_names_the_file_and_the_problem(tmp_path, content, problem):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageUnreadable, match=problem) as info:
        read_image(path)
    assert "bad.png" in str(info.value)


def test_grey_and_16_bit_images_become_bgr8(tmp_path):
    grey = textured_image()[..., 0].astype(np.uint16) * 256
    cv2.imwrite(str(tmp_path / "g16.png"), grey)
    image = read_image(tmp_path / "g16.png")
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3


def _video(path, frames: int) -> str:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for i in range(frames):
        writer.write(np.full((48, 64, 3), 40 + i * 40, np.uint8))
    writer.release()
    return str(path)


class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_live_source_that_fails_is_reopened_with_capped_backoff(tmp_path, events):
    """A video file through VideoCapture stands in for a stream that ends and comes back."""
    ev, seen = events
    url = _video(tmp_path / "stream.avi", 2)
    clock = _Clock()
    config = CameraConfig(source="url", url=url, reopen_min_s=1, reopen_max_s=3)
    camera = VideoCamera(config, ev, clock=clock)
    await camera.open()
    assert [f.name for f in await camera.capture_views(2)] == ["url:1", "url:2"]
    delays = []
    for _ in range(3):  # the stream has ended: each reopen reaches the end at once
        with pytest.raises(CameraError, match="no frame|could not be opened"):
            await camera.capture()
        delays.append(seen[-1].detail["retry_s"])
        with pytest.raises(CameraError, match="unavailable; reopening"):
            await camera.capture()
        clock.now += delays[-1]
        if len(delays) == 1:
            (tmp_path / "stream.avi").unlink()  # now the source is gone entirely
    assert delays == [1.0, 2.0, 3.0]
    assert {e.code for e in seen} == {"camera_failed"}
    _video(tmp_path / "stream.avi", 1)  # the source is back
    clock.now += 10
    assert (await camera.capture()).image.shape == (48, 64, 3)
    assert seen[-1].code == "camera_recovered"
    await camera.close()


def test_a_password_in_a_stream_url_stays_out_of_messages():
    from edge.station.camera import source_label

    config = CameraConfig(source="url", url="rtsp://admin:secret@10.0.0.5:554/stream1")
    assert source_label(config) == "rtsp://***@10.0.0.5:554/stream1"


async def test_a_stream_hands_over_the_frame_of_now_not_a_queued_one(tmp_path, events):
    """A file:// URL stands in for a stream whose frames queued up before the trigger."""
    ev, _ = events
    writer = cv2.VideoWriter(
        str(tmp_path / "queued.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48)
    )
    for i in range(12):
        writer.write(np.full((48, 64, 3), i * 20, np.uint8))
    writer.release()
    camera = VideoCamera(CameraConfig(source="url", url=f"file://{tmp_path / 'queued.avi'}"), ev)
    frame = await camera.capture()
    await camera.close()
    assert frame.image.mean() > 10, "the oldest queued frame (index 0) was handed over"
