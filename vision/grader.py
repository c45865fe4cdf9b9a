"""The grader: an ONNX model and its card turned into per-defect area shares, grades and confidences.

    grader = Grader.load("models/reman-seg.onnx", threads=1)
    view = grader.grade(read_image("core.jpg"))        # ViewGrade
    core = grader.grade_views([front, back])           # CoreGrade: per view and worst per defect

Segmentation models give per-pixel probabilities for `part` and each defect type. A pixel counts
when its probability is above 0.5; a defect's `area_pct` is its pixels inside the part over the
part's pixels, times 100, measured at the model's resolution. The grade comes from the defect's
table (vision.severity; corrosion by ISO 4628-3 or ASTM D610, the others on the ISO 4628 0..5
scale).

A card with `tile_overlap_px` (the native-resolution segmenter) is run tile by tile over the
photograph at its own size, shrunk only to fit a pixel budget (vision.tiling); its masks and
area shares are then at that resolution.

Confidence (0..1) says how firmly the model's pixels support the reported grade. Pixels inside
the part with probability at least 0.75 give the smallest plausible area, those above 0.25 the
largest; confidence is the share of that plausible area range that lies in the reported grade's
band (1.0 when every deciding pixel is certain or the whole range falls in one band, about 0.5
when the range straddles a grade boundary evenly). No visible part gives confidence 0. A grade
whose confidence is below `min_confidence` is marked `uncertain`, for the disposition to send
the core to REVIEW.

A card with an `input_summary` adds the out-of-distribution guard (vision.ood): each image is
scored against the training images' statistics, the verdict is the view's `ood`, and an image
unlike them has every confidence multiplied by its familiarity (below 1), so confidence says
also how far the image is from what the model knows, not only how close a grade boundary is.

Anomaly models (trained on good parts only) give an anomaly map; the `anomaly` defect's area is
the share of the image whose map value is above the card's `anomaly_threshold`, graded on the
anomaly-area table (vision.severity), so family rules can send anomalous cores to REVIEW.

Classification models (one label per image) plug in through the card's `label_map`: the top
label gives each defect type its grade and nominal area (defect types the label does not name
get the table's best grade); confidence is the total probability of the labels that give the
same grade for that defect type.

onnxruntime and OpenCV release the GIL, so grade() may be called from a thread pool.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from itertools import pairwise
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from vision._onnx import ORT_ERRORS, TensorrtCache, file_sha256, open_session, pick_providers
from vision.card import PART_CLASS, ModelCard, check_card, read_card
from vision.errors import ImageError, ModelError, VisionError
from vision.ood import InputGuard, OodVerdict
from vision.severity import ANOMALY, ANOMALY_AREA, TABLES, GradeTable, severity, tables_for
from vision.tiling import fit_pixel_budget, tiled_probabilities

PIXEL_THRESHOLD = 0.5
CERTAIN_LOW, CERTAIN_HIGH = 0.25, 0.75
ANOMALY_BAND = 1.1  # anomaly map values within this factor of the threshold are in doubt
DEFAULT_MODEL = Path(__file__).resolve().parent.parent / "models" / "reman-seg.onnx"


@dataclass(frozen=True)
class DefectGrade:
    """One defect type on one view (or the worst over a core's views)."""

    area_pct: float
    grade: int
    confidence: float
    scale: str
    uncertain: bool = False

    @property
    def severity(self) -> int:
        """The grade on the common 0..5 scale that rises with damage."""
        return severity(self.grade, self.scale)

    def to_dict(self) -> dict:
        """JSON-ready: area_pct, grade, confidence."""
        return {
            "area_pct": round(self.area_pct, 4),
            "grade": self.grade,
            "confidence": round(self.confidence, 3),
        }


@dataclass
class ViewGrade:
    """The grades of one image, with what the overlay needs at the model's resolution."""

    defects: dict[str, DefectGrade]
    part_pct: float
    masks: dict[str, np.ndarray] = field(repr=False)
    probabilities: np.ndarray = field(repr=False)
    timings_ms: dict[str, float] = field(default_factory=dict)
    label: str | None = None
    ood: OodVerdict | None = None  # the image against the card's input summary, if it has one
    heat: np.ndarray | None = field(default=None, repr=False)  # anomaly map / threshold (1 = at it)

    def to_dict(self) -> dict:
        """JSON-ready defects (the label for classification models, the guard's verdict `ood`)."""
        out = {"defects": {name: grade.to_dict() for name, grade in self.defects.items()}}
        out |= {"ood": self.ood.to_dict()} if self.ood is not None else {}
        return out | ({"label": self.label} if self.label is not None else {})


@dataclass
class CoreGrade:
    """All views of one core and the worst grade per defect type over them."""

    views: list[ViewGrade]
    defects: dict[str, DefectGrade]


class Grader:
    """A loaded, checked and warmed-up model; grade() is safe to call from several threads."""

    def __init__(
        self,
        session: ort.InferenceSession,
        card: ModelCard,
        *,
        model_path: Path,
        sha256: str,
        tables: dict[str, GradeTable],
        min_confidence: float = 0.6,
    ) -> None:
        check_card(card, session, str(model_path))
        self._session, self.card, self.model_path = session, card, Path(model_path)
        self.sha256, self.tables, self.min_confidence = sha256, tables, min_confidence
        self._input_shape = _input_shape(card)
        self._scale, self._offset = _normalisation(card)
        self._post = _postprocessor(card, tables)
        summary = card.input_summary
        self.guard = InputGuard(summary) if summary is not None else None

    @classmethod
    def load(
        cls,
        model_path: str | Path = DEFAULT_MODEL,
        providers: str | list[str] = "auto",
        threads: int = 1,
        corrosion_table: str = "iso4628-3",
        min_confidence: float = 0.6,
        *,
        tensorrt_cache_dir: str | Path | None = None,
        tensorrt_fp16: bool = False,
    ) -> Grader:
        """Open the model, read and check its card, warm it up.

        providers: "auto" (TensorRT, CUDA, CPU as available) or a list of onnxruntime provider
        names; threads: intra-op threads (0: all cores). With tensorrt_cache_dir, TensorRT keeps
        the engine it builds there for the next start (one folder per model file and precision);
        tensorrt_fp16 lets it build FP16 kernels. ModelError / CardMismatch say what is wrong
        with the model or its card.
        """
        if corrosion_table not in TABLES:
            raise VisionError(
                f"unknown corrosion table {corrosion_table!r}; known: {sorted(TABLES)}"
            )
        model_path = Path(model_path)
        tensorrt = (
            TensorrtCache(Path(tensorrt_cache_dir), tensorrt_fp16) if tensorrt_cache_dir else None
        )
        session = open_session(model_path, pick_providers(providers), threads, tensorrt)
        grader = cls(
            session,
            read_card(model_path, session),
            model_path=model_path,
            sha256=file_sha256(model_path),
            tables=tables_for(corrosion_table),
            min_confidence=min_confidence,
        )
        grader.run(np.zeros(grader._input_shape, np.float32))  # warm-up: allocations, kernels
        return grader

    @property
    def name(self) -> str:
        """The card's model name."""
        return self.card.name

    @property
    def providers(self) -> list[str]:
        """The execution providers the session uses, in priority order."""
        return self._session.get_providers()

    @property
    def session(self) -> ort.InferenceSession:
        """The onnxruntime session (for benchmarks against the bare call)."""
        return self._session

    def grade(self, image: np.ndarray) -> ViewGrade:
        """Grade one (H, W, 3) uint8 BGR image (see read_image / decode_image)."""
        start = time.perf_counter()
        tensor = self.preprocess(image)
        ran = time.perf_counter()
        outputs = self._infer(tensor)
        done = time.perf_counter()
        view = self._post(self._checked(outputs[0]), self.min_confidence)
        if self.guard is not None:
            view = guarded(view, self.guard.check(image), self.min_confidence)
        end = time.perf_counter()
        view.timings_ms = {
            "preprocess_ms": (ran - start) * 1000,
            "inference_ms": (done - ran) * 1000,
            "postprocess_ms": (end - done) * 1000,
        }
        return view

    def grade_views(self, images: Iterable[np.ndarray]) -> CoreGrade:
        """Grade several views of one core: per-view results and the worst grade per defect."""
        views = [self.grade(image) for image in images]
        if not views:
            raise ImageError(f"{self.name}: no views to grade")
        return CoreGrade(views, worst_defects(views))

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """The model's input tensor for a BGR uint8 image, as the card says."""
        _check_image(image)
        height, width = self.card.input_size
        if self.card.tile_overlap_px is not None:  # tiled: the photograph keeps its own size
            image = fit_pixel_budget(image)
            height, width = image.shape[:2]
        elif image.shape[:2] != (height, width):
            # INTER_AREA where aliasing would show (shrinking more than 2x); INTER_LINEAR is
            # 5x faster and the reference model is trained on both.
            shrink = max(image.shape[0] / height, image.shape[1] / width)
            interpolation = cv2.INTER_AREA if shrink > 2 else cv2.INTER_LINEAR
            image = cv2.resize(image, (width, height), interpolation=interpolation)
        if self.card.color_order == "RGB":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        elif self.card.color_order == "GRAY":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)[:, :, None]
        tensor = np.empty(_shape_for(self.card, height, width), np.float32)
        tensor[0] = image.transpose(2, 0, 1) if self.card.layout == "NCHW" else image
        tensor *= self._scale
        tensor -= self._offset
        return tensor

    def run(self, tensor: np.ndarray) -> list[np.ndarray]:
        """The bare model call; ModelError names the model when onnxruntime fails."""
        try:
            return self._session.run(self.card.output_names, {self.card.input_name: tensor})
        except ORT_ERRORS as exc:
            raise ModelError(f"{self.name} ({self.model_path}): inference failed: {exc}") from exc

    def _infer(self, tensor: np.ndarray) -> list[np.ndarray]:
        """The model's outputs for a preprocessed image: one call, or tile by tile."""
        overlap = self.card.tile_overlap_px
        if overlap is None:
            return self.run(tensor)
        return [
            tiled_probabilities(lambda t: self.run(t)[0], tensor, self.card.input_size, overlap)
        ]

    def _checked(self, output: np.ndarray) -> np.ndarray:
        if not np.isfinite(output).all():
            raise ModelError(
                f"{self.name} ({self.model_path}): output {self.card.output_names[0]!r} "
                "contains NaN or infinite values"
            )
        return output


def worst_defects(views: Iterable[ViewGrade]) -> dict[str, DefectGrade]:
    """Per defect type, the view grade with the highest severity (then the larger area)."""
    worst: dict[str, DefectGrade] = {}
    for view in views:
        for defect, grade in view.defects.items():
            current = worst.get(defect)
            if current is None or (grade.severity, grade.area_pct) > (
                current.severity,
                current.area_pct,
            ):
                worst[defect] = grade
    return worst


def guarded(view: ViewGrade, verdict: OodVerdict, min_confidence: float) -> ViewGrade:
    """The view with its verdict, confidences times the verdict's familiarity (vision.ood)."""
    scaled = {
        name: replace(
            grade,
            confidence=grade.confidence * verdict.familiarity,
            uncertain=grade.uncertain or grade.confidence * verdict.familiarity < min_confidence,
        )
        for name, grade in view.defects.items()
    }
    return replace(view, defects=scaled, ood=verdict)


def band_confidence(table: GradeTable, grade: int, area_low: float, area_high: float) -> float:
    """The share of the plausible area range [area_low, area_high] whose grade is `grade`."""
    if area_high - area_low <= 1e-9:
        return 1.0 if table.grade(area_low) == grade else 0.0
    cuts = sorted({area_low, area_high, *(t for t in table.thresholds if area_low < t < area_high)})
    agreeing = sum(b - a for a, b in pairwise(cuts) if table.grade((a + b) / 2) == grade)
    return agreeing / (area_high - area_low)


class _Segmentation:
    """Per-pixel probabilities to area shares, grades and masks."""

    def __init__(self, card: ModelCard, tables: dict[str, GradeTable]) -> None:
        self.defects = [name for name in card.classes if name != PART_CLASS]
        self.part_index = card.classes.index(PART_CLASS)
        self.defect_indices = [card.classes.index(name) for name in self.defects]
        self.tables = tables
        self.nhwc = card.layout == "NHWC"
        self.logits = card.output_activation == "logits"

    def __call__(self, output: np.ndarray, min_confidence: float) -> ViewGrade:
        probs = output[0].transpose(2, 0, 1) if self.nhwc else output[0]
        if self.logits:
            probs = 1.0 / (1.0 + np.exp(-probs))
        part = probs[self.part_index] > PIXEL_THRESHOLD
        n_part = int(np.count_nonzero(part))
        inside = probs[self.defect_indices] * part  # defect probabilities, zero off the part
        masks = inside > PIXEL_THRESHOLD
        defects = {}
        for i, name in enumerate(self.defects):  # flat counts: count_nonzero(axis=...) is slower
            count = int(np.count_nonzero(masks[i]))
            low = int(np.count_nonzero(inside[i] >= CERTAIN_HIGH))
            high = int(np.count_nonzero(inside[i] > CERTAIN_LOW))
            defects[name] = self._grade(name, n_part, count, low, high, min_confidence)
        mask_map = {PART_CLASS: part} | {name: masks[i] for i, name in enumerate(self.defects)}
        return ViewGrade(defects, 100.0 * n_part / part.size, mask_map, probs)

    def _grade(
        self, name: str, n_part: int, count: int, low: int, high: int, min_conf: float
    ) -> DefectGrade:
        table = self.tables[name]
        if n_part == 0:
            return DefectGrade(0.0, table.best, 0.0, table.name, uncertain=True)
        area = 100.0 * count / n_part
        grade = table.grade(area)
        confidence = band_confidence(table, grade, 100.0 * low / n_part, 100.0 * high / n_part)
        return DefectGrade(area, grade, confidence, table.name, confidence < min_conf)


class _Classification:
    """Label probabilities to grades through the card's label_map."""

    def __init__(self, card: ModelCard, tables: dict[str, GradeTable]) -> None:
        self.labels = card.classes
        self.logits = card.output_activation == "logits"
        self.tables = tables
        self.grades, self.areas = {}, {}
        for defect, table in tables.items():
            named = [card.label_map[label] for label in card.classes]
            self.grades[defect] = np.array(
                [m.grade if m.defect == defect else table.best for m in named]
            )
            self.areas[defect] = [m.area_pct if m.defect == defect else 0.0 for m in named]

    def __call__(self, output: np.ndarray, min_confidence: float) -> ViewGrade:
        probs = output[0].astype(np.float32)
        if self.logits:
            probs = np.exp(probs - probs.max())
            probs /= probs.sum()
        top = int(np.argmax(probs))
        defects = {}
        for defect, table in self.tables.items():
            grade = int(self.grades[defect][top])
            confidence = float(probs[self.grades[defect] == grade].sum())
            defects[defect] = DefectGrade(
                self.areas[defect][top], grade, confidence, table.name, confidence < min_confidence
            )
        return ViewGrade(defects, 100.0, {}, probs, label=self.labels[top])


class _Anomaly:
    """An anomaly map to the `anomaly` defect: its share of the image above the card's threshold.

    The anomaly model sees no part outline, so the whole image counts as the part. Pixels at or
    above ANOMALY_BAND times the threshold give the smallest plausible area, those above the
    threshold over ANOMALY_BAND the largest; confidence is, as for segmentation, the share of that
    range in the grade's band (so a good part scoring near the threshold is uncertain).
    """

    def __init__(self, card: ModelCard, tables: dict[str, GradeTable]) -> None:
        assert card.anomaly_threshold is not None  # check_card refuses an anomaly card without
        self.threshold = card.anomaly_threshold
        self.table = tables.get(ANOMALY, ANOMALY_AREA)
        self.nhwc = card.layout == "NHWC"

    def __call__(self, output: np.ndarray, min_confidence: float) -> ViewGrade:
        anomaly_map = output[0, :, :, 0] if self.nhwc else output[0, 0]
        mask = anomaly_map > self.threshold
        share = 100.0 / anomaly_map.size
        area = share * int(np.count_nonzero(mask))
        low = share * int(np.count_nonzero(anomaly_map >= ANOMALY_BAND * self.threshold))
        high = share * int(np.count_nonzero(anomaly_map > self.threshold / ANOMALY_BAND))
        grade = self.table.grade(area)
        confidence = band_confidence(self.table, grade, low, high)
        defect = DefectGrade(area, grade, confidence, self.table.name, confidence < min_confidence)
        heat = anomaly_map / np.float32(self.threshold)
        return ViewGrade({ANOMALY: defect}, 100.0, {ANOMALY: mask}, anomaly_map, heat=heat)


def _postprocessor(
    card: ModelCard, tables: dict[str, GradeTable]
) -> _Segmentation | _Classification | _Anomaly:
    if card.task == "anomaly":
        return _Anomaly(card, tables)
    if card.task == "segmentation":
        return _Segmentation(card, tables)
    return _Classification(card, tables)


def _input_shape(card: ModelCard) -> tuple[int, int, int, int]:
    return _shape_for(card, *card.input_size)


def _shape_for(card: ModelCard, height: int, width: int) -> tuple[int, int, int, int]:
    return (
        (1, card.channels, height, width)
        if card.layout == "NCHW"
        else (1, height, width, card.channels)
    )


def _normalisation(card: ModelCard) -> tuple[np.ndarray, np.ndarray]:
    """Scale and offset so that x * scale - offset == (x / 255 - mean) / std, per channel."""
    std, mean = np.array(card.std, np.float32), np.array(card.mean, np.float32)
    scale, offset = 1.0 / (255.0 * std), mean / std
    if card.layout == "NCHW":
        return scale[:, None, None], offset[:, None, None]
    return scale, offset


def _check_image(image: np.ndarray) -> None:
    if (
        not isinstance(image, np.ndarray)
        or image.dtype != np.uint8
        or image.ndim != 3
        or image.shape[2] != 3
    ):
        got = (
            f"{image.dtype} {image.shape}"
            if isinstance(image, np.ndarray)
            else type(image).__name__
        )
        raise ImageError(f"expected an (H, W, 3) uint8 BGR image, got {got}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ImageError(f"empty image {image.shape}")
