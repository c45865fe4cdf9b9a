"""How well an ONNX segmentation model does on synthetic cores (onnxruntime and numpy only).

IoU is computed at the image's own resolution (probabilities upsampled bilinearly, > 0.5)
against the exact masks, summed over the whole set. Grades are computed at the model's input
resolution: predicted-defect pixels (> 0.5) inside the predicted part over predicted part pixels,
mapped with vision.severity.DEFAULT_TABLES, compared with the label's grade.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from vision.card import ModelCard
from vision.errors import ModelError
from vision.severity import DEFAULT_TABLES
from vision.synth import DEFECTS, SynthCore, generate_core
from vision.training.data import normalise, resize_image


def load_session(model_path: str | Path, threads: int = 1) -> ort.InferenceSession:
    """A CPU onnxruntime session limited to `threads` threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelError(f"{model_path}: cannot load: {exc}") from exc


def predict(session: ort.InferenceSession, card: ModelCard, bgr: np.ndarray) -> np.ndarray:
    """Per-class probabilities (C, H, W) at the model's input size for a BGR image."""
    x = normalise(resize_image(bgr, card.input_size), card.mean, card.std)
    return session.run(card.output_names[:1], {card.input_name: x})[0][0]


def predicted_areas(probs: np.ndarray, classes: list[str]) -> dict[str, float]:
    """Per defect: predicted-defect pixels inside the predicted part, percent of part pixels."""
    part = probs[classes.index("part")] > 0.5
    n_part = int(part.sum())
    return {
        d: 100.0 * float(((probs[classes.index(d)] > 0.5) & part).sum()) / max(n_part, 1)
        for d in DEFECTS
    }


def evaluate_cores(
    model_path: str | Path, card: ModelCard, cores: Iterable[SynthCore]
) -> dict[str, float]:
    """IoU per class, mean IoU over the defects, grade exact and within one, over `cores`."""
    session = load_session(model_path, threads=2)
    inter, union = dict.fromkeys(card.classes, 0), dict.fromkeys(card.classes, 0)
    exact = within = pairs = 0
    for core in cores:
        probs = predict(session, card, core.image)
        _add_iou(probs, card.classes, core, inter, union)
        for defect, area in predicted_areas(probs, card.classes).items():
            diff = abs(DEFAULT_TABLES[defect].grade(area) - core.grades[defect])
            exact, within, pairs = exact + (diff == 0), within + (diff <= 1), pairs + 1
    iou = {c: inter[c] / union[c] if union[c] else 1.0 for c in card.classes}
    metrics = {f"iou_{c}": round(v, 4) for c, v in iou.items()}
    metrics["mean_iou"] = round(float(np.mean([iou[d] for d in DEFECTS])), 4)
    metrics["grade_exact"] = round(exact / max(pairs, 1), 4)
    metrics["grade_within_one"] = round(within / max(pairs, 1), 4)
    return metrics


def _add_iou(probs, classes, core: SynthCore, inter: dict, union: dict) -> None:
    h, w = core.image.shape[:2]
    for i, name in enumerate(classes):
        pred = cv2.resize(probs[i], (w, h), interpolation=cv2.INTER_LINEAR) > 0.5
        truth = core.masks[name] > 0
        inter[name] += int((pred & truth).sum())
        union[name] += int((pred | truth).sum())


def evaluate_synthetic(
    model_path: str | Path,
    card: ModelCard,
    count: int,
    seed: int,
    size: tuple[int, int] = (256, 256),
) -> dict[str, float]:
    """evaluate_cores on `count` fresh synthetic cores with seeds seed..seed+count-1."""
    return evaluate_cores(model_path, card, (generate_core(seed + i, size) for i in range(count)))


def run_p50_ms(model_path: str | Path, card: ModelCard, runs: int = 200) -> float:
    """Median wall time of one bare session.run on one thread, in milliseconds."""
    session = load_session(model_path, threads=1)
    h, w = card.input_size
    feed = {card.input_name: np.zeros((1, 3, h, w), np.float32)}
    for _ in range(10):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)
