"""Evaluating a grader on a labelled folder in `reman synth`'s layout (`reman eval`).

    labels.jsonl  {"image": rel, "masks": {class: rel}, "defects": {defect: {"area_pct", "grade"}}}

IoU per class is summed over the set (total intersection / total union) at each image's own
resolution, the model's probabilities upsampled bilinearly and thresholded at 0.5, as the
training code measures it. Grades are the grader's (area at the model's resolution), compared
with the labelled grade; when the grader's table for a defect differs from the default the
labelled area is re-graded with the grader's table. mean_iou is over the three defect classes.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vision.card import DEFECT_TYPES
from vision.errors import DatasetError, ImageError
from vision.grader import Grader, ViewGrade
from vision.imageio import read_image
from vision.severity import DEFAULT_TABLES, GradeTable

LABELS_FILE = "labels.jsonl"


@dataclass(frozen=True)
class LabelledImage:
    """One line of labels.jsonl with its paths resolved against the folder."""

    image: Path
    masks: dict[str, Path]
    defects: dict[str, dict]


@dataclass
class IoUTally:
    """Intersection and union pixel counts per class, summed over images."""

    intersection: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    union: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, name: str, predicted: np.ndarray, truth: np.ndarray) -> None:
        """Count one image's boolean masks for class `name`."""
        self.intersection[name] += int(np.count_nonzero(predicted & truth))
        self.union[name] += int(np.count_nonzero(predicted | truth))

    def iou(self) -> dict[str, float]:
        """IoU per class (1.0 for a class absent from both truth and predictions)."""
        return {name: self.intersection[name] / u if u else 1.0 for name, u in self.union.items()}


@dataclass
class GradeTally:
    """Labelled against predicted grades per defect type."""

    confusion: dict[str, dict[int, dict[int, int]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(int)))
    )

    def add(self, defect: str, true_grade: int, predicted_grade: int) -> None:
        """Count one (image, defect) pair."""
        self.confusion[defect][true_grade][predicted_grade] += 1

    def pairs(self) -> Iterable[tuple[int, int, int]]:
        """(true, predicted, count) over every defect type."""
        for rows in self.confusion.values():
            for true, cols in rows.items():
                for predicted, count in cols.items():
                    yield true, predicted, count

    def share(self, within: int) -> float:
        """Share of pairs whose grades differ by at most `within` (0: exact)."""
        total = sum(n for _, _, n in self.pairs())
        hits = sum(n for t, p, n in self.pairs() if abs(t - p) <= within)
        return hits / total if total else 0.0

    def confusion_dict(self) -> dict[str, dict[str, dict[str, int]]]:
        """JSON-ready: {defect: {true_grade: {predicted_grade: n}}}, grades as sorted strings."""
        return {
            defect: {
                str(t): {str(p): cols[p] for p in sorted(cols)} for t, cols in sorted(rows.items())
            }
            for defect, rows in sorted(self.confusion.items())
        }


def read_labels(data_dir: str | Path) -> list[LabelledImage]:
    """The folder's labels.jsonl; DatasetError names the file and line of any bad entry."""
    data_dir = Path(data_dir)
    labels = data_dir / LABELS_FILE
    if not labels.is_file():
        raise DatasetError(f"{data_dir}: no {LABELS_FILE} (expected the `reman synth` layout)")
    entries = []
    for number, line in enumerate(labels.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            entries.append(_parse_label(line, data_dir, f"{labels}:{number}"))
    if not entries:
        raise DatasetError(f"{labels}: no labelled images")
    return entries


def _parse_label(line: str, data_dir: Path, where: str) -> LabelledImage:
    try:
        entry = json.loads(line)
        return LabelledImage(
            data_dir / entry["image"],
            {name: data_dir / rel for name, rel in entry.get("masks", {}).items()},
            entry.get("defects", {}),
        )
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise DatasetError(f"{where}: bad label line ({exc.__class__.__name__}: {exc})") from exc


def read_mask(path: Path) -> np.ndarray:
    """A 0/255 (or 0/1) mask PNG as booleans; DatasetError names the file."""
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise DatasetError(f"{path}: missing or unreadable mask")
    return mask > 0


def true_grade(defect: str, label: dict, table: GradeTable) -> int:
    """The labelled grade on the grader's table (re-graded from area_pct if tables differ)."""
    if table == DEFAULT_TABLES.get(defect) and "grade" in label:
        return int(label["grade"])
    return table.grade(float(label["area_pct"]))


def add_iou(tally: IoUTally, view: ViewGrade, classes: list[str], masks: dict[str, Path]) -> None:
    """Count one image's IoU for every class that has a labelled mask."""
    if view.probabilities.ndim != 3:  # classification models have no masks
        return
    for index, name in enumerate(classes):
        if name in masks:
            truth = read_mask(masks[name])
            height, width = truth.shape
            probs = cv2.resize(
                view.probabilities[index], (width, height), interpolation=cv2.INTER_LINEAR
            )
            tally.add(name, probs > 0.5, truth)


def add_grades(
    tally: GradeTally, view: ViewGrade, defects: dict[str, dict], grader: Grader
) -> None:
    """Count one image's labelled against predicted grades."""
    for defect, label in defects.items():
        if defect in view.defects:
            tally.add(
                defect, true_grade(defect, label, grader.tables[defect]), view.defects[defect].grade
            )


def evaluate(grader: Grader, data_dir: str | Path, limit: int | None = None) -> dict:
    """Grade every labelled image; {"images", "iou", "mean_iou", "grade_exact", "grade_within_one", "confusion"}."""
    entries = read_labels(data_dir)[:limit]
    ious, grades = IoUTally(), GradeTally()
    for entry in entries:
        try:
            view = grader.grade(read_image(entry.image))
        except ImageError as exc:
            raise DatasetError(f"{data_dir}: {exc}") from exc
        add_iou(ious, view, grader.card.classes, entry.masks)
        add_grades(grades, view, entry.defects, grader)
    return report(len(entries), ious, grades)


def report(images: int, ious: IoUTally, grades: GradeTally) -> dict:
    """The evaluation figures as a JSON-ready dict."""
    iou = {name: round(value, 4) for name, value in ious.iou().items()}
    defect_ious = [iou[d] for d in DEFECT_TYPES if d in iou]
    return {
        "images": images,
        "iou": iou,
        "mean_iou": round(float(np.mean(defect_ious)), 4) if defect_ious else None,
        "grade_exact": round(grades.share(0), 4),
        "grade_within_one": round(grades.share(1), 4),
        "confusion": grades.confusion_dict(),
    }
