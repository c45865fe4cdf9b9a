"""The out-of-distribution guard: the shipped model knows what it was trained on.

Images the tests draw themselves: generated cores (vision.synth) pass, generated noise, rendered
text and a flat grey plate are out of distribution, and the grader lowers their confidences.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vision.card import ModelCard, card_problems, parse_card, read_card
from vision.errors import ModelError, VisionError
from vision.grader import Grader
from vision.ood import DESCRIPTOR_NAMES, InputGuard, InputSummary, describe, fit_summary
from vision.synth import generate_core

MODEL = Path(__file__).resolve().parents[2] / "models" / "reman-seg.onnx"
UNSEEN_SEEDS = range(2_100_000, 2_100_040)  # neither the summary's nor the model's training


def noise_image(seed: int = 0) -> np.ndarray:
    """Colour noise, every pixel drawn afresh."""
    return np.random.default_rng(seed).integers(0, 256, (240, 320, 3), dtype=np.uint8)


def text_image() -> np.ndarray:
    """Black text rendered on white paper."""
    image = np.full((240, 320, 3), 255, np.uint8)
    for row, line in enumerate(("CORE HGP-000123", "REMAN 2026", "station 4")):
        cv2.putText(image, line, (10, 60 + 60 * row), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (0, 0, 0), 2)
    return image


def grey_plate() -> np.ndarray:
    """A flat grey plate filling the frame."""
    return np.full((240, 320, 3), 128, np.uint8)


UNLIKE = {"noise": noise_image(), "text": text_image(), "grey plate": grey_plate()}


@pytest.fixture(scope="module")
def grader() -> Grader:
    return Grader.load(MODEL, providers=["CPUExecutionProvider"], threads=1)


@pytest.fixture(scope="module")
def guard(grader) -> InputGuard:
    assert grader.guard is not None, "the shipped model's card carries an input summary"
    return grader.guard


def test_the_shipped_card_says_synthetic_and_carries_a_summary():
    card = read_card(MODEL)
    assert card.training_source == "synthetic"
    assert card.input_summary is not None and card.input_summary.images >= 1000
    assert len(card.input_summary.mean) == len(DESCRIPTOR_NAMES)
    assert card_problems(card) == []


def test_generated_cores_are_in_distribution(guard):
    verdicts = [guard.check(generate_core(seed).image) for seed in UNSEEN_SEEDS]
    flagged = [v.describe() for v in verdicts if v.out_of_distribution]
    assert flagged == []
    assert all(v.familiarity == 1.0 for v in verdicts)


@pytest.mark.parametrize("name", sorted(UNLIKE))
def test_images_unlike_the_training_cores_are_out_of_distribution(guard, name):
    verdict = guard.check(UNLIKE[name])
    assert verdict.out_of_distribution, verdict.describe()
    assert verdict.score > 1 and verdict.familiarity < 1
    assert "training" in verdict.describe()


def test_a_monochrome_image_of_a_core_is_out_of_distribution(guard):
    """Three equal channels (a grey camera) never occur among the colour training cores."""
    grey = cv2.cvtColor(generate_core(UNSEEN_SEEDS[0]).image, cv2.COLOR_BGR2GRAY)
    verdict = guard.check(cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))
    assert verdict.out_of_distribution and "colour_spread" in verdict.outside


def test_the_grader_lowers_confidence_on_an_unlike_image(grader):
    view = grader.grade(grey_plate())
    assert view.ood is not None and view.ood.out_of_distribution
    assert all(g.confidence <= view.ood.familiarity for g in view.defects.values())
    assert all(g.uncertain for g in view.defects.values())


def test_the_grader_keeps_confidence_on_a_generated_core(grader):
    core = generate_core(UNSEEN_SEEDS[1]).image
    view = grader.grade(core)
    assert view.ood is not None and not view.ood.out_of_distribution
    bare = Grader(
        grader.session,
        grader.card.model_copy(update={"input_summary": None}),
        model_path=MODEL,
        sha256=grader.sha256,
        tables=grader.tables,
    )
    assert bare.guard is None
    unguarded = bare.grade(core)
    assert unguarded.ood is None
    assert {k: g.confidence for k, g in view.defects.items()} == {
        k: g.confidence for k, g in unguarded.defects.items()
    }


def test_a_card_validates_with_and_without_a_summary(grader):
    data = json.loads(grader.card.model_dump_json())
    assert parse_card(json.dumps(data), "with").input_summary is not None
    data.pop("input_summary")
    data.pop("training_source")
    older = parse_card(json.dumps(data), "without")
    assert older.input_summary is None and older.training_source is None
    assert card_problems(older) == []


def test_a_summary_of_the_wrong_length_is_refused(grader):
    summary = grader.card.input_summary
    assert summary is not None
    short = summary.model_copy(update={"mean": summary.mean[:-1]})
    card = grader.card.model_copy(update={"input_summary": short})
    assert any("input_summary.mean has" in p for p in card_problems(card))
    with pytest.raises(VisionError, match="input_summary.mean"):
        InputGuard(short)


def test_a_card_with_a_broken_summary_names_the_field():
    card = json.loads(read_card(MODEL).model_dump_json())
    card["input_summary"]["threshold"] = -1
    with pytest.raises(ModelError, match="input_summary.threshold"):
        parse_card(json.dumps(card), "site.card.json")


def test_fit_summary_calibrates_on_held_out_descriptors():
    train = np.stack([describe(generate_core(seed, (96, 96)).image) for seed in range(1, 41)])
    held_out = np.stack([describe(generate_core(seed, (96, 96)).image) for seed in range(41, 61)])
    summary = fit_summary(train, held_out, axes=6)
    InputSummary.model_validate(summary.model_dump())  # round trip
    guard = InputGuard(summary)
    assert (guard.distances(held_out) <= summary.threshold).all()
    assert guard.check(grey_plate()).out_of_distribution
    assert "held-out" in summary.calibration
    with pytest.raises(VisionError, match="more than 6"):
        fit_summary(train[:5], held_out, axes=6)


def test_model_card_schema_describes_the_new_fields():
    fields = ModelCard.model_fields
    assert fields["input_summary"].description and fields["training_source"].description


def test_reman_grade_reports_the_verdict(tmp_path):
    """`reman grade --json` on a flat grey plate says it is out of distribution."""
    from click.testing import CliRunner

    from reman.cli import cli

    cv2.imwrite(str(tmp_path / "plate.png"), grey_plate())
    result = CliRunner().invoke(cli, ["grade", str(tmp_path / "plate.png"), "--json"])
    assert result.exit_code == 0, result.output
    line = json.loads(result.output.strip().splitlines()[-1])
    assert line["ood"]["out_of_distribution"] is True
    assert line["ood"]["familiarity"] <= 0.5
    assert all(d["confidence"] < 0.6 for d in line["defects"].values())


def test_reman_grade_says_so_in_its_text_line(tmp_path):
    from click.testing import CliRunner

    from reman.cli import cli

    cv2.imwrite(str(tmp_path / "plate.png"), grey_plate())
    cv2.imwrite(str(tmp_path / "core.png"), generate_core(UNSEEN_SEEDS[2]).image)
    result = CliRunner().invoke(
        cli, ["grade", str(tmp_path / "plate.png"), str(tmp_path / "core.png")]
    )
    assert result.exit_code == 0, result.output
    plate, core = result.output.strip().splitlines()[-2:]
    assert "OUT OF DISTRIBUTION: distance" in plate
    assert "OUT OF DISTRIBUTION" not in core
