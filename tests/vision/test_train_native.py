"""The native-resolution segmenter: steps, export, tiled inference and the grader on generated tiles."""

from __future__ import annotations

import csv
import json

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")

from reman.cli import cli  # noqa: E402
from tests.vision.photo_sets import mask_pairs, surface  # noqa: E402
from vision.card import read_card  # noqa: E402
from vision.grader import Grader  # noqa: E402
from vision.tiling import tile_origins, tiled_probabilities  # noqa: E402
from vision.training import segment_native  # noqa: E402
from vision.training.fit_photos import TrainSettings  # noqa: E402
from vision.training.nets import WithActivation  # noqa: E402
from vision.training.onnx_weights import export_onnx  # noqa: E402

STEPS = 3
TRAIN = ["--steps", str(STEPS), "--size", "64", "--batch-size", "4", "--threads", "2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A model trained for three steps by `reman train --task segment --steps 3`."""
    root = tmp_path_factory.mktemp("native")
    data = mask_pairs(root / "data", size=80)
    model = root / "seg.onnx"
    result = CliRunner().invoke(
        cli, ["train", "--task", "segment", "--data", str(data), "--out", str(model), *TRAIN]
    )
    assert result.exit_code == 0, result.output
    return model


@pytest.fixture(scope="module")
def net():
    """A fresh network (pretrained encoder, untrained decoder) in eval mode."""
    torch.manual_seed(0)
    return segment_native.NativeSegNet(num_classes=1, decoder_width=16).eval()


def test_the_training_runs_the_steps_asked_for(trained):
    report = json.loads(trained.with_suffix(".metrics.json").read_text())
    assert report["history"][-1]["step"] == STEPS
    assert report["settings"]["steps"] == STEPS
    assert "validation_defective" in report


def test_the_curves_have_a_row_per_step_and_the_held_out_figures_on_the_last(trained):
    with open(trained.with_suffix(".curves.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == list(range(1, STEPS + 1))
    assert list(rows[0]) == ["step", "loss", "lr", "val_mean_iou", "val_defect_accuracy"]
    assert all(r["loss"] and r["lr"] for r in rows)
    assert [bool(r["val_mean_iou"]) for r in rows] == [False] * (STEPS - 1) + [True]


def test_the_schedule_spans_exactly_the_steps(net):
    settings = TrainSettings(steps=7, lr=1e-3)
    optimiser, schedule = segment_native.optimisation(
        net, settings, segment_native.NativeSettings(), 7
    )
    assert schedule.total_steps == 7
    peak = [group["max_lr"] for group in optimiser.param_groups]
    assert peak == pytest.approx([1e-3 * 0.3, 1e-3])


def test_the_card_asks_for_tiles_at_native_resolution(trained):
    card = read_card(trained)
    assert card.tile_overlap_px == 32 and card.input_size == (320, 320)
    assert card.classes == ["part", "coating_damage"] and (card.mean, card.std) == (
        [0.0] * 3,
        [1.0] * 3,
    )


def test_the_grader_keeps_the_photographs_own_size(trained):
    rng = np.random.default_rng(3)
    image = cv2.resize(surface(rng, 96), (150, 100))  # not square, not a multiple of 32
    grader = Grader.load(trained, providers=["CPUExecutionProvider"])
    view = grader.grade(image)
    assert view.masks["coating_damage"].shape == (100, 150)
    assert 0.0 <= view.defects["coating_damage"].area_pct <= 100.0


def test_onnx_matches_torch_at_any_multiple_of_32(net, tmp_path):
    card = read_card_for_export()
    data = export_onnx(
        net, "part_sigmoid", 64, card, {"name": "x", "params": {}}, dynamic_size=True
    )
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, 96, 160), dtype=np.float32)
    (onnx_probs,) = session.run(None, {"image": x})
    with torch.no_grad():
        torch_probs = WithActivation(net, "part_sigmoid")(torch.from_numpy(x)).numpy()
    assert onnx_probs.shape == (1, 2, 96, 160)
    np.testing.assert_allclose(onnx_probs, torch_probs, atol=1e-4)


def test_tiled_inference_matches_whole_image_inference(net):
    image = cv2.cvtColor(surface(np.random.default_rng(1), 192), cv2.COLOR_BGR2RGB)
    cv2.circle(image, (60, 120), 9, (40, 40, 40), -1)
    x = image[:, :160].transpose(2, 0, 1)[None].astype(np.float32) / 255.0  # 192 x 160

    def run(tile: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return torch.sigmoid(net(torch.from_numpy(tile))).numpy()

    whole = run(x)
    tiled = tiled_probabilities(run, x, (96, 96), overlap_px=64)
    assert tiled.shape == whole.shape
    assert float(np.abs(tiled - whole).mean()) < 0.01
    assert float(np.abs(tiled - whole).max()) < 0.1


def test_tiles_cover_the_side_and_end_at_its_edge():
    assert tile_origins(100, 64, 16) == [0, 36]
    assert tile_origins(64, 64, 16) == [0]
    assert tile_origins(200, 64, 16) == [0, 48, 96, 136]


def test_crops_near_defects_hold_defect_pixels():
    rng = np.random.default_rng(0)
    mask = np.zeros((300, 200), np.uint8)
    mask[250:253, 20:24] = 1  # 12 pixels of 60,000: 0.02 %
    photos = segment_native.Photos([np.zeros((300, 200, 3), np.uint8)], [mask])
    _, masks = segment_native.draw_crops(photos, 20, 64, defect_share=1.0, rng=rng)
    assert all(m.any() for m in masks)


def test_steps_are_refused_for_classification(tmp_path):
    result = CliRunner().invoke(
        cli,
        ["train", "--task", "classify", "--data", str(tmp_path), "--out", "m.onnx"]
        + ["--steps", "5"],
    )
    assert result.exit_code != 0


def test_the_steps_option_has_help():
    result = CliRunner().invoke(cli, ["train", "--help"])
    assert "--steps" in result.output and "optimisation" in result.output


def read_card_for_export():
    from vision.card import ModelCard

    return ModelCard(
        name="t",
        version="1",
        task="segmentation",
        input_name="image",
        input_size=(64, 64),
        tile_overlap_px=16,
        output_names=["probs"],
        classes=["part", "coating_damage"],
        output_activation="sigmoid",
    )


def test_a_card_cannot_overlap_tiles_by_a_whole_tile():
    from vision.card import card_problems

    card = read_card_for_export().model_copy(update={"tile_overlap_px": 64})
    assert any("tile_overlap_px 64" in problem for problem in card_problems(card))
    assert not card_problems(read_card_for_export())
