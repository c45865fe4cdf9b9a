"""`reman train --task classify`: a compact CNN from an image-folder layout (one folder a label).

Labels become grades through the card's label_map: a label named like none/free/ok/good/clean
means no defect; every other label is `coating_damage` grade 3 (1 % nominal area) unless a
`--label-map FILE.json` says otherwise, e.g. `{"rust": {"defect": "corrosion", "grade": 4}}`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

from vision.card import DEFECT_TYPES, LabelMapping, ModelCard
from vision.errors import DatasetError
from vision.evaluate_folders import classification_metrics, is_no_defect_label
from vision.folders import ClassFolders, load_images, scan_class_folders
from vision.training.artefacts import write_outputs
from vision.training.fit_photos import (
    TrainSettings,
    fit,
    photo_card,
    pick_device,
    predict_logits,
    seed_everything,
    split_for,
)
from vision.training.nets import build
from vision.training.onnx_weights import export_onnx, init_from_onnx
from vision.training.progress import Curves

DEFAULT_DEFECT = LabelMapping(defect="coating_damage", grade=3, area_pct=1.0)
NO_DEFECT = LabelMapping(defect=None, grade=0, area_pct=0.0)


def build_label_map(classes: list[str], label_map_file: Path | None) -> dict[str, LabelMapping]:
    """Each label's defect type and grade: the file's entries, else the defaults above."""
    given = _read_label_map(label_map_file) if label_map_file else {}
    unknown = [label for label in given if label not in classes]
    if unknown:
        raise DatasetError(
            f"{label_map_file}: labels {unknown} are not class folders ({', '.join(classes)})"
        )
    defaults = {c: NO_DEFECT if is_no_defect_label(c) else DEFAULT_DEFECT for c in classes}
    return {**defaults, **given}


def _read_label_map(path: Path) -> dict[str, LabelMapping]:
    try:
        raw = json.loads(Path(path).read_text())
        mapping = {str(k): LabelMapping.model_validate(v) for k, v in raw.items()}
    except (OSError, ValueError, AttributeError, ValidationError) as exc:
        raise DatasetError(
            f"{path}: not a usable label map (JSON object label -> {{defect, grade, area_pct}}): {exc}"
        ) from exc
    bad = sorted(
        {
            m.defect
            for m in mapping.values()
            if m.defect is not None and m.defect not in DEFECT_TYPES
        }
    )
    if bad:
        raise DatasetError(f"{path}: unknown defect types {bad} (known: {list(DEFECT_TYPES)})")
    return mapping


def train_classifier(
    data: Path, out: Path, settings: TrainSettings, label_map_file: Path | None = None
) -> dict:
    """Check the folder, train, export the model with its card and write the reports; the report."""
    started = time.monotonic()
    folders, label_map, images, labels, (train_idx, val_idx) = prepared(
        data, settings, label_map_file
    )
    spec = {
        "name": "compact_cnn",
        "params": {"num_classes": len(folders.classes), "width": settings.width},
    }
    net, fresh = _initial_net(spec, settings.init)
    evaluate = _validation(net, images[val_idx], labels[val_idx], settings)
    curves = Curves()
    history = fit(
        net,
        images[train_idx],
        labels[train_idx],
        nn.CrossEntropyLoss(label_smoothing=0.05),
        evaluate,
        settings,
        "train",
        curves=curves,
    )
    report = _report(net, folders, images, labels, (train_idx, val_idx), settings, label_map)
    report.update(
        history=history, train_seconds=round(time.monotonic() - started, 1), init_fresh=fresh
    )
    card = _card(out, folders, settings, label_map, report)
    report["outputs"] = {
        k: str(v)
        for k, v in write_outputs(
            out,
            export_onnx(net.cpu(), "softmax", settings.size, card, spec),
            card,
            report,
            curves,
        ).items()
    }
    return report


def prepared(data: Path, settings: TrainSettings, label_map_file: Path | None) -> tuple:
    """The checked folder, its label map, the images at --size, their labels and the seeded
    (train, validation) split: what every classification trainer starts from."""
    folders = scan_class_folders(data)
    label_map = build_label_map(folders.classes, label_map_file)
    images = load_images(folders.images, settings.size, folders.root)
    labels = np.asarray(folders.labels, np.int64)
    split = split_for(folders.labels, settings)
    seed_everything(settings.seed)
    return folders, label_map, images, labels, split


def _initial_net(spec: dict, init: Path | None) -> tuple[nn.Module, list[str]]:
    if init is None:
        return build(spec), []
    return init_from_onnx(Path(init), spec)


def _validation(net, images, labels, settings):
    device = pick_device(settings.device)

    def evaluate(_net) -> dict:
        if not len(images):
            return {}
        logits = torch.from_numpy(predict_logits(net, images, device))
        loss = float(nn.functional.cross_entropy(logits, torch.from_numpy(labels)))
        return {
            "val_loss": loss,
            "val_accuracy": float((logits.argmax(1).numpy() == labels).mean()),
        }

    return evaluate


def _report(net, folders: ClassFolders, images, labels, split, settings, label_map) -> dict:
    train_idx, val_idx = split
    device = pick_device(settings.device)
    no_defect = [i for i, c in enumerate(folders.classes) if label_map[c].defect is None]
    held = val_idx if len(val_idx) else train_idx
    probs = torch.softmax(torch.from_numpy(predict_logits(net, images[held], device)), 1).numpy()
    validation = classification_metrics(labels[held], probs, folders.classes, no_defect)
    validation["split"] = "validation" if len(val_idx) else "training (no validation split)"
    return {
        "task": "classification",
        "data": {
            "root": str(folders.root),
            "images": len(labels),
            "per_class": folders.counts(),
            "train": int(len(train_idx)),
            "validation": int(len(val_idx)),
        },
        "settings": _settings_dict(settings),
        "validation": validation,
    }


def _settings_dict(settings: TrainSettings) -> dict:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(settings).items()}


def _card(
    out: Path, folders: ClassFolders, settings: TrainSettings, label_map, report
) -> ModelCard:
    validation = report["validation"]
    metrics = {"val_accuracy": validation["accuracy"]}
    if "detection" in validation and validation["detection"]["auroc"] is not None:
        metrics["val_defect_auroc"] = validation["detection"]["auroc"]
    counts = ", ".join(f"{k} {v}" for k, v in folders.counts().items())
    return photo_card(
        out,
        settings,
        task="classification",
        classes=folders.classes,
        output_activation="softmax",
        label_map=label_map,
        metrics=metrics,
        training_data=(
            f"{len(folders.images)} images in {len(folders.classes)} class folders of "
            f"{folders.root.name} ({counts}); {report['data']['validation']} held out "
            f"for validation (stratified, seed {settings.seed})"
        ),
        training_source="photos",
        intended_use="Classify photographs like the training images, one label per image.",
    )
