"""Measuring an anomaly model on a labelled set: image and pixel AUROC and PRO with numpy, OpenCV and onnxruntime.

    figures = evaluate_anomaly(model_path, images, masks)   # images (N,H,W,3) uint8 RGB, masks (N,H,W) bool

An image counts as defective when its mask has any defect pixel. No torch: this runs on a node too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from vision.card import read_card


def auroc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve (ties count half), or None when a class is absent."""
    scores = np.asarray(scores, np.float64).ravel()
    positive = np.asarray(positive, bool).ravel()
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(scores.size, np.float64)
    ranks[order] = np.arange(1, scores.size + 1)
    sorted_scores = scores[order]
    # Tied scores share the mean of their ranks.
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], scores.size]
    mean_rank = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def pro_auc(
    maps: np.ndarray, masks: np.ndarray, max_fpr: float = 0.3, steps: int = 200
) -> float | None:
    """Area under the per-region-overlap curve up to `max_fpr` false-positive rate, normalised
    to 0..1 (Bergmann et al., MVTec AD): each connected defect region counts the same, however
    small, so a map that finds only the large defects scores low. None without defect pixels."""
    import cv2

    masks = np.asarray(masks, bool)
    maps = np.asarray(maps, np.float64)
    normal = np.sort(maps[~masks])
    if normal.size == 0 or not masks.any():
        return None
    regions: list[np.ndarray] = []
    for image_map, mask in zip(maps, masks, strict=True):
        count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        regions += [np.sort(image_map[labels == k]) for k in range(1, count)]
    fprs = np.linspace(0.0, max_fpr, steps + 1)
    # the threshold giving each false-positive rate on the normal pixels
    thresholds = np.quantile(normal, 1.0 - fprs)
    overlap = np.mean(
        [1.0 - np.searchsorted(r, thresholds, side="right") / r.size for r in regions], axis=0
    )
    area = np.sum((overlap[1:] + overlap[:-1]) / 2 * np.diff(fprs))  # numpy 1.26 has no trapezoid
    return float(area / max_fpr)


def anomaly_outputs(
    model_path: Path, images: np.ndarray, threads: int = 2, batch_size: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Anomaly maps (N,H,W) and image scores (N,) of (N,H,W,3) uint8 RGB images, by onnxruntime."""
    card = read_card(model_path)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    maps, scores = [], []
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size].transpose(0, 3, 1, 2) / np.float32(255)
        batch_map, batch_score = session.run(card.output_names, {card.input_name: batch})
        maps.append(batch_map[:, 0])
        scores.append(batch_score)
    return np.concatenate(maps), np.concatenate(scores)


BUDGETS = (0.01, 0.02, 0.05, 0.1)  # false-alarm rates `reman train --false-alarms` might be given


def evaluate_anomaly(
    model_path: Path,
    images: np.ndarray,
    masks: np.ndarray,
    threads: int = 2,
    defective: np.ndarray | None = None,
    calibration_scores: np.ndarray | None = None,
) -> dict:
    """Image AUROC, pixel AUROC, PRO (to 30 % false positives), and the card threshold's miss
    and false-alarm rates.

    `defective` flags the defective images; by default, those whose mask has a defect pixel
    (a defect too small to survive resizing its mask then counts as good). With the held-out good
    scores the threshold was calibrated on, `operating_points` gives the rates the thresholds of
    `reman train --false-alarms` for each of BUDGETS would have had on these images.
    """
    maps, scores = anomaly_outputs(model_path, images, threads)
    flags = masks.reshape(len(masks), -1).any(axis=1) if defective is None else defective
    defective = np.asarray(flags, bool)
    threshold = read_card(model_path).anomaly_threshold
    flagged = scores > threshold
    points = (
        None
        if calibration_scores is None
        else [_operating_point(scores, defective, calibration_scores, budget) for budget in BUDGETS]
    )
    return {
        "image_auroc": auroc(scores, defective),
        "pixel_auroc": auroc(maps, masks),
        "pro_auc_0_3": pro_auc(maps, masks),
        "threshold": threshold,
        "good_flagged_share": float(flagged[~defective].mean()) if (~defective).any() else None,
        "defective_missed_share": float((~flagged[defective]).mean()) if defective.any() else None,
        "good_images": int((~defective).sum()),
        "defective_images": int(defective.sum()),
        "operating_points": points,
    }


def _operating_point(
    scores: np.ndarray, defective: np.ndarray, calibration: np.ndarray, budget: float
) -> dict:
    """The rates at the threshold `--false-alarms budget` would set (its quantile, no margin)."""
    threshold = float(np.quantile(np.asarray(calibration, np.float64), 1.0 - budget))
    flagged = scores > threshold
    return {
        "false_alarms": budget,
        "threshold": round(threshold, 4),
        "good_flagged_share": round(float(flagged[~defective].mean()), 4)
        if (~defective).any()
        else None,
        "defective_missed_share": round(float((~flagged[defective]).mean()), 4)
        if defective.any()
        else None,
    }
