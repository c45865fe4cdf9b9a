"""Datasets `reman train` cannot use: clear errors naming the files, no training, no traceback."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from reman.cli import cli
from tests.vision.photo_sets import class_folders, mask_pairs
from vision.errors import DatasetError
from vision.folders import detect_layout, load_pairs, scan_class_folders, scan_mask_pairs


def _train(task, data, out):
    return CliRunner().invoke(
        cli,
        [
            "train",
            "--task",
            task,
            "--data",
            str(data),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--size",
            "32",
        ],
    )


def _assert_refused(result, out, *names):
    assert result.exit_code != 0
    assert (
        "Traceback" not in result.output
        and result.exception is None
        or isinstance(result.exception, SystemExit)
    )
    for name in names:
        assert name in result.output, result.output
    assert not out.exists(), "training must not start"


def test_empty_class_folder(tmp_path):
    data = class_folders(tmp_path / "data", per_class=2, size=16)
    (data / "dent").mkdir()
    result = _train("classify", data, tmp_path / "m.onnx")
    _assert_refused(result, tmp_path / "m.onnx", "empty class folder", str(data / "dent"))


def test_one_class_only(tmp_path):
    data = class_folders(tmp_path / "data", per_class=2, size=16, classes=("spot",))
    result = _train("classify", data, tmp_path / "m.onnx")
    _assert_refused(result, tmp_path / "m.onnx", "at least two class folders", "spot")


def test_unreadable_images_are_all_named(tmp_path):
    data = class_folders(tmp_path / "data", per_class=2, size=16)
    (data / "spot" / "broken.jpg").write_bytes(b"not a jpeg")
    (data / "none" / "empty.png").write_bytes(b"")
    result = _train("classify", data, tmp_path / "m.onnx")
    _assert_refused(result, tmp_path / "m.onnx", "broken.jpg", "empty.png", "unreadable image")


def test_mask_size_differs_from_image(tmp_path):
    data = mask_pairs(tmp_path / "data", count=4, size=32)
    cv2.imwrite(str(data / "tile_2.png"), np.zeros((20, 30), np.uint8))
    result = _train("segment", data, tmp_path / "m.onnx")
    _assert_refused(result, tmp_path / "m.onnx", "tile_2.png", "30x20", "32x32")


def test_unreadable_mask_and_image_without_mask(tmp_path):
    data = mask_pairs(tmp_path / "data", count=4, size=32)
    (data / "tile_1.png").write_bytes(b"garbage")
    cv2.imwrite(str(data / "lonely.jpg"), np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(DatasetError, match="lonely.jpg"):
        scan_mask_pairs(data)
    (data / "lonely.jpg").unlink()
    with pytest.raises(DatasetError, match="unreadable mask.*tile_1.png"):
        load_pairs(scan_mask_pairs(data), 32)


def test_missing_folder_and_unknown_layout(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        scan_class_folders(tmp_path / "nowhere")
    assert detect_layout(tmp_path) == "unknown"
    result = CliRunner().invoke(
        cli, ["eval", "--model", str(tmp_path / "m.onnx"), "--data", str(tmp_path)]
    )
    assert result.exit_code != 0 and "Traceback" not in result.output


def test_unlabelled_folder_is_ignored(tmp_path):
    data = class_folders(
        tmp_path / "data", per_class=2, size=16, classes=("reuse", "recycle", "unlabelled")
    )
    assert scan_class_folders(data).classes == ["recycle", "reuse"]


def test_bad_size_and_label_map(tmp_path):
    data = class_folders(tmp_path / "data", per_class=2, size=16)
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--task",
            "classify",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "m.onnx"),
            "--size",
            "50",
        ],
    )
    _assert_refused(result, tmp_path / "m.onnx", "multiple of 8")
    mapping = tmp_path / "map.json"
    mapping.write_text('{"spot": {"defect": "dents", "grade": 2}}')
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--task",
            "classify",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "m.onnx"),
            "--label-map",
            str(mapping),
        ],
    )
    _assert_refused(result, tmp_path / "m.onnx", "dents")
