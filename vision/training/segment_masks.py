"""`reman train --task segment`: a small U-Net from images with same-stem .png masks beside them.

Output channels are `part` (the whole image: photographs of surfaces have no part mask) and one
channel per mask class, named by defect type so the grader uses the model as it is. A binary
mask is `coating_damage` unless `--label-map FILE.json` names another type
(`{"1": "corrosion"}` or `{"defect": "corrosion"}`); masks with class values 1..K need the file
(`{"1": "wear", "2": "corrosion"}`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from vision.card import DEFECT_TYPES, PART_CLASS, ModelCard, read_card
from vision.errors import DatasetError
from vision.evaluate_folders import segmentation_metrics
from vision.folders import MaskPairs, load_pairs, mask_class_count, scan_mask_pairs
from vision.training.artefacts import write_outputs
from vision.training.export import ARCHITECTURE as REFERENCE_ARCHITECTURE
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
from vision.training.onnx_weights import export_onnx, init_from_onnx, read_architecture
from vision.training.progress import Curves

DEFAULT_DEFECT = "coating_damage"


def defect_names(class_count: int, label_map_file: Path | None) -> list[str]:
    """The defect type of each mask class 1..K."""
    given = _read_map(label_map_file) if label_map_file else {}
    if class_count == 1:
        return [given.get("1", given.get("defect", DEFAULT_DEFECT))]
    found = [given.get(str(v)) for v in range(1, class_count + 1)]
    names = [name for name in found if name is not None]
    if len(names) < class_count:
        raise DatasetError(
            f"masks hold class values 1..{class_count}; say which defect type each is with "
            f'--label-map FILE.json, e.g. {{"1": "wear", "2": "corrosion"}}'
        )
    if len(set(names)) != len(names):
        raise DatasetError(
            f"{label_map_file}: two mask classes map to the same defect type: {names}"
        )
    return names


def _read_map(path: Path) -> dict[str, str]:
    try:
        raw = json.loads(Path(path).read_text())
        mapping = {str(k): (v["defect"] if isinstance(v, dict) else v) for k, v in raw.items()}
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as exc:
        raise DatasetError(
            f"{path}: not a usable label map (JSON object mask value -> defect type): {exc}"
        ) from exc
    bad = sorted({v for v in mapping.values() if v not in DEFECT_TYPES})
    if bad:
        raise DatasetError(f"{path}: unknown defect types {bad} (known: {list(DEFECT_TYPES)})")
    return mapping


def segmentation_loss(logits: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice over the defect channels.

    Defects cover a few percent of a photograph at most; the Dice term (and the balanced epochs
    of `fit`) keep a network from learning to predict no defect anywhere.
    """
    target = F.one_hot(masks.long(), logits.shape[1] + 1)[..., 1:].permute(0, 3, 1, 2).float()
    bce = F.binary_cross_entropy_with_logits(logits, target)
    probs = torch.sigmoid(logits)
    inter = (probs * target).sum(dim=(0, 2, 3))
    dice = 1 - (2 * inter + 1) / (probs.sum(dim=(0, 2, 3)) + target.sum(dim=(0, 2, 3)) + 1)
    return bce + dice.mean()


def train_segmenter(
    data: Path, out: Path, settings: TrainSettings, label_map_file: Path | None = None
) -> dict:
    """Check the folder, train, export the model with its card and write the reports; the report."""
    started = time.monotonic()
    pairs = scan_mask_pairs(data)
    images, masks = load_pairs(pairs, settings.size)
    names = defect_names(mask_class_count(masks), label_map_file)
    keys = [f"{g}:{int(m.any())}" for g, m in zip(pairs.groups, masks, strict=True)]
    train_idx, val_idx = split_for(keys, settings)
    seed_everything(settings.seed)
    spec, net, fresh = _initial_net(names, settings)
    evaluate = _validation(net, images[val_idx], masks[val_idx], names, settings)
    curves = Curves()
    history = fit(
        net,
        images[train_idx],
        masks[train_idx],
        segmentation_loss,
        evaluate,
        settings,
        "train",
        spatial=True,
        positives=masks[train_idx].reshape(len(train_idx), -1).max(axis=1) > 0,
        curves=curves,
    )
    report = _report(net, pairs, images, masks, (train_idx, val_idx), settings, names)
    report.update(
        history=history, train_seconds=round(time.monotonic() - started, 1), init_fresh=fresh
    )
    card = _card(out, pairs, settings, names, report)
    onnx_bytes = export_onnx(net.cpu(), "part_sigmoid", settings.size, card, spec)
    written = write_outputs(out, onnx_bytes, card, report, curves)
    report["outputs"] = {k: str(v) for k, v in written.items()}
    return report


def _initial_net(
    names: list[str], settings: TrainSettings
) -> tuple[dict, torch.nn.Module, list[str]]:
    """The network to train: fresh, or rebuilt from `--init`.

    A `reman train` segmentation model is rebuilt as it was (same --width). The shipped
    reference model (`reman_segnet`) keeps its own width and context; its head rows for the
    defect types this data names are carried over, so `coating_damage` starts from the
    reference's `coating_damage` channel.
    """
    spec = {"name": "mask_unet", "params": {"num_classes": len(names), "width": settings.width}}
    if settings.init is None:
        return spec, build(spec), []
    init = Path(settings.init)
    record = read_architecture(init)
    stored, weights = record
    if stored.get("name") != REFERENCE_ARCHITECTURE:
        return (spec, *init_from_onnx(init, spec, record))
    spec = {
        "name": REFERENCE_ARCHITECTURE,
        "params": {**stored["params"], "num_classes": len(names)},
    }
    net, fresh = init_from_onnx(init, spec, record)
    classes = read_card(init).classes
    rows = [classes.index(n) for n in names if n in classes]
    if fresh and len(rows) == len(names):
        layers = net.head
        assert isinstance(layers, torch.nn.Sequential)  # the reference SegNet's head
        last = f"head.{len(layers) - 1}"
        head = layers[-1]
        assert isinstance(head, torch.nn.Conv2d) and head.bias is not None
        with torch.no_grad():
            head.weight.copy_(torch.from_numpy(weights[f"{last}.weight"][rows]))
            head.bias.copy_(torch.from_numpy(weights[f"{last}.bias"][rows]))
        fresh = []
    return spec, net, fresh


def _probs(net, images, settings) -> np.ndarray:
    logits = predict_logits(net, images, pick_device(settings.device))
    return 1.0 / (1.0 + np.exp(-logits))


def _validation(net, images, masks, names, settings):
    def evaluate(_net) -> dict:
        if not len(images):
            return {}
        logits = torch.from_numpy(predict_logits(net, images, pick_device(settings.device)))
        loss = float(segmentation_loss(logits, torch.from_numpy(masks)))
        figures = segmentation_metrics(masks, 1.0 / (1.0 + np.exp(-logits.numpy())), names)
        return {
            "val_loss": loss,
            "val_mean_iou": figures["mean_iou"],
            "val_defect_accuracy": figures["detection"]["accuracy"],
        }

    return evaluate


def _report(net, pairs: MaskPairs, images, masks, split, settings, names) -> dict:
    train_idx, val_idx = split
    held = val_idx if len(val_idx) else train_idx
    validation = segmentation_metrics(masks[held], _probs(net, images[held], settings), names)
    validation["split"] = "validation" if len(val_idx) else "training (no validation split)"
    with_defect = int(sum(bool(m.any()) for m in masks))
    return {
        "task": "segmentation",
        "data": {
            "root": str(pairs.root),
            "images": len(images),
            "with_defect": with_defect,
            "train": int(len(train_idx)),
            "validation": int(len(val_idx)),
            "classes": names,
        },
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(settings).items()},
        "validation": validation,
    }


def _card(
    out: Path, pairs: MaskPairs, settings: TrainSettings, names: list[str], report: dict
) -> ModelCard:
    validation = report["validation"]
    metrics = {
        "val_mean_iou": validation["mean_iou"],
        "val_mean_dice": validation["mean_dice"],
        "val_defect_accuracy": validation["detection"]["accuracy"],
    }
    if validation["detection"]["auroc"] is not None:
        metrics["val_defect_auroc"] = validation["detection"]["auroc"]
    data = report["data"]
    return photo_card(
        out,
        settings,
        task="segmentation",
        classes=[PART_CLASS, *names],
        output_activation="sigmoid",
        metrics=metrics,
        training_data=(
            f"{data['images']} images with masks from {pairs.root.name} "
            f"({data['with_defect']} with defects); {data['validation']} held out for "
            f"validation (stratified by folder and defect presence, seed {settings.seed})"
        ),
        training_source="photos",
        intended_use="Outline defects in photographs like the training images; the part channel is the whole image.",
    )
