"""The learning loop: reviewed and overridden inspections' images as training data.

`export_reviewed(journal, out)` selects every inspection the rules sent to REVIEW and every
inspection a person overrode, and copies its images into the image-folder layout that
`reman train --task classify` reads: `out/<label>/<inspection id>_<n>.<ext>` (raw frames only:
an annotated overlay never enters a dataset), where the label is
the decision the person made, in lower case (`reuse`, `remanufacture`, `recycle`). A REVIEW
nobody has decided yet goes to `out/unlabelled/` (which training ignores), so it can be labelled
by hand by moving the file. `out/manifest.jsonl` lists every exported image with its inspection,
core, the rules' decision, the person's decision, who and why.

Re-running is idempotent: file names come from inspection ids, so the same image lands in the
same place; an inspection whose override changed moves to its new label's folder.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge.contract import DEFECT_TYPES, NAMED_DEFECT_TYPES, Disposition, InspectionRecord
from edge.errors import JournalError
from edge.journal.journal import Journal
from edge.journal.labels import Label, labels_in_force

UNLABELLED = "unlabelled"
MANIFEST = "manifest.jsonl"
LABEL_MAP = "label-map.json"
"""Beside exported masks: which class value is which defect type (`reman train` reads it)."""


@dataclass
class ExportSummary:
    """What an export wrote and what it could not."""

    inspections: int = 0
    images: int = 0
    per_label: dict[str, int] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """JSON-ready figures."""
        return {
            "inspections": self.inspections,
            "images": self.images,
            "per_label": dict(sorted(self.per_label.items())),
            "missing_images": self.missing,
        }


def export_reviewed(journal: Journal, out: Path) -> ExportSummary:
    """Copy the images of reviewed and overridden inspections into `out` by the person's decision.

    Image files that were pruned or are missing are listed in the summary, not fatal.
    """
    out = Path(out)
    summary = ExportSummary()
    entries = []
    for record in journal.find(limit=None):
        if not needs_person(record):
            continue
        summary.inspections += 1
        label = training_label(record)
        raw = [image for image in journal.images(record.id) if image["kind"] == "raw"]
        for n, image in enumerate(raw):  # overlays carry drawings: never training data
            entry = _export_image(record, label, n, image, out, summary)
            if entry:
                entries.append(entry)
    _write_manifest(out, entries)
    return summary


def export_labelled(journal: Journal, out: Path) -> ExportSummary:
    """Write every labelled view as a raw frame with its mask beside it, the layout
    `reman train --task segment` reads: `out/<inspection id>_v<view>.<ext>` and `...png`.

    The mask holds class values: 0 background, 1.. the defect types in DEFECT_TYPES order (a
    view labelled good is all 0), and `out/label-map.json` says so, so that `reman train --task
    segment --data out` needs no --label-map. Only the label in force counts;
    `out/manifest.jsonl` lists each pair with who labelled it and when.
    """
    out = Path(out)
    summary = ExportSummary()
    entries = []
    for (inspection_id, view), label in sorted(labels_in_force(journal).items()):
        raw = [i for i in journal.images(inspection_id) if i["kind"] == "raw"]
        source = Path(raw[view - 1]["path"]) if len(raw) >= view else None
        if source is None or raw[view - 1]["pruned_at"] is not None or not source.is_file():
            summary.missing.append(str(source or f"{inspection_id} view {view}"))
            continue
        frame = cv2.imread(str(source), cv2.IMREAD_GRAYSCALE)
        if frame is None:
            summary.missing.append(str(source))
            continue
        target = out / f"{inspection_id}_v{view}{source.suffix.lower() or '.jpg'}"
        _copy(source, target)
        painted = _write_mask(label, frame.shape, target)
        summary.inspections += 1
        summary.images += 1
        kind = "+".join(sorted(painted)) or "good"  # an erased layer says "none of that type"
        summary.per_label[kind] = summary.per_label.get(kind, 0) + 1
        entries.append(
            {"image": target.name, "mask": target.with_suffix(".png").name,
             "inspection": inspection_id, "view": view, "good": label.good,
             "masks": sorted(label.masks), "user": label.user, "ts": label.ts}
        )  # fmt: skip
    _write_manifest(out, entries)
    if entries:
        _write_label_map(out)
    return summary


def _write_label_map(out: Path) -> None:
    mapping = {str(DEFECT_TYPES.index(name) + 1): name for name in NAMED_DEFECT_TYPES}
    try:
        (out / LABEL_MAP).write_text(json.dumps(mapping, indent=2) + "\n")
    except OSError as exc:
        raise JournalError(f"dataset export: cannot write {out / LABEL_MAP}: {exc}") from exc


def _write_mask(label: Label, shape: tuple[int, ...], image: Path) -> set[str]:
    """Write the class mask beside `image`; return the defect types with painted pixels."""
    classes = np.zeros(shape[:2], np.uint8)
    found = set()
    for name, path in label.masks.items():
        painted = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if painted is None or painted.shape != classes.shape:
            raise JournalError(f"dataset export: the label mask {path} is missing or resized")
        classes[painted > 0] = DEFECT_TYPES.index(name) + 1
        found |= {name} if painted.any() else set()
    if not cv2.imwrite(str(image.with_suffix(".png")), classes):
        raise JournalError(f"dataset export: cannot write {image.with_suffix('.png')}")
    return found


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(source, target)
    except OSError as exc:
        raise JournalError(
            f"dataset export: cannot copy {source} to {target}: {exc.strerror or exc}"
        ) from exc


def needs_person(record: InspectionRecord) -> bool:
    """Whether a person reviewed or must review the inspection: rules said REVIEW, or overridden."""
    return record.override is not None or record.decision.code == Disposition.REVIEW


def training_label(record: InspectionRecord) -> str:
    """The folder an inspection's images go to: the person's decision, else `unlabelled`."""
    if record.override is None or record.override.code in (Disposition.REVIEW, Disposition.NONE):
        return UNLABELLED
    return record.override.code.name.lower()


def _export_image(
    record: InspectionRecord, label: str, n: int, image: dict, out: Path, summary: ExportSummary
) -> dict | None:
    source = Path(image["path"])
    if image.get("pruned_at") is not None or not source.is_file():
        summary.missing.append(str(source))
        return None
    target = out / label / f"{record.id}_{n}{source.suffix.lower() or '.jpg'}"
    _remove_elsewhere(out, target.name, label)
    _copy(source, target)
    summary.images += 1
    summary.per_label[label] = summary.per_label.get(label, 0) + 1
    return _manifest_entry(record, label, source, target.relative_to(out))


def _remove_elsewhere(out: Path, name: str, label: str) -> None:
    """An earlier export may have put this image under another label (the override changed)."""
    if not out.is_dir():
        return
    for folder in out.iterdir():
        if folder.is_dir() and folder.name != label and (folder / name).is_file():
            (folder / name).unlink()


def _manifest_entry(record: InspectionRecord, label: str, source: Path, relative: Path) -> dict:
    override = record.override
    return {
        "image": relative.as_posix(),
        "label": label,
        "inspection": record.id,
        "core": record.core_id,
        "ts": record.ts,
        "family": record.family,
        "source": str(source),
        "rules_decision": record.decision.label,
        "person_decision": override.label if override else None,
        "user": override.user if override else None,
        "reason": override.reason if override else None,
    }


def _write_manifest(out: Path, entries: list[dict]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / MANIFEST, "w", encoding="utf-8") as handle:
        for entry in entries:
            handle.write(json.dumps(entry) + "\n")
