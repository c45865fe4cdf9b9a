"""`reman train --task segment` on generated images with masks beside them, then grader and eval."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from reman.cli import cli
from tests.vision.photo_sets import class_folders, mask_pairs
from vision.card import read_card
from vision.folders import read_image
from vision.grader import Grader
from vision.training.onnx_weights import read_architecture

pytestmark = pytest.mark.slow

TRAIN = ["--epochs", "2", "--size", "32", "--batch-size", "4", "--threads", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A segmentation model trained for two epochs on 12 drawn tiles with binary masks."""
    root = tmp_path_factory.mktemp("segment")
    data = mask_pairs(root / "data")
    model = root / "seg.onnx"
    result = CliRunner().invoke(
        cli, ["train", "--task", "segment", "--data", str(data), "--out", str(model), *TRAIN]
    )
    assert result.exit_code == 0, result.output
    return data, model


def test_card_has_part_and_a_defect_type(trained):
    _, model = trained
    card = read_card(model)
    assert card.task == "segmentation" and card.classes == ["part", "coating_damage"]
    assert "12 images with masks" in card.training_data
    assert (
        model.with_suffix(".curves.png").is_file() and model.with_suffix(".metrics.json").is_file()
    )


def test_grader_grades_with_it(trained):
    data, model = trained
    view = Grader.load(model).grade(read_image(data / "tile_1.jpg")[..., ::-1].copy())
    assert set(view.defects) == {"coating_damage"}
    assert view.part_pct == 100.0  # no part mask in the data: the whole photograph is the part


def test_eval_reports_iou_dice_and_detection(trained):
    data, model = trained
    result = CliRunner().invoke(cli, ["eval", "--model", str(model), "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["task"] == "segmentation" and report["images"] == 12
    assert 0 <= report["iou"]["coating_damage"] <= 1 and 0 <= report["dice"]["coating_damage"] <= 1
    assert report["detection"]["with_defect"] == 6


def test_class_value_masks_with_label_map(tmp_path):
    data = mask_pairs(tmp_path / "data", count=6, value=1)
    mask = cv2.imread(str(data / "tile_3.png"), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(data / "tile_3.png"), np.where(mask > 0, 2, 0).astype(np.uint8))
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"1": "wear", "2": "corrosion"}))
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--task",
            "segment",
            "--data",
            str(data),
            "--out",
            str(out),
            "--label-map",
            str(mapping),
            "--epochs",
            "1",
            "--size",
            "32",
            "--batch-size",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert read_card(out).classes == ["part", "wear", "corrosion"]
    unmapped = CliRunner().invoke(
        cli,
        [
            "train",
            "--task",
            "segment",
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
    assert unmapped.exit_code != 0 and "--label-map" in unmapped.output


def test_fine_tunes_from_its_own_model(trained, tmp_path):
    data, model = trained
    out = tmp_path / "tuned.onnx"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--task",
            "segment",
            "--data",
            str(data),
            "--out",
            str(out),
            "--init",
            str(model),
            "--epochs",
            "1",
            "--size",
            "32",
            "--batch-size",
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    folders = class_folders(tmp_path / "folders", per_class=3, size=32, classes=("ok", "spot"))
    classify_init = CliRunner().invoke(
        cli,
        [
            "train",
            "--task",
            "classify",
            "--data",
            str(folders),
            "--out",
            str(out),
            "--init",
            str(model),
            "--epochs",
            "1",
            "--size",
            "32",
        ],
    )
    assert classify_init.exit_code != 0
    assert "mask_unet" in classify_init.output and "compact_cnn" in classify_init.output


def test_fine_tunes_from_the_shipped_reference_model(trained, tmp_path):
    data, _ = trained
    reference = Path(__file__).resolve().parents[2] / "models" / "reman-seg.onnx"
    out = tmp_path / "site.onnx"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--task",
            "segment",
            "--data",
            str(data),
            "--out",
            str(out),
            "--init",
            str(reference),
            "--epochs",
            "1",
            "--size",
            "32",
            "--batch-size",
            "4",
            "--lr",
            "1e-5",
            "--threads",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert read_card(out).classes == ["part", "coating_damage"]
    assert json.loads(out.with_suffix(".metrics.json").read_text())["init_fresh"] == []
    # The body and the coating_damage head row come from the reference, not a fresh start.
    _, ours = read_architecture(out)
    stored, theirs = read_architecture(reference)
    assert stored["name"] == "reman_segnet"
    for name in ("enc1.0.0.weight", "enc3.2.0.weight"):
        assert np.corrcoef(ours[name].ravel(), theirs[name].ravel())[0, 1] > 0.99
    row = read_card(reference).classes.index("coating_damage")
    assert (
        np.corrcoef(ours["head.2.weight"][0].ravel(), theirs["head.2.weight"][row].ravel())[0, 1]
        > 0.99
    )
    assert (
        Grader.load(out).grade(read_image(data / "tile_1.jpg")[..., ::-1].copy()).part_pct == 100.0
    )
