"""The shipped reference model: loads in onnxruntime, its card matches, it grades synthetic cores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vision.card import METADATA_KEY, ModelCard, check_card, read_card
from vision.severity import DEFAULT_TABLES
from vision.synth import generate_core
from vision.training.evaluate import load_session, predict, predicted_areas

MODELS = Path(__file__).resolve().parents[2] / "models"
MODEL = MODELS / "reman-seg.onnx"
CARD = MODELS / "reman-seg.card.json"
UNSEEN_SEEDS = range(2_000_000, 2_000_400)  # neither training nor the card's evaluation set


@pytest.fixture(scope="module")
def session():
    return load_session(MODEL, threads=1)


@pytest.fixture(scope="module")
def card(session) -> ModelCard:
    return read_card(MODEL, session)


def test_model_and_card_fit_the_size_budget():
    assert MODEL.stat().st_size + CARD.stat().st_size <= 4 * 1024 * 1024


def test_embedded_card_equals_the_card_beside_it(session, card):
    embedded = session.get_modelmeta().custom_metadata_map[METADATA_KEY]
    assert json.loads(embedded) == json.loads(CARD.read_text())
    check_card(card, session, str(MODEL))


def test_card_describes_the_graph(session, card):
    assert card.task == "segmentation" and card.output_activation == "sigmoid"
    assert (card.input_name, card.layout, card.color_order) == ("image", "NCHW", "RGB")
    assert card.classes == ["part", "wear", "corrosion", "coating_damage"]
    assert [i.name for i in session.get_inputs()] == ["image"]
    assert [o.name for o in session.get_outputs()] == card.output_names == ["probs"]
    assert {
        "iou_wear",
        "iou_corrosion",
        "iou_coating_damage",
        "mean_iou",
        "grade_exact",
        "grade_within_one",
        "run_p50_ms_1thread",
    } <= set(card.metrics)


def test_opset_is_at_least_17():
    onnx = pytest.importorskip("onnx")
    proto = onnx.load(str(MODEL))
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17


def test_outputs_are_probabilities(session, card):
    h, w = card.input_size
    (probs,) = session.run(["probs"], {"image": np.zeros((1, 3, h, w), np.float32)})
    assert probs.shape == (1, 4, h, w)
    assert np.isfinite(probs).all() and 0 <= probs.min() and probs.max() <= 1


def _first_core(condition):
    return next(c for c in (generate_core(s) for s in UNSEEN_SEEDS) if condition(c))


def _grades(session, card, core) -> dict[str, int]:
    areas = predicted_areas(predict(session, card, core.image), card.classes)
    return {d: DEFAULT_TABLES[d].grade(a) for d, a in areas.items()}


def test_a_clean_core_grades_zero(session, card):
    core = _first_core(lambda c: not any(c.grades.values()))
    assert _grades(session, card, core) == {"wear": 0, "corrosion": 0, "coating_damage": 0}


def test_heavy_corrosion_grades_high(session, card):
    core = _first_core(lambda c: c.grades["corrosion"] == 5)
    assert _grades(session, card, core)["corrosion"] >= 4
