"""The out-of-distribution guard: is a photograph like the images the model was trained on?

A model's card may carry an `InputSummary`: statistics of a cheap image descriptor over its
training inputs and a distance threshold calibrated on held-out training-like images. The
descriptor does not depend on the model (OpenCV and numpy only, no torch):

- colour: histograms of saturation and of the a*/b* chroma channels (Lab), 8 bins each, the
  mean chroma, and the mean spread between the colour channels (log; 0 for a monochrome
  camera's image stored as three equal channels);
- intensity: a histogram of grey levels (8 bins), the mean and spread of grey;
- texture: a histogram of gradient magnitudes (8 bins), gradient orientations weighted by
  magnitude (8 bins, folded to 0..180 degrees) and 8-neighbour local binary patterns (by the
  number of brighter neighbours, 9 bins);
- frequency: the share of spectral energy in 6 radial bands;
- layout: the mean grey and chroma of the centre against the border (a core on a bench).

all at a fixed 64x64. The summary keeps the descriptors' mean and spread and the leading
principal axes of the standardised descriptors; `distance` is a Mahalanobis distance in that
subspace plus the residual off it (probabilistic PCA), divided by the square root of the
dimension so that a training-like image scores about 1. It also keeps each entry's range over
the training images, widened by a margin: an image with an entry outside it (say a colour
spread of 0 where every training image had some) is out of distribution however close the
rest of it is, because one such entry is diluted in a distance over 70.

    summary = fit_summary(train_images, held_out_images)   # an InputSummary for the card
    guard = InputGuard(summary)
    verdict = guard.check(image)                            # OodVerdict: distance, threshold

A verdict's `score` is the larger of distance over threshold and one plus the farthest entry's
excess over its range (in range widths); above 1 the image is out of distribution, and
`familiarity` (1.0 for an image inside; for one beyond, 0.5 / score squared, so a flagged
image's grades fall below the usual 0.6 minimum confidence) is what the grader multiplies its
grade confidences by.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from vision.errors import VisionError

DESCRIPTOR_PX = 64
DESCRIPTOR_VERSION = 1
_BINS = 8
_BANDS = 6
_EPS = 1e-6


def _names() -> list[str]:
    bins = range(_BINS)
    return (
        [f"saturation_{i}" for i in bins]
        + [f"lab_a_{i}" for i in bins]
        + [f"lab_b_{i}" for i in bins]
        + ["chroma", "chroma_centre_minus_border", "colour_spread"]
        + [f"grey_{i}" for i in bins]
        + ["grey_mean", "grey_std", "grey_centre_minus_border"]
        + [f"gradient_{i}" for i in bins]
        + [f"orientation_{i}" for i in bins]
        + [f"lbp_{i}" for i in range(9)]
        + [f"frequency_{i}" for i in range(_BANDS)]
    )


DESCRIPTOR_NAMES = _names()
"""What each entry of the descriptor measures, in order."""


class InputSummary(BaseModel):
    """What the training inputs looked like, for the out-of-distribution guard."""

    model_config = ConfigDict(extra="forbid")

    descriptor: int = Field(
        default=DESCRIPTOR_VERSION, description="Version of the image descriptor (vision.ood)."
    )
    images: int = Field(ge=1, description="Training-like images the statistics come from.")
    mean: list[float] = Field(description="Mean descriptor.")
    scale: list[float] = Field(description="Spread of each descriptor entry (standardisation).")
    axes: list[list[float]] = Field(
        description="Leading principal axes of the standardised descriptors (rows)."
    )
    variances: list[float] = Field(description="Variance along each axis.")
    residual_variance: float = Field(gt=0, description="Mean variance off the axes.")
    low: list[float] = Field(
        description="Lowest value of each entry a training-like image may have."
    )
    high: list[float] = Field(
        description="Highest value of each entry a training-like image may have."
    )
    threshold: float = Field(
        gt=0, description="Distance above which an image is out of distribution."
    )
    calibration: str = Field(default="", description="How the threshold and ranges were chosen.")

    def problems(self) -> list[str]:
        """Inconsistencies within the summary (lengths that do not fit the descriptor)."""
        size = len(DESCRIPTOR_NAMES) if self.descriptor == DESCRIPTOR_VERSION else len(self.mean)
        problems = [
            f"input_summary.{name} has {len(values)} values, the descriptor has {size}"
            for name, values in (
                ("mean", self.mean),
                ("scale", self.scale),
                ("low", self.low),
                ("high", self.high),
            )
            if len(values) != size
        ]
        problems += [
            f"input_summary.axes row {i} has {len(row)} values, the descriptor has {size}"
            for i, row in enumerate(self.axes)
            if len(row) != size
        ]
        if len(self.variances) != len(self.axes):
            problems.append(
                f"input_summary has {len(self.axes)} axes but {len(self.variances)} variances"
            )
        if self.descriptor != DESCRIPTOR_VERSION:
            problems.append(
                f"input_summary uses descriptor {self.descriptor}, this version computes "
                f"{DESCRIPTOR_VERSION}"
            )
        return problems


@dataclass(frozen=True)
class OodVerdict:
    """One image against the summary."""

    distance: float
    threshold: float
    outside: tuple[str, ...] = ()  # descriptor entries outside the training range
    excess: float = 0.0  # the farthest such entry's distance beyond its range, in range widths

    @property
    def score(self) -> float:
        """Distance over threshold, or one plus the range excess, whichever is larger."""
        return max(self.distance / self.threshold, 1.0 + self.excess if self.outside else 0.0)

    @property
    def out_of_distribution(self) -> bool:
        """True when the image is unlike the training inputs."""
        return self.distance > self.threshold or bool(self.outside)

    @property
    def familiarity(self) -> float:
        """1.0 for a training-like image; beyond, at most 0.5, falling as 1 / score squared.

        A grade on an image the guard flags is never firm (at most half its confidence), so it
        falls below the usual 0.6 minimum whatever its distance to a grade boundary.
        """
        return 1.0 if not self.out_of_distribution else 0.5 * min(1.0, 1.0 / self.score**2)

    def to_dict(self) -> dict:
        """JSON-ready: out_of_distribution, distance, threshold, familiarity, outside."""
        return {
            "out_of_distribution": self.out_of_distribution,
            "distance": round(self.distance, 3),
            "threshold": self.threshold,
            "familiarity": round(self.familiarity, 3),
            "outside": list(self.outside),
        }

    def describe(self) -> str:
        """One line for an event or a reason: distance, threshold and entries out of range."""
        text = f"distance {self.distance:.2f} from the training images (threshold {self.threshold:.2f})"
        if self.outside:
            text += f"; outside the training range: {', '.join(self.outside[:4])}"
        return text


class InputGuard:
    """An InputSummary ready to score images; check() is safe to call from several threads."""

    def __init__(self, summary: InputSummary) -> None:
        problems = summary.problems()
        if problems:
            raise VisionError("; ".join(problems))
        self.summary = summary
        self._mean = np.array(summary.mean, np.float64)
        self._scale = np.array(summary.scale, np.float64)
        self._axes = np.array(summary.axes, np.float64).reshape(-1, len(summary.mean))
        self._variances = np.array(summary.variances, np.float64)
        self._low, self._high = np.array(summary.low), np.array(summary.high)

    def check(self, image: np.ndarray) -> OodVerdict:
        """The image against the training inputs."""
        descriptor = describe(image)
        width = np.maximum(self._high - self._low, _EPS)
        excess = np.maximum(self._low - descriptor, descriptor - self._high) / width
        outside = tuple(DESCRIPTOR_NAMES[i] for i in np.argsort(-excess) if excess[i] > 0)
        return OodVerdict(
            self.distance(descriptor),
            self.summary.threshold,
            outside,
            float(max(excess.max(), 0.0)),
        )

    def distance(self, descriptor: np.ndarray) -> float:
        """Distance of one descriptor (about 1 for a training-like image)."""
        return float(self.distances(descriptor[None, :])[0])

    def distances(self, descriptors: np.ndarray) -> np.ndarray:
        """Distances of a (N, D) array of descriptors."""
        z = (descriptors - self._mean) / self._scale
        projected = z @ self._axes.T
        residual = (z * z).sum(axis=1) - (projected * projected).sum(axis=1)
        squared = (projected**2 / self._variances).sum(axis=1)
        squared += np.maximum(residual, 0.0) / self.summary.residual_variance
        return np.sqrt(squared / z.shape[1])


def describe(image: np.ndarray) -> np.ndarray:
    """The descriptor of one (H, W, 3) uint8 BGR image (float64 vector, DESCRIPTOR_NAMES)."""
    small = cv2.resize(image, (DESCRIPTOR_PX, DESCRIPTOR_PX), interpolation=cv2.INTER_AREA)
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0
    return np.concatenate([_colour(small), _intensity(grey), _texture(grey), _spectrum(grey)])


def describe_all(images: Iterable[np.ndarray]) -> np.ndarray:
    """Descriptors of several images, one row each."""
    return np.stack([describe(image) for image in images])


def fit_summary(
    train: np.ndarray,
    held_out: np.ndarray,
    *,
    axes: int = 12,
    quantile: float = 0.999,
    margin: float = 1.25,
    range_margin: float = 0.25,
) -> InputSummary:
    """A summary of the training descriptors `train` (N, D), calibrated on `held_out`.

    The threshold is `margin` times the `quantile` of the held-out descriptors' distances; each
    entry's range is the lowest to highest value over both sets, widened by `range_margin` of
    its width on either side, so that training-like images stay inside with room to spare.
    """
    if len(train) <= axes or len(held_out) == 0:
        raise VisionError(
            f"input summary needs more than {axes} training and some held-out descriptors, "
            f"got {len(train)} and {len(held_out)}"
        )
    mean = train.mean(axis=0)
    scale = train.std(axis=0) + 1e-3  # a constant entry must not divide by zero
    z = (train - mean) / scale
    _, singular, vt = np.linalg.svd(z, full_matrices=False)
    variances = singular**2 / (len(z) - 1)
    both = np.concatenate([train, held_out])
    low, high = both.min(axis=0), both.max(axis=0)
    widen = range_margin * (high - low)
    summary = InputSummary(
        images=len(train),
        mean=_rounded(mean),
        scale=_rounded(scale),
        axes=[_rounded(row) for row in vt[:axes]],
        variances=_rounded(np.maximum(variances[:axes], 1e-4)),
        residual_variance=round(float(max(variances[axes:].mean(), 1e-4)), 6),
        low=_rounded(low - widen),
        high=_rounded(high + widen),
        threshold=1.0,
    )
    distances = InputGuard(summary).distances(held_out)
    threshold = float(np.quantile(distances, quantile)) * margin
    note = (
        f"threshold {margin} x the {quantile} quantile of {len(held_out)} held-out images' "
        f"distances; ranges widened by {range_margin} of their width"
    )
    return summary.model_copy(update={"threshold": round(threshold, 4), "calibration": note})


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), 6) for v in values]


def _histogram(values: np.ndarray, low: float, high: float, weights=None) -> np.ndarray:
    """Shares of _BINS equal bins over low..high; values beyond count in the end bins.

    (np.bincount: np.histogram takes several times as long on these small arrays.)
    """
    scaled = (values.ravel().astype(np.float32) - low) * (_BINS / (high - low))
    index = np.clip(scaled, 0, _BINS - 1).astype(np.intp)
    flat = None if weights is None else weights.ravel()
    counts = np.bincount(index, weights=flat, minlength=_BINS)
    return counts / max(float(counts.sum()), _EPS)


def _colour(small: np.ndarray) -> np.ndarray:
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    lab = cv2.cvtColor(small, cv2.COLOR_BGR2LAB).astype(np.float32)
    chroma = np.hypot(lab[..., 1] - 128, lab[..., 2] - 128)
    b, g, r = cv2.split(small)  # cv2's max and min: numpy's over the channel axis take 10x as long
    spread = cv2.max(cv2.max(b, g), r).astype(np.float32) - cv2.min(cv2.min(b, g), r)
    centre, border = _centre_mask()
    return np.concatenate(
        [
            _histogram(hsv[..., 1], 0, 256),
            _histogram(lab[..., 1], 96, 160),
            _histogram(lab[..., 2], 96, 160),
            [
                chroma.mean() / 64,
                (chroma[centre].mean() - chroma[border].mean()) / 64,
                np.log(spread.mean() + 0.1),
            ],
        ]
    )


def _intensity(grey: np.ndarray) -> np.ndarray:
    centre, border = _centre_mask()
    layout = grey[centre].mean() - grey[border].mean()
    return np.concatenate([_histogram(grey, 0, 1), [grey.mean(), grey.std(), layout]])


def _texture(grey: np.ndarray) -> np.ndarray:
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    magnitude = np.hypot(gx, gy)
    angle = np.degrees(np.arctan2(gy, gx)) % 180
    return np.concatenate(
        [
            _histogram(np.log1p(magnitude * 20), 0, 3),
            _histogram(angle, 0, 180, weights=magnitude),
            _lbp(grey),
        ]
    )


def _lbp(grey: np.ndarray) -> np.ndarray:
    """Share of pixels by how many of their 8 neighbours are brighter (0..8)."""
    centre = grey[1:-1, 1:-1]
    h, w = grey.shape
    brighter = np.zeros(centre.shape, np.int32)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                neighbour = grey[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx]
                brighter += neighbour > centre + 0.01
    return np.bincount(brighter.ravel(), minlength=9) / brighter.size


def _spectrum(grey: np.ndarray) -> np.ndarray:
    power = np.abs(np.fft.fftshift(np.fft.fft2(grey - grey.mean()))) ** 2
    bands = np.minimum((_radius() * _BANDS).astype(int), _BANDS - 1)
    energy = np.bincount(bands.ravel(), weights=power.ravel(), minlength=_BANDS)
    return energy / max(float(energy.sum()), _EPS)


@cache
def _centre_mask() -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[:DESCRIPTOR_PX, :DESCRIPTOR_PX]
    edge = np.minimum(np.minimum(x, y), np.minimum(DESCRIPTOR_PX - 1 - x, DESCRIPTOR_PX - 1 - y))
    return edge >= DESCRIPTOR_PX // 4, edge < DESCRIPTOR_PX // 8


@cache
def _radius() -> np.ndarray:
    y, x = np.mgrid[:DESCRIPTOR_PX, :DESCRIPTOR_PX] - DESCRIPTOR_PX // 2
    return np.minimum(np.hypot(x, y) / (DESCRIPTOR_PX // 2), 0.999)
