"""`reman grade` and `reman eval` as a user runs them: JSON lines, clean errors, exit codes."""

from __future__ import annotations

import json

import cv2
import pytest
from click.testing import CliRunner

from reman.cli import cli
from tests.vision.toy_models import RED, colour_segmenter, painted, segmentation_card
from vision.synth import write_dataset

DEFECT_KEYS = {"wear", "corrosion", "coating_damage"}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return colour_segmenter(tmp_path_factory.mktemp("model") / "seg.onnx")


@pytest.fixture
def images(tmp_path):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), painted(patches=[(RED, (8, 20, 8, 56))]))
    clean = tmp_path / "clean.jpg"
    cv2.imwrite(str(clean), painted())
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "readme.png"
    text.write_text("not an image")
    return {
        "good": good,
        "clean": clean,
        "empty": empty,
        "text": text,
        "missing": tmp_path / "gone.jpg",
    }


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def test_grade_json_lines(model, images):
    result = run("grade", images["good"], images["clean"], "--model", model, "--json")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["image"] for line in lines] == [str(images["good"]), str(images["clean"])]
    for line in lines:
        assert set(line) == {"image", "defects"}
        assert set(line["defects"]) == DEFECT_KEYS
        for figures in line["defects"].values():
            assert set(figures) == {"area_pct", "grade", "confidence"}
    assert lines[0]["defects"]["corrosion"] == {"area_pct": 25.0, "grade": 4, "confidence": 1.0}


def test_bad_images_are_reported_and_the_rest_graded(model, images, tmp_path):
    args = [images["empty"], images["good"], images["missing"], images["text"], images["clean"]]
    result = run("grade", *args, "--model", model, "--json", "--overlay-dir", tmp_path / "overlays")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    graded = [json.loads(line)["image"] for line in result.stdout.splitlines()]
    assert graded == [str(images["good"]), str(images["clean"])]
    errors = result.stderr.splitlines()
    assert f"error: {images['empty']}: empty file (0 bytes)" in errors
    assert f"error: {images['missing']}: no such file" in errors
    assert any(line.startswith(f"error: {images['text']}: not a readable image") for line in errors)
    assert errors[-1] == "3 of 5 image(s) could not be graded"
    assert sorted(p.name for p in (tmp_path / "overlays").iterdir()) == [
        "clean.overlay.jpg",
        "good.overlay.jpg",
    ]


def test_grade_text_output(model, images):
    result = run("grade", images["good"], "--model", model, "--corrosion-table", "astm-d610")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"{images['good']}: ")
    assert "corrosion D610 2 25.00% (confidence 1.00)" in result.stdout


def test_mismatched_model_is_a_clean_error(tmp_path, images):
    bad = colour_segmenter(tmp_path / "bad.onnx", segmentation_card(output_names=["masks"]))
    result = run("grade", images["good"], "--model", bad)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "output names: card says ['masks'], graph has ['probs']" in result.stderr


def test_nan_output_names_file_and_model(tmp_path, images):
    nan_model = colour_segmenter(tmp_path / "nan.onnx", nan=True)
    result = run("grade", images["good"], "--model", nan_model, "--json")
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert f"error: {images['good']}: toy-seg" in result.stderr
    assert "contains NaN or infinite values" in result.stderr


def test_eval_json_shape(model, tmp_path):
    write_dataset(tmp_path / "set", count=3, seed=900)
    result = run("eval", "--model", model, "--data", tmp_path / "set", "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert set(figures) == {
        "images",
        "iou",
        "mean_iou",
        "grade_exact",
        "grade_within_one",
        "confusion",
    }
    assert figures["images"] == 3
    assert set(figures["iou"]) == {"part", *DEFECT_KEYS}
    assert 0 <= figures["grade_exact"] <= figures["grade_within_one"] <= 1
    assert set(figures["confusion"]) == DEFECT_KEYS
    total = sum(n for row in figures["confusion"]["wear"].values() for n in row.values())
    assert total == 3


def test_eval_without_labels_is_a_clean_error(model, tmp_path):
    result = run("eval", "--model", model, "--data", tmp_path)
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "no labels.jsonl" in result.stderr


# ---------------------------------------------------------------- with the shipped model


@pytest.fixture(scope="module")
def synth_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    write_dataset(out, count=6, seed=50000)  # unseen seeds; 50003 is heavily corroded
    return out


def test_grade_with_the_shipped_model(synth_set, tmp_path):
    images = sorted((synth_set / "images").iterdir())
    result = run("grade", *images, "--json", "--overlay-dir", tmp_path)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["image"] for line in lines] == [str(p) for p in images]
    assert all(set(line["defects"]) == DEFECT_KEYS for line in lines)
    labels = [json.loads(line) for line in (synth_set / "labels.jsonl").read_text().splitlines()]
    heavy = lines[3]["defects"]["corrosion"]
    assert labels[3]["defects"]["corrosion"]["grade"] == 5 and heavy["grade"] >= 4
    assert len(list(tmp_path.glob("*.overlay.jpg"))) == len(images)


def test_eval_with_the_shipped_model(synth_set):
    result = run("eval", "--data", synth_set, "--json")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["images"] == 6
    assert set(figures["iou"]) == {"part", *DEFECT_KEYS}
    assert figures["iou"]["part"] > 0.8
    assert figures["mean_iou"] == pytest.approx(
        sum(figures["iou"][d] for d in DEFECT_KEYS) / 3, abs=1e-3
    )
    assert sum(n for row in figures["confusion"]["corrosion"].values() for n in row.values()) == 6
