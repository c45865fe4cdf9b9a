"""`reman train --task classify --backbone efficientnet-lite0`: a linear head on frozen pretrained
features, exported whole, graded by the node's grader as it is."""

from __future__ import annotations

import csv
import json

import numpy as np
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from reman.cli import cli
from tests.vision.photo_sets import class_folders, surface
from vision.card import read_card
from vision.grader import Grader

ARGS = ["--backbone", "efficientnet-lite0", "--size", "64", "--threads", "2"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("backbone")
    data = class_folders(root / "data")
    model = root / "out" / "spots.onnx"
    done = CliRunner().invoke(
        cli, ["train", "--task", "classify", "--data", str(data), "--out", str(model), *ARGS]
    )
    assert done.exit_code == 0, done.output
    return data, model


def test_the_model_and_its_card_come_out_like_any_classifier(trained):
    _, model = trained
    card = read_card(model)
    assert card.task == "classification" and card.classes == ["none", "scratch", "spot"]
    metrics = json.loads(model.with_suffix(".metrics.json").read_text())
    assert metrics["backbone"] == "efficientnet-lite0" and metrics["history"]
    assert model.with_suffix(".curves.png").is_file()
    view = Grader.load(model).grade(surface(np.random.default_rng(5), 64))
    assert view.label in card.classes


def test_the_curves_have_a_row_per_head_step_and_the_accuracy_on_the_last(trained):
    from vision.training.classify_backbone import HEAD_STEPS

    _, model = trained
    with open(model.with_suffix(".curves.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == list(range(1, HEAD_STEPS + 1))
    assert [bool(r["val_accuracy"]) for r in rows[-2:]] == [False, True]


def test_onnx_gives_what_the_torch_network_gives(trained, tmp_path):
    """The encoder, pooling, standardisation and head all travel in the one graph."""
    from vision.training.backbone import Encoder, load_efficientnet_lite0
    from vision.training.classify_backbone import BackboneClassifier

    _, model = trained
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(1).normal(size=(2, 3, 64, 64)).astype(np.float32)
    probs = session.run(None, {session.get_inputs()[0].name: x})[0]
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    # the same encoder with a zero head gives uniform probabilities: the head is what was learnt
    encoder = Encoder(load_efficientnet_lite0(), taps=(10, 15)).eval()
    with torch.no_grad():
        features = BackboneClassifier(encoder, torch.zeros(1), torch.ones(1), torch.nn.Linear(1, 1))
        assert features.features(torch.from_numpy(x)).shape == (2, 2 * (112 + 320))


@pytest.mark.parametrize(
    "extra,why",
    [
        (
            ["--task", "segment", "--backbone", "efficientnet-lite0"],
            "--backbone is for --task classify",
        ),
        (
            ["--task", "classify", "--backbone", "efficientnet-lite0", "--size", "48"],
            "multiple of 32",
        ),
    ],
)
def test_wrong_backbone_options_are_one_line(tmp_path, extra, why):
    data = class_folders(tmp_path / "data")
    done = CliRunner().invoke(
        cli, ["train", "--data", str(data), "--out", str(tmp_path / "m.onnx"), *extra]
    )
    assert done.exit_code != 0 and why in done.output
