"""Frames for the label editor: the node's `frame` answers checked, refused with a reason when
malformed, and kept per view in a bounded cache with retention."""

from __future__ import annotations

import json

import pytest

from edge.contract import MAX_FRAME_BYTES, ContractViolation
from edge.contract.broker import BrokerConfig
from gateway.frames import Frame, FrameCache, parse_frame, png_painted, png_size
from gateway.ingest import BatchWriter, MqttIngest, parse_message
from tests.gateway.frames import HEIGHT, WIDTH, b64, frame_reply, mask_png, photo_jpeg


def test_a_frame_is_decoded_with_its_masks():
    frame = parse_frame(frame_reply("st-1", "I1", "c1").encode())
    assert (frame.station, frame.id, frame.view, frame.command_id) == ("st-1", "I1", 1, "c1")
    assert frame.image == photo_jpeg() and (frame.width, frame.height) == (WIDTH, HEIGHT)
    assert png_size(frame.masks["corrosion"]) == (WIDTH, HEIGHT)
    assert frame.model == "seg-7" and frame.error is None


def test_an_answer_with_an_error_carries_no_image():
    payload = json.dumps(
        {"station": "st-1", "id": "I1", "ts": "2026-12-01T10:00:00Z", "error": "frame gone"}
    )
    frame = parse_frame(payload.encode())
    assert frame.error == "frame gone" and frame.image is None


@pytest.mark.parametrize(
    "over, why",
    [
        ({"masks": {"corrosion": b64(mask_png(None, (100, 100)))}}, "not the frame's size"),
        ({"masks": {"rust": b64(mask_png(None))}}, "not a defect type"),
        ({"masks": {"wear": b64(photo_jpeg())}}, "masks.wear: not a PNG"),
        ({"masks": {"wear": "not base64!"}}, "masks.wear: not base64"),
        ({"image": b64(mask_png(None))}, "not a JPEG"),
        ({"width": WIDTH + 1}, "not the stated"),
        ({"image": None}, "needs image, width and height"),
    ],
)
def test_a_malformed_frame_is_refused_with_a_reason(over, why):
    with pytest.raises(ContractViolation, match=why):
        parse_frame(frame_reply("st-1", "I1", "c1", **over).encode())


def test_a_frame_over_the_contract_limit_is_refused():
    with pytest.raises(ContractViolation, match="exceeds"):
        parse_frame(b"{" + b" " * MAX_FRAME_BYTES + b"}")


def test_a_frame_on_another_station_topic_is_refused():
    with pytest.raises(ContractViolation, match="names station 'st-2'"):
        parse_message("reman/st-1/frame", frame_reply("st-2", "I1", "c1").encode())
    assert parse_message("reman/st-1/frame", frame_reply("st-1", "I1", "c1").encode()).kind == (
        "frame"
    )


def _frame(rid: str, view: int = 1, size: int = 10) -> Frame:
    return Frame("st-1", rid, view, "2026-12-01T10:00:00Z", image=b"\xff" * size)


def test_the_cache_keeps_the_latest_frame_per_view_within_its_bounds():
    now = [0.0]
    cache = FrameCache(max_frames=2, max_bytes=25, retention_s=60, clock=lambda: now[0])
    cache.put(_frame("I1"))
    cache.put(_frame("I1", view=2))
    cache.put(Frame("st-1", "I1", 1, "2026-12-01T10:00:01Z", image=b"\xfe"))
    assert cache.get(("st-1", "I1", 1)).frame.image == b"\xfe"  # the latest answer wins
    cache.put(_frame("I2"))  # three frames: the oldest (I1 view 2) goes
    assert cache.get(("st-1", "I1", 2)) is None
    cache.put(_frame("I3", size=20))  # 31 bytes: over max_bytes, the oldest goes
    assert cache.get(("st-1", "I1", 1)) is None and cache.get(("st-1", "I3", 1))
    now[0] = 61.0
    assert cache.get(("st-1", "I3", 1)) is None  # retention


def test_a_malformed_frame_is_counted_noted_for_the_editor_and_ingest_goes_on(tmp_path, make_store):
    writer = BatchWriter(make_store(), tmp_path / "snaps")
    cache = FrameCache()
    ingest = MqttIngest(BrokerConfig(), writer, frames=cache)  # handle() needs no connection
    after = cache.seq
    bad = frame_reply("st-1", "I1", "c1", masks={"wear": b64(mask_png(None, (9, 9)))})
    ingest.handle("reman/st-1/frame", bad.encode())
    ingest.handle("reman/st-1/frame", b"\x00garbage")
    assert "not the frame's size" not in (cache.refusal_after("st-1", after) or "x")
    assert "not JSON" in cache.refusal_after("st-1", after)
    ingest.handle("reman/st-1/frame", frame_reply("st-1", "I1", "c1").encode())
    assert ingest.counters.snapshot()["malformed"] == {"frame": 2}
    assert ingest.counters.snapshot()["received"] == {"frame": 1}
    held = cache.get(("st-1", "I1", 1))
    assert held is not None and held.frame.command_id == "c1"


@pytest.mark.parametrize("channels", [None, 3, 4])
def test_png_painted_finds_one_non_zero_pixel_anywhere(channels):
    import cv2
    import numpy as np

    shape = (HEIGHT, WIDTH) if channels is None else (HEIGHT, WIDTH, channels)

    def png(img) -> bytes:
        return cv2.imencode(".png", img)[1].tobytes()

    blank = np.zeros(shape, np.uint8)
    assert not png_painted(png(blank))
    for y, x in ((0, 0), (HEIGHT // 2, WIDTH // 3), (HEIGHT - 1, WIDTH - 1)):
        one = blank.copy()
        one[y, x] = 1
        assert png_painted(png(one)), (y, x)


def test_png_painted_refuses_cut_image_data():
    with pytest.raises(ContractViolation, match="shorter|corrupt"):
        png_painted(mask_png(None)[:60])


def test_the_node_answer_to_frame_get_is_accepted_as_it_publishes_it():
    from edge.contract import FrameRequest
    from edge.station.frames import DrawnFrame, frame_reply, refused_reply

    request = FrameRequest(id="I1", view=1, user="erin", command_id="c7")
    drawn = DrawnFrame(photo_jpeg(), WIDTH, HEIGHT, {"corrosion": mask_png((1, 1, 5, 5))})
    reply = frame_reply(request, "st-1", drawn, "seg-7").model_dump_json(by_alias=True)
    frame = parse_frame(reply.encode())
    assert frame.command_id == "c7" and png_painted(frame.masks["corrosion"])
    refused = refused_reply(request, "st-1", "the raw frame of view 1 is gone with retention")
    assert "gone" in parse_frame(refused.model_dump_json(by_alias=True).encode()).error


def test_raw_views_count_the_raw_frames_not_their_overlays():
    from gateway.labels import raw_views

    names = ["2026-12-01/00000007-v1.jpg", "2026-12-01/00000007-v1-overlay.jpg"]
    assert raw_views(names) == [1]
    assert raw_views([*names, "2026-12-01/00000007-v2.jpg"]) == [1, 2]
    assert raw_views([]) == [1]
