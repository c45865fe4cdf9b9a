"""Frame checks: black, overexposed and blurred frames become an `image_quality` REVIEW reason."""

from __future__ import annotations

import cv2
import numpy as np

from edge.config.station import CameraConfig
from edge.station.quality import check_frame, measure, quality_reasons
from tests.support.images import textured_image

CONFIG = CameraConfig(source="file", path="x.png")


def test_a_sharp_well_lit_part_has_no_problems():
    assert check_frame(textured_image(), CONFIG) == []


def test_a_black_frame_is_too_dark():
    [problem] = check_frame(np.zeros((480, 640, 3), np.uint8), CONFIG)
    assert problem.code == "too_dark" and "black" in problem.text


def test_a_dim_frame_is_too_dark():
    [problem] = check_frame((textured_image() // 20).astype(np.uint8), CONFIG)
    assert problem.code == "too_dark" and "too dark" in problem.text


def test_a_burnt_out_frame_is_overexposed():
    [problem] = check_frame(np.full((480, 640, 3), 252, np.uint8), CONFIG)
    assert problem.code == "overexposed"


def test_a_badly_blurred_frame_is_blurred():
    blurred = cv2.GaussianBlur(textured_image(), (0, 0), 12)
    [problem] = check_frame(blurred, CONFIG)
    assert problem.code == "blurred" and problem.value < CONFIG.min_sharpness


def test_thresholds_mean_the_same_at_any_resolution():
    small = measure(textured_image(size=(480, 640)))
    large = measure(
        cv2.resize(textured_image(size=(480, 640)), (2560, 1920), interpolation=cv2.INTER_NEAREST)
    )
    assert abs(small.brightness - large.brightness) < 2
    assert large.sharpness > CONFIG.min_sharpness


def test_problems_become_one_review_reason_per_view():
    views = [[], check_frame(np.zeros((48, 64, 3), np.uint8), CONFIG)]
    [reason] = quality_reasons(views)
    assert reason.code == "image_quality"
    assert reason.text.startswith("image quality: view 2 black")
