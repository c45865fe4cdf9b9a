"""Overlays: defects tinted and outlined in their colours, a legend with the grades, JPEG out."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.vision.toy_models import GREY, RED, colour_segmenter, painted
from vision.grader import DefectGrade, Grader
from vision.overlay import OVERLAY_COLOURS, draw_overlay, grade_text, render_overlay


@pytest.fixture(scope="module")
def grader(tmp_path_factory) -> Grader:
    return Grader.load(colour_segmenter(tmp_path_factory.mktemp("seg") / "seg.onnx"))


@pytest.fixture
def scene():
    image = painted(patches=[(RED, (24, 40, 24, 40))])
    return cv2.resize(image, (256, 256), interpolation=cv2.INTER_NEAREST)


def test_overlay_is_a_jpeg_of_the_image_size(grader, scene):
    data = render_overlay(scene, grader.grade(scene))
    assert data[:2] == b"\xff\xd8"
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == scene.shape


def test_defect_is_tinted_towards_its_colour(grader, scene):
    canvas = draw_overlay(scene, grader.grade(scene))
    inside = canvas[128, 128].astype(int)  # middle of the red patch
    expected = (0.55 * np.array(RED) + 0.45 * np.array(OVERLAY_COLOURS["corrosion"])).astype(int)
    assert np.abs(inside - expected).max() <= 2
    assert np.array_equal(canvas[200, 200], np.array(GREY, np.uint8))  # clean part untouched


def test_defect_is_outlined(grader, scene):
    canvas = draw_overlay(scene, grader.grade(scene))
    edge = canvas[100:156, 96].astype(int)  # the patch's left edge (cols 96..159 at 256 px)
    colour = np.array(OVERLAY_COLOURS["corrosion"])
    assert (np.abs(edge - colour).max(axis=1) < 60).mean() > 0.8


def test_legend_lists_each_defect_with_its_grade(grader, scene):
    view = grader.grade(scene)
    canvas = draw_overlay(scene, view)
    legend = canvas[:60, :20].reshape(-1, 3)
    for defect in view.defects:  # each line starts with a swatch in its colour
        assert (legend == OVERLAY_COLOURS[defect]).all(axis=1).any(), defect
    assert grade_text("corrosion", view.defects["corrosion"]) == "corrosion Ri4 11.11%"


def test_grade_text_marks_scales_and_doubt():
    assert (
        grade_text("corrosion", DefectGrade(2.5, 7, 0.9, "astm-d610")) == "corrosion D610 7 2.50%"
    )
    assert (
        grade_text("coating_damage", DefectGrade(0.4, 2, 0.3, "iso4628-5", uncertain=True))
        == "coating damage grade 2 0.40% ?"
    )


def test_large_images_are_drawn_at_max_side(grader, scene):
    big = cv2.resize(scene, (3000, 2000), interpolation=cv2.INTER_NEAREST)
    canvas = draw_overlay(big, grader.grade(big), max_side=1024)
    assert canvas.shape == (683, 1024, 3)
