"""Evaluation on photograph folders: image folders (classification) and masks beside images.

`reman eval` dispatches here when DATA is not in the synthetic-core layout (`labels.jsonl`):

- classification: accuracy, per-label precision, recall and F1, the confusion matrix;
- segmentation: IoU and Dice per defect class;
- both: image-level defect detection (any defect against none) as accuracy and AUROC.

numpy, OpenCV and onnxruntime only: it runs on a node without torch.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnxruntime as ort

from vision._onnx import open_session
from vision.card import PART_CLASS, ModelCard, check_card, read_card
from vision.errors import DatasetError, ModelError
from vision.folders import (
    detect_layout,
    load_images,
    load_pairs,
    scan_class_folders,
    scan_mask_pairs,
)

NO_DEFECT = re.compile(
    r"^(none|free|ok|good|clean|normal|pass|reuse|no[_ -]?defects?)$", re.IGNORECASE
)
BATCH = 32


def is_no_defect_label(label: str) -> bool:
    """Whether a label's name says 'no defect' (none, free, ok, good, clean, normal, pass, reuse)."""
    return bool(NO_DEFECT.match(label))


def evaluate_folder(model_path: Path, data: Path, threads: int = 0) -> dict:
    """Evaluate a model on an image-folder or masks-beside-images folder; a JSON-ready report.

    threads: onnxruntime intra-op threads (0: all cores).
    """
    layout = detect_layout(Path(data))
    if layout == "unknown":
        raise DatasetError(
            f"{data}: neither class folders of images nor images with .png masks beside them"
        )
    session, card = open_model(Path(model_path), threads)
    if layout == "folders":
        return _evaluate_classes(session, card, Path(data))
    return _evaluate_masks(session, card, Path(data))


def open_model(path: Path, threads: int = 0) -> tuple[ort.InferenceSession, ModelCard]:
    """An onnxruntime CPU session and the model's card, checked against the graph."""
    session = open_session(Path(path), ["CPUExecutionProvider"], threads)
    card = read_card(path, session)
    check_card(card, session, str(path))
    return session, card


def predict(session: ort.InferenceSession, card: ModelCard, images: np.ndarray) -> np.ndarray:
    """Run (N,H,W,3) uint8 RGB images, already at the card's size, through the model in batches."""
    outputs = [
        session.run(None, {card.input_name: to_tensor(card, images[i : i + BATCH])})[0]
        for i in range(0, len(images), BATCH)
    ]
    return np.concatenate(outputs).astype(np.float32)


def to_tensor(card: ModelCard, images: np.ndarray) -> np.ndarray:
    """Scale, normalise and lay out RGB uint8 images as the card says."""
    if card.color_order == "BGR":
        images = images[..., ::-1]
    x = images.astype(np.float32) / 255.0
    if card.color_order == "GRAY":
        x = x.mean(axis=-1, keepdims=True)
    x = (x - np.asarray(card.mean, np.float32)[: x.shape[-1]]) / np.asarray(card.std, np.float32)[
        : x.shape[-1]
    ]
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2) if card.layout == "NCHW" else x)


def _evaluate_classes(session: ort.InferenceSession, card: ModelCard, data: Path) -> dict:
    if card.task != "classification":
        raise ModelError(f"{data} holds class folders, but the model is a {card.task} model")
    folders = scan_class_folders(data)
    unknown = [c for c in folders.classes if c not in card.classes]
    if unknown:
        raise DatasetError(
            f"{data}: class folders unknown to the model: {', '.join(unknown)} (model labels: {', '.join(card.classes)})"
        )
    images = load_images(folders.images, card.input_size[0], folders.root)
    probs = predict(session, card, images)
    truth = np.array([card.classes.index(folders.classes[i]) for i in folders.labels])
    report = classification_metrics(truth, probs, card.classes, no_defect_indices(card))
    return {"layout": "folders", "task": "classification", **report}


def no_defect_indices(card: ModelCard) -> list[int]:
    """Labels that mean 'no defect': from the card's label map, else by name."""
    if card.label_map:
        return [
            i
            for i, c in enumerate(card.classes)
            if c in card.label_map and card.label_map[c].defect is None
        ]
    return [i for i, c in enumerate(card.classes) if is_no_defect_label(c)]


def classification_metrics(
    truth: np.ndarray, probs: np.ndarray, classes: list[str], no_defect: list[int]
) -> dict:
    """Accuracy, per-label precision/recall/F1, confusion matrix (rows: truth) and detection."""
    predicted = probs.argmax(axis=1)
    confusion = np.zeros((len(classes), len(classes)), np.int64)
    np.add.at(confusion, (truth, predicted), 1)
    report = {
        "images": int(len(truth)),
        "accuracy": float((predicted == truth).mean()) if len(truth) else 0.0,
        "per_class": _per_class(confusion, classes),
        "labels": list(classes),
        "confusion": confusion.tolist(),
    }
    if no_defect and len(no_defect) < len(classes):
        defect_true = ~np.isin(truth, no_defect)
        score = 1.0 - probs[:, no_defect].sum(axis=1)
        report["detection"] = detection_metrics(defect_true, score, ~np.isin(predicted, no_defect))
    return report


def _per_class(confusion: np.ndarray, classes: list[str]) -> dict:
    out = {}
    for i, name in enumerate(classes):
        tp = float(confusion[i, i])
        precision = tp / max(float(confusion[:, i].sum()), 1.0)
        recall = tp / max(float(confusion[i].sum()), 1.0)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[name] = {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": int(confusion[i].sum()),
        }
    return out


def detection_metrics(
    defect_true: np.ndarray, score: np.ndarray, defect_predicted: np.ndarray
) -> dict:
    """Image-level 'any defect' against 'none': accuracy of the decision and AUROC of the score."""
    return {
        "images": int(len(defect_true)),
        "with_defect": int(defect_true.sum()),
        "accuracy": float((defect_true == defect_predicted).mean()) if len(defect_true) else 0.0,
        "auroc": auroc(defect_true, score),
    }


def auroc(positive: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with tied scores ranked by their mean); None if one class is absent."""
    positive = np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(score, kind="mergesort")
    sorted_scores = np.asarray(score)[order]
    ranks = np.empty(len(score), np.float64)
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    mean_ranks = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(mean_ranks, counts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _evaluate_masks(session: ort.InferenceSession, card: ModelCard, data: Path) -> dict:
    if card.task != "segmentation":
        raise ModelError(f"{data} holds images with masks, but the model is a {card.task} model")
    pairs = scan_mask_pairs(data)
    height, width = card.input_size
    images, masks = load_pairs(pairs, height)
    if height != width:
        raise ModelError(
            f"{card.name}: only square inputs are evaluated here, not {height}x{width}"
        )
    probs, names = defect_planes(predict(session, card, images), card, int(masks.max(initial=0)))
    return {"layout": "masks", "task": "segmentation", **segmentation_metrics(masks, probs, names)}


def defect_planes(
    probs: np.ndarray, card: ModelCard, mask_classes: int
) -> tuple[np.ndarray, list[str]]:
    """The defect channels (not `part`) as (N, C, H, W); binary masks against several defect
    channels compare with their union ("any_defect")."""
    if card.layout == "NHWC":
        probs = probs.transpose(0, 3, 1, 2)
    names = [name for name in card.classes if name != PART_CLASS]
    planes = probs[:, [card.classes.index(name) for name in names]]
    if mask_classes <= 1 and len(names) > 1:
        return planes.max(axis=1, keepdims=True), ["any_defect"]
    return planes, names


def segmentation_metrics(
    masks: np.ndarray, probs: np.ndarray, classes: list[str], threshold: float = 0.5
) -> dict:
    """IoU and Dice per defect class over all pixels, and image-level detection.

    `masks` holds class indices (0 background, c+1 for channel c); `probs` is (N, C, H, W).
    An image is predicted defective when any pixel of any class reaches `threshold`; its score
    is its highest defect probability.
    """
    iou, dice = {}, {}
    for c, name in enumerate(classes):
        truth = masks == c + 1
        predicted = probs[:, c] >= threshold
        inter = float(np.logical_and(truth, predicted).sum())
        total = float(truth.sum() + predicted.sum())
        union = total - inter
        iou[name] = inter / union if union else 1.0
        dice[name] = 2 * inter / total if total else 1.0
    score = probs.reshape(len(probs), -1).max(axis=1) if len(probs) else np.zeros(0)
    defect_true = masks.reshape(len(masks), -1).max(axis=1) > 0
    return {
        "images": int(len(masks)),
        "iou": iou,
        "dice": dice,
        "mean_iou": float(np.mean(list(iou.values()))),
        "mean_dice": float(np.mean(list(dice.values()))),
        "detection": detection_metrics(defect_true, score, score >= threshold),
    }


def format_report(report: dict) -> str:
    """A short human-readable summary of a folder evaluation."""
    lines = [f"{report['images']} images ({report['layout']}, {report['task']})"]
    if report["task"] == "classification":
        lines.append(f"accuracy {report['accuracy']:.4f}")
        for name, row in report["per_class"].items():
            lines.append(
                f"  {name:<20} precision {row['precision']:.3f} recall {row['recall']:.3f} f1 {row['f1']:.3f} n={row['support']}"
            )
        lines.append(
            "confusion (rows: truth, columns: predicted; order " + ", ".join(report["labels"]) + ")"
        )
        lines += ["  " + " ".join(f"{v:5d}" for v in row) for row in report["confusion"]]
    else:
        for name in report["iou"]:
            lines.append(
                f"  {name:<20} IoU {report['iou'][name]:.3f} Dice {report['dice'][name]:.3f}"
            )
    if "detection" in report:
        det = report["detection"]
        auc = "n/a" if det["auroc"] is None else f"{det['auroc']:.3f}"
        lines.append(
            f"defect detection: accuracy {det['accuracy']:.4f} AUROC {auc} ({det['with_defect']}/{det['images']} with defect)"
        )
    return "\n".join(lines)
