"""`reman train`: one call from the CLI's options to a trained, exported, documented model."""

from __future__ import annotations

from pathlib import Path

import torch

from vision.errors import DatasetError
from vision.training.fit_photos import TrainSettings

TASKS = ("classify", "segment", "anomaly")
EXPORTED_LABEL_MAP = "label-map.json"  # beside masks from `reman dataset export --masks`


def train(
    task: str, data: Path, out: Path, settings: TrainSettings, label_map: Path | None = None
) -> dict:
    """Train a `task` model on the folder `data` and write it to `out` with its card and reports.

    Raises DatasetError (naming the files) before any training when the folder cannot be used.
    """
    _check_settings(task, settings)
    if label_map is None and task == "segment" and (Path(data) / EXPORTED_LABEL_MAP).is_file():
        label_map = Path(data) / EXPORTED_LABEL_MAP  # written by `reman dataset export --masks`
    if settings.threads:
        torch.set_num_threads(settings.threads)
    if task == "classify" and settings.backbone:
        from vision.training.classify_backbone import train_backbone_classifier

        return train_backbone_classifier(Path(data), Path(out), settings, label_map)
    if task == "classify":
        from vision.training.classify import train_classifier

        return train_classifier(Path(data), Path(out), settings, label_map)
    if task == "anomaly":
        from vision.training.fit_anomaly import train_anomaly

        return train_anomaly(Path(data), Path(out), settings)
    if settings.steps:
        from vision.training.segment_native import train_native_segmenter

        return train_native_segmenter(Path(data), Path(out), settings, label_map)
    from vision.training.segment_masks import train_segmenter

    return train_segmenter(Path(data), Path(out), settings, label_map)


def _check_settings(task: str, settings: TrainSettings) -> None:
    if task not in TASKS:
        raise DatasetError(f"unknown task {task!r}; one of {', '.join(TASKS)}")
    if settings.size < 32 or settings.size % 8:
        raise DatasetError(f"--size {settings.size}: must be a multiple of 8, at least 32")
    if not 0 <= settings.val_split < 1:
        raise DatasetError(f"--val-split {settings.val_split}: must be at least 0 and below 1")
    if settings.epochs < 1:
        raise DatasetError(f"--epochs {settings.epochs}: must be at least 1")
    if settings.backbone is not None:
        _check_backbone(task, settings)
    if settings.steps is not None and task != "segment":
        raise DatasetError("--steps is for --task segment (the native-resolution segmenter)")
    if settings.false_alarms is not None:
        if task != "anomaly":
            raise DatasetError("--false-alarms is for --task anomaly")
        if not 0 < settings.false_alarms < 0.5:
            raise DatasetError(f"--false-alarms {settings.false_alarms}: above 0 and below 0.5")
        if settings.val_split <= 0:
            raise DatasetError("--false-alarms needs held-out good images: --val-split above 0")


def _check_backbone(task: str, settings: TrainSettings) -> None:
    from vision.training.classify_backbone import BACKBONES

    if task != "classify":
        raise DatasetError("--backbone is for --task classify")
    if settings.backbone not in BACKBONES:
        raise DatasetError(f"--backbone {settings.backbone}: one of {', '.join(BACKBONES)}")
    if settings.size % 32:
        raise DatasetError(f"--size {settings.size}: a multiple of 32 with --backbone")
    if settings.init is not None:
        raise DatasetError("--init is not for --backbone (the backbone is the starting point)")


def summary(report: dict) -> str:
    """A few lines for the terminal: where the outputs went and the validation figures."""
    validation = report["validation"]
    if report["task"] == "anomaly":
        figures = (
            f"threshold {validation['threshold']:.4g} "
            f"(highest held-out good score {validation['good_score_max']:.4g}; "
            f"flags {validation['good_flagged']} of them)"
        )
    elif report["task"] == "classification":
        figures = f"accuracy {validation['accuracy']:.4f}"
    else:
        figures = f"mean IoU {validation['mean_iou']:.3f}, mean Dice {validation['mean_dice']:.3f}"
    detection = validation.get("detection")
    if detection:
        auc = "n/a" if detection["auroc"] is None else f"{detection['auroc']:.3f}"
        figures += f"; defect detection accuracy {detection['accuracy']:.4f}, AUROC {auc}"
    lines = [
        f"{validation['split']}: {figures} ({validation['images']} images)",
        f"trained in {report['train_seconds']:.0f} s",
    ]
    lines += [f"{kind}: {path}" for kind, path in report["outputs"].items()]
    if validation.get("note"):
        lines.append(f"note: {validation['note']}")
    return "\n".join(lines)
