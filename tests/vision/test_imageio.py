"""Reading images: every unusable file gets an ImageError naming it; odd formats become BGR uint8."""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import pytest

from vision.errors import ImageError
from vision.imageio import decode_image, image_size, read_image


def _encode(image: np.ndarray, ext: str) -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


@pytest.fixture
def photo() -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 255, (120, 160, 3), dtype=np.uint8)


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match=r"nope\.jpg: no such file"):
        read_image(tmp_path / "nope.jpg")


def test_directory(tmp_path):
    with pytest.raises(ImageError, match=r"is a directory"):
        read_image(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match=r"empty\.jpg: empty file"):
        read_image(path)


@pytest.mark.parametrize("ext,kind", [(".jpg", "JPEG"), (".png", "PNG")])
def test_truncated_file(tmp_path, photo, ext, kind):
    data = _encode(photo, ext)
    path = tmp_path / f"cut{ext}"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match=rf"cut\{ext}: truncated {kind}"):
        read_image(path)


def test_non_image_file(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("station 3 shift notes\n")
    with pytest.raises(ImageError, match=r"notes\.jpg: not a readable image"):
        read_image(path)


def test_jpeg_header_garbage_after_marker(tmp_path):
    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0" + b"\x00" * 200)
    with pytest.raises(ImageError, match=r"broken\.jpg"):
        read_image(path)


def test_colour_jpeg_reads_as_bgr(tmp_path, photo):
    path = tmp_path / "ok.png"
    path.write_bytes(_encode(photo, ".png"))
    image = read_image(path)
    assert image.dtype == np.uint8 and image.shape == (120, 160, 3)
    assert np.array_equal(image, photo)


def test_grayscale_becomes_three_channels(photo):
    gray = photo[:, :, 0]
    image = decode_image(_encode(gray, ".png"), "gray.png")
    assert image.shape == (120, 160, 3)
    assert np.array_equal(image[:, :, 1], gray)


def test_rgba_drops_alpha(photo):
    rgba = np.dstack([photo, np.full(photo.shape[:2], 7, np.uint8)])
    image = decode_image(_encode(rgba, ".png"), "rgba.png")
    assert image.shape == (120, 160, 3)
    assert np.array_equal(image, photo)


def test_16_bit_is_scaled_to_8_bit():
    deep = np.full((40, 50, 3), 65535, np.uint16)
    deep[:20] = 32896  # 128 * 257
    image = decode_image(_encode(deep, ".png"), "deep.png")
    assert image.dtype == np.uint8
    assert image[0, 0, 0] == 128 and image[-1, -1, 0] == 255


def test_huge_jpeg_is_decoded_reduced_without_full_size_memory():
    big = np.zeros((6000, 8000, 3), np.uint8)
    big[::40] = 200
    data = _encode(big, ".jpg")
    del big
    assert image_size(data) == (6000, 8000)
    tracemalloc.start()
    try:
        image = decode_image(data, "big.jpg")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert image.shape == (1500, 2000, 3)
    assert peak < 40_000_000  # the full decode would need 144 MB


def test_max_side_is_honoured(photo):
    image = decode_image(_encode(photo, ".png"), "p.png", max_side=80)
    assert image.shape == (60, 80, 3)


def test_a_jpeg_with_corrupt_entropy_data_is_unreadable(photo):
    """OpenCV prints libjpeg's warning and hands back a garbled image; we refuse it."""
    data = bytearray(_encode(photo, ".jpg"))
    start = data.find(b"\xff\xda") + 600
    data[start : start + 200] = np.random.default_rng(0).integers(0, 256, 200, np.uint8).tobytes()
    assert cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_COLOR) is not None
    with pytest.raises(ImageError, match=r"core\.jpg: corrupt JPEG data \(Corrupt JPEG data"):
        decode_image(bytes(data), "core.jpg")


@pytest.mark.parametrize("suffix", [".tif", ".bmp", ".webp", ".png", ".jpg"])
def test_every_format_read_has_its_size_checked_from_the_header(suffix):
    image = np.zeros((37, 53, 3), np.uint8)
    assert image_size(_encode(image, suffix)) == (37, 53)
    assert decode_image(_encode(image, suffix), f"x{suffix}").shape == (37, 53, 3)


def test_a_huge_tiff_is_refused_before_it_is_decoded(tmp_path):
    """A TIFF has no reduced decode: 16000x16000 would take 768 MB. The header says so first."""
    huge = np.zeros((16000, 16000), np.uint8)
    data = _encode(huge, ".tif")
    del huge
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match=r"huge\.tif: image too large \(16000x16000 pixels\)"):
            decode_image(data, "huge.tif")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5_000_000


def test_a_format_without_a_header_check_is_refused():
    ppm = _encode(np.zeros((8, 8, 3), np.uint8), ".ppm")
    assert cv2.imdecode(np.frombuffer(ppm, np.uint8), cv2.IMREAD_COLOR) is not None
    with pytest.raises(ImageError, match="not a readable image"):
        decode_image(ppm, "x.ppm")
