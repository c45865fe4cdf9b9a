"""`reman train --task classify` on a tiny generated image-folder set, then the grader and `reman eval`."""

from __future__ import annotations

import json

import cv2
import pytest
from click.testing import CliRunner

from reman.cli import cli
from tests.vision.photo_sets import class_folders, surface
from vision.card import read_card
from vision.grader import Grader

pytestmark = pytest.mark.slow

TRAIN = ["--epochs", "2", "--size", "32", "--batch-size", "8", "--threads", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One classifier trained for two epochs on 3 x 8 drawn images."""
    root = tmp_path_factory.mktemp("classify")
    data = class_folders(root / "data")
    model = root / "out" / "spots.onnx"
    result = CliRunner().invoke(
        cli, ["train", "--task", "classify", "--data", str(data), "--out", str(model), *TRAIN]
    )
    assert result.exit_code == 0, result.output
    return data, model, result


def test_writes_model_card_reports_and_drawings(trained):
    _, model, result = trained
    for suffix in (".onnx", ".card.json", ".metrics.json", ".curves.png", ".confusion.png"):
        assert model.with_suffix(suffix).is_file(), suffix
    assert cv2.imread(str(model.with_suffix(".confusion.png"))) is not None
    metrics = json.loads(model.with_suffix(".metrics.json").read_text())
    assert metrics["data"]["per_class"] == {"none": 8, "scratch": 8, "spot": 8}
    assert len(metrics["history"]) == 2
    assert "accuracy" in result.output


def test_card_maps_labels_to_defects_and_grades(trained):
    _, model, _ = trained
    card = read_card(model)
    assert card.task == "classification" and card.classes == ["none", "scratch", "spot"]
    assert card.label_map["none"].defect is None
    assert card.label_map["spot"].defect == "coating_damage" and card.label_map["spot"].grade == 3
    assert "24 images in 3 class folders" in card.training_data
    assert "val_accuracy" in card.metrics


def test_grader_uses_the_model_as_it_is(trained):
    _, model, _ = trained
    grader = Grader.load(model)
    view = grader.grade(surface(__import__("numpy").random.default_rng(5), 64))
    assert view.label in ("none", "scratch", "spot")
    assert set(view.defects) == {"wear", "corrosion", "coating_damage"}


def test_eval_reports_accuracy_per_class_and_detection(trained):
    data, model, _ = trained
    result = CliRunner().invoke(cli, ["eval", "--model", str(model), "--data", str(data), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["images"] == 24 and 0 <= report["accuracy"] <= 1
    assert set(report["per_class"]) == {"none", "scratch", "spot"}
    assert sum(map(sum, report["confusion"])) == 24
    assert report["detection"]["with_defect"] == 16 and report["detection"]["auroc"] is not None
    text = CliRunner().invoke(cli, ["eval", "--model", str(model), "--data", str(data)])
    assert "precision" in text.output and "AUROC" in text.output


def test_fine_tunes_from_its_own_model(trained, tmp_path):
    data, model, _ = trained
    tuned = tmp_path / "tuned.onnx"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--task",
            "classify",
            "--data",
            str(data),
            "--out",
            str(tuned),
            "--init",
            str(model),
            *TRAIN[:2],
            "--epochs",
            "1",
            "--size",
            "32",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(tuned.with_suffix(".metrics.json").read_text())["init_fresh"] == []


def test_fine_tuning_refuses_another_architecture(trained, tmp_path):
    data, model, _ = trained
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--task",
            "classify",
            "--data",
            str(data),
            "--out",
            str(tmp_path / "x.onnx"),
            "--init",
            str(model),
            "--width",
            "8",
            *TRAIN,
        ],
    )
    assert result.exit_code != 0
    assert "does not match" in result.output and "Traceback" not in result.output


def test_same_seed_same_model(tmp_path):
    data = class_folders(tmp_path / "data", per_class=4, size=32, classes=("ok", "spot"))
    outputs = []
    for run in ("a", "b"):
        out = tmp_path / f"{run}.onnx"
        result = CliRunner().invoke(
            cli,
            [
                "train",
                "--task",
                "classify",
                "--data",
                str(data),
                "--out",
                str(out),
                "--epochs",
                "1",
                "--size",
                "32",
                "--batch-size",
                "4",
                "--threads",
                "1",
            ],
        )
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(out.with_suffix(".metrics.json").read_text())["history"])
    assert outputs[0] == outputs[1]


def test_label_map_file_sets_defect_types(tmp_path):
    data = class_folders(tmp_path / "data", per_class=4, size=32, classes=("ok", "rust"))
    mapping = tmp_path / "map.json"
    mapping.write_text(json.dumps({"rust": {"defect": "corrosion", "grade": 4, "area_pct": 8.0}}))
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(
        cli,
        [
            "train",
            "--task",
            "classify",
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
            "4",
        ],
    )
    assert result.exit_code == 0, result.output
    card = read_card(out)
    assert card.label_map["rust"].defect == "corrosion" and card.label_map["ok"].defect is None
