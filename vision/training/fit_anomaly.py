"""`reman train --task anomaly`: a folder of good images to a calibrated anomaly model (ONNX + card).

The folder's images (any depth) are split, seeded: `val_split` of them are held out to calibrate
the decision threshold, the rest build the memory bank (vision.training.anomaly). The exported
graph holds the backbone, the bank and the nearest-neighbour search; before the model is written,
its ONNX scores are compared with the torch scores on the held-out images, and a difference above
SCORE_TOLERANCE is refused (an export that scores differently from training is not shipped).
"""

from __future__ import annotations

import io
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch

from vision.card import ANOMALY_CLASS, ModelCard, card_path, embed_card
from vision.errors import DatasetError, ModelError
from vision.folders import IMAGE_SUFFIXES, load_images
from vision.training.anomaly import (
    MAP_OUTPUT,
    SCORE_OUTPUT,
    AnomalySettings,
    PatchCore,
    calibrate_threshold,
    fit_patchcore,
    score_images,
    to_tensor,
)
from vision.training.backbone import MULTIPLE, Encoder, load_efficientnet_lite0
from vision.training.fit_photos import TrainSettings

INPUT_NAME = "image"
OPSET = 17
SCORE_TOLERANCE = 1e-4


def train_anomaly(
    data: Path, out: Path, settings: TrainSettings, anomaly: AnomalySettings | None = None
) -> dict:
    """Learn the good images under `data`, write `out` (ONNX), its card and a metrics JSON."""
    anomaly = anomaly or anomaly_settings(settings)
    paths = good_images(data, settings.size)
    bank_idx, calibration_idx = calibration_split(len(paths), settings.val_split, settings.seed)
    started = time.monotonic()
    images = load_images(paths, settings.size, data)
    encoder = Encoder(load_efficientnet_lite0(), anomaly.taps)
    model = fit_patchcore(encoder, images[bank_idx], anomaly, show=True)
    good_scores = score_images(model, images[calibration_idx], anomaly.batch_size)
    threshold = calibrate_threshold(good_scores, anomaly.quantile, anomaly.margin)
    onnx_bytes = export_anomaly(model, images[calibration_idx[:4]])
    train_seconds = time.monotonic() - started
    report = _report(data, paths, bank_idx, good_scores, threshold, model, anomaly, train_seconds)
    card = _card(out, settings, anomaly, threshold, report)
    report["outputs"] = {k: str(v) for k, v in write_anomaly(out, onnx_bytes, card, report).items()}
    return report


def anomaly_settings(settings: TrainSettings) -> AnomalySettings:
    """The bank and threshold settings `reman train` asks for: with `false_alarms`, the threshold
    is that upper quantile of the held-out good scores (no margin); else the defaults."""
    if settings.false_alarms is None:
        return AnomalySettings(seed=settings.seed)
    return AnomalySettings(seed=settings.seed, quantile=1.0 - settings.false_alarms, margin=1.0)


def good_images(data: Path, size: int) -> list[Path]:
    """The image files under `data`; DatasetError when there are too few or `size` is unusable."""
    if size % MULTIPLE:
        raise DatasetError(f"--size {size}: the anomaly model needs a multiple of {MULTIPLE}")
    if not Path(data).is_dir():
        raise DatasetError(f"dataset folder not found: {data}")
    paths = sorted(
        p
        for p in Path(data).rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )
    if len(paths) < 2:
        raise DatasetError(
            f"{data}: {len(paths)} image(s); the anomaly model needs good images for its "
            "memory bank and at least one more to calibrate the threshold"
        )
    return paths


def calibration_split(count: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded bank and calibration indices; at least one of each."""
    order = np.random.default_rng(seed).permutation(count)
    held = min(count - 1, max(1, round(fraction * count)))
    return np.sort(order[held:]), np.sort(order[:held])


def export_anomaly(model: PatchCore, check_images: np.ndarray) -> bytes:
    """The model as ONNX bytes, refused when its scores on `check_images` differ from torch's."""
    height, width = model.size
    buffer = io.BytesIO()
    axes = {0: "batch"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
            torch.onnx.export(
                model,
                (torch.zeros(1, 3, height, width),),
                buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes file objects too
                dynamo=False,
                opset_version=OPSET,
                input_names=[INPUT_NAME],
                output_names=[MAP_OUTPUT, SCORE_OUTPUT],
                dynamic_axes={INPUT_NAME: axes, MAP_OUTPUT: axes, SCORE_OUTPUT: axes},
            )
    except Exception as exc:  # torch raises many types here; one boundary
        raise ModelError(f"ONNX export of the anomaly model failed: {exc}") from exc
    data = _with_output_shapes(buffer.getvalue(), height, width)
    difference = score_difference(model, data, check_images)
    if difference > SCORE_TOLERANCE:
        raise ModelError(
            f"the exported anomaly model scores differently from training: {difference:.2e} "
            f"apart (tolerance {SCORE_TOLERANCE:g})"
        )
    return data


def _with_output_shapes(onnx_bytes: bytes, height: int, width: int) -> bytes:
    """The graph with its outputs declared as (batch, 1, H, W) and (batch,): the exporter's
    shape inference leaves the map's sides symbolic, and the card check reads these shapes."""
    model = onnx.load_from_string(onnx_bytes)
    shapes: list[list[int | None]] = [[None, 1, height, width], [None]]
    for output, sizes in zip(model.graph.output, shapes, strict=True):
        dims = output.type.tensor_type.shape.dim
        for dim, size in zip(dims, sizes, strict=True):
            if size is None:
                dim.dim_param = "batch"
            else:
                dim.dim_value = size
    return model.SerializeToString()


def score_difference(model: PatchCore, onnx_bytes: bytes, images: np.ndarray) -> float:
    """Largest |ONNX score - torch score| over `images` (N,H,W,3) uint8 RGB."""
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    torch_scores = score_images(model, images)
    onnx_scores = session.run([SCORE_OUTPUT], {INPUT_NAME: to_tensor(images).numpy()})[0]
    return float(np.max(np.abs(onnx_scores - torch_scores)))


def write_anomaly(out: Path, onnx_bytes: bytes, card: ModelCard, report: dict) -> dict[str, Path]:
    """Write the model with its card embedded, the card beside it and the metrics JSON."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = onnx.load_from_string(onnx_bytes)
    embed_card(model, card)
    onnx.save(model, str(out))
    paths = {"model": out, "card": card_path(out), "metrics": out.with_suffix(".metrics.json")}
    paths["card"].write_text(card.model_dump_json(indent=2) + "\n")
    paths["metrics"].write_text(json.dumps(report, indent=2) + "\n")
    return paths


def _report(data, paths, bank_idx, good_scores, threshold, model, anomaly, seconds) -> dict:
    return {
        "task": "anomaly",
        "data": {
            "root": str(data),
            "images": len(paths),
            "train": len(bank_idx),
            "validation": len(good_scores),
        },
        "bank": {"entries": int(model.bank.shape[0]), "dims": int(model.bank.shape[1])},
        "settings": {
            "taps": list(anomaly.taps),
            "standardize": anomaly.standardize,
            "coreset_ratio": anomaly.coreset_ratio,
            "max_bank": anomaly.max_bank,
            "quantile": anomaly.quantile,
            "margin": anomaly.margin,
            "seed": anomaly.seed,
        },
        "validation": {
            "split": "calibration (held-out good images)",
            "images": len(good_scores),
            "threshold": threshold,
            "good_score_max": float(np.max(good_scores)),
            "good_score_median": float(np.median(good_scores)),
            "good_flagged": int(np.count_nonzero(good_scores > threshold)),
            "good_scores": [round(float(s), 4) for s in np.sort(good_scores)],
            "note": _threshold_note(len(good_scores), anomaly),
        },
        "train_seconds": seconds,
    }


def _threshold_note(count: int, anomaly: AnomalySettings) -> str | None:
    """What the user should know of the threshold: that the default misses faint defects, or
    that the held-out good images are too few to place the asked-for quantile."""
    wanted = 1.0 - anomaly.quantile
    if wanted <= 0 and anomaly.margin > 1.0:
        return (
            f"the threshold is {anomaly.margin:g} x the highest held-out good score: it flags "
            "none of them and lets faint defects through; --false-alarms 0.02 or 0.05 sends that "
            "share of good parts to REVIEW and misses fewer defects (models/README.md)"
        )
    if wanted <= 0 or count * wanted >= 1:
        return None
    return (
        f"{count} held-out good images cannot show a false-alarm rate of {wanted:.1%} (one of "
        f"them is {1 / count:.1%}); hold out at least {math.ceil(1 / wanted)} (--val-split) "
        "for that threshold to mean it"
    )


def _card(
    out: Path, settings: TrainSettings, anomaly: AnomalySettings, threshold: float, report: dict
) -> ModelCard:
    data = report["data"]
    return ModelCard(
        name=Path(out).stem,
        version=settings.version,
        task="anomaly",
        input_name=INPUT_NAME,
        input_size=(settings.size, settings.size),
        output_names=[MAP_OUTPUT, SCORE_OUTPUT],
        classes=[ANOMALY_CLASS],
        anomaly_threshold=threshold,
        training_data=f"{data['train']} good images from {data['root']} (memory bank); "
        f"{data['validation']} held out to calibrate the threshold",
        metrics={
            "threshold": threshold,
            "bank_entries": float(report["bank"]["entries"]),
            "good_score_max": report["validation"]["good_score_max"],
        },
        intended_use="Flag cores of the trained part family that differ from its good parts "
        "(anomaly map and image score; the grader reports the `anomaly` defect).",
        limits="Knows only the good parts it was shown: another family, camera, lighting or "
        "framing is anomalous too. It says where a part differs, not what the defect is.",
    )
