"""Frame checks: is an image fit to be graded at all?

A frame that is black or too dark, overexposed, or badly blurred is not graded into a
disposition by the rules' grade limits alone: each problem becomes a REVIEW reason with the code
`image_quality`, so a person looks at the core instead of the rules trusting a bad picture.

The measures are taken on a grey copy scaled to at most `MEASURE_SIDE_PX` on its longer side, so
the thresholds in `CameraConfig` mean the same for a 640x480 webcam and a 12 MP CSI camera:

- brightness: the mean grey level, 0..255 (`min_brightness`, `max_brightness`);
- sharpness: the variance of the Laplacian (`min_sharpness`); a focused, textured part scores
  in the hundreds, a badly blurred one in single figures.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.config.station import CameraConfig
from edge.contract import Reason

MEASURE_SIDE_PX = 640
REASON_CODE = "image_quality"


@dataclass(frozen=True)
class FrameMeasures:
    """What was measured on one frame."""

    brightness: float
    sharpness: float


@dataclass(frozen=True)
class QualityProblem:
    """One thing wrong with a frame: `too_dark`, `overexposed` or `blurred`."""

    code: str
    value: float
    limit: float
    text: str


def measure(image: np.ndarray) -> FrameMeasures:
    """Mean grey level and variance of the Laplacian of a BGR or grey image."""
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    grey = _scaled(grey)
    brightness = float(grey.mean())
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    return FrameMeasures(brightness=brightness, sharpness=sharpness)


def _scaled(grey: np.ndarray) -> np.ndarray:
    side = max(grey.shape[:2])
    if side <= MEASURE_SIDE_PX:
        return grey
    factor = MEASURE_SIDE_PX / side
    size = (max(1, round(grey.shape[1] * factor)), max(1, round(grey.shape[0] * factor)))
    return cv2.resize(grey, size, interpolation=cv2.INTER_AREA)


def check_frame(image: np.ndarray, config: CameraConfig) -> list[QualityProblem]:
    """The problems of one frame against the configured limits; empty when it is fit to grade."""
    m = measure(image)
    if m.brightness < config.min_brightness:
        word = "black" if m.brightness < 1.0 else "too dark"
        return [
            QualityProblem(
                "too_dark",
                m.brightness,
                config.min_brightness,
                f"{word} (mean grey {m.brightness:.1f} < {config.min_brightness:g})",
            )
        ]
    if m.brightness > config.max_brightness:
        return [
            QualityProblem(
                "overexposed",
                m.brightness,
                config.max_brightness,
                f"overexposed (mean grey {m.brightness:.1f} > {config.max_brightness:g})",
            )
        ]
    # A dark or burnt-out frame has no texture either; saying "blurred" as well would mislead.
    if m.sharpness < config.min_sharpness:
        return [
            QualityProblem(
                "blurred",
                m.sharpness,
                config.min_sharpness,
                f"badly blurred (sharpness {m.sharpness:.1f} < {config.min_sharpness:g})",
            )
        ]
    return []


def quality_reasons(problems_by_view: list[list[QualityProblem]]) -> list[Reason]:
    """One REVIEW reason `image_quality` per view with problems (views numbered from 1)."""
    reasons = []
    for view, problems in enumerate(problems_by_view, start=1):
        if problems:
            what = "; ".join(p.text for p in problems)
            reasons.append(
                Reason(
                    code=REASON_CODE,
                    text=f"image quality: view {view} {what}",
                    rule="camera.quality",
                )
            )
    return reasons
