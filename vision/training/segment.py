"""Train the reference segmentation model on synthetic cores and ship it as ONNX with its card."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from vision.card import ModelCard, write_card
from vision.severity import DEFAULT_TABLES
from vision.synth import CLASSES, DEFECTS, generate_core
from vision.training.data import MEAN, STD, normalise, resize_image, synthetic_set
from vision.training.evaluate import evaluate_synthetic, run_p50_ms
from vision.training.export import export_onnx, reference_spec
from vision.training.loop import TrainConfig, load_checkpoint_weights, train_segmentation
from vision.training.net import SegNet

INTENDED_USE = (
    "Reference model for reman-edge demos, tests and benchmarks: per-pixel part, wear, corrosion "
    "and coating damage on a single core photographed against a plain background."
)
LIMITS = (
    "Trained on synthetic cores only. Not validated on real photographs: it must be retrained or "
    "fine-tuned and measured on labelled images from the site before production use. One part per "
    "image, filling much of the frame; small defects near the Ri1 threshold are at the limit of "
    "its input resolution."
)


@dataclass
class ReferenceRecipe:
    """Everything that decides the shipped model (the defaults reproduce it)."""

    train_count: int = 8000
    train_seed: int = 1
    calib_count: int = 1000
    calib_seed: int = 800_000
    eval_count: int = 500
    eval_seed: int = 900_000
    input_size: tuple[int, int] = (160, 160)
    core_size: tuple[int, int] = (256, 256)
    width: int = 22
    context: bool = True
    epochs: int = 16
    batch_size: int = 16
    crop: int = 0
    lr: float = 3e-3
    threads: int = 2
    bf16: bool = True
    hard_share: float = 0.9
    version: str = "1.5.0"
    cache_dir: str = ""  # the command line keeps the drawn cores in /tmp/reman-seg-cache
    checkpoint: str = ""  # the command line saves the training state to /tmp/reman-seg-train.pt
    resume: bool = False
    from_checkpoint: bool = False


def train_reference(
    out_path: str | Path, recipe: ReferenceRecipe | None = None, log: Callable[[str], None] = print
) -> ModelCard:
    """Train, calibrate, export, evaluate and card the reference model at `out_path`; returns its card.

    With `from_checkpoint` the training is skipped and the moving-average weights of
    `checkpoint` are calibrated and exported (for a run that was stopped early).
    """
    r = recipe or ReferenceRecipe()
    torch.set_num_threads(r.threads)
    torch.manual_seed(r.train_seed)
    started = time.monotonic()
    model: torch.nn.Module = SegNet(r.width, len(CLASSES), r.context)
    if r.from_checkpoint:
        model = load_checkpoint_weights(model, r.checkpoint)
        log(f"weights from {r.checkpoint}")
    else:
        data = synthetic_set(
            r.train_count,
            r.train_seed,
            r.input_size,
            r.core_size,
            workers=r.threads,
            cache_dir=r.cache_dir or None,
        )
        log(f"{len(data)} synthetic cores ready ({time.monotonic() - started:.0f} s)")
        config = TrainConfig(
            r.epochs,
            r.batch_size,
            r.lr,
            seed=r.train_seed,
            crop=r.crop,
            bf16=r.bf16,
            hard_share=r.hard_share,
            checkpoint=r.checkpoint,
            resume=r.resume,
        )
        model = train_segmentation(model, data, config, log)
        del data
    thresholds = calibrate(model, r)
    log(
        f"calibrated thresholds on cores {r.calib_seed}..{r.calib_seed + r.calib_count - 1}: {thresholds}"
    )
    card = reference_card(r)
    out = export_onnx(model, out_path, card, reference_spec(r.width, len(CLASSES), r.context))
    metrics = evaluate_synthetic(out, card, r.eval_count, r.eval_seed, r.core_size)
    metrics["run_p50_ms_1thread"] = round(run_p50_ms(out, card), 3)
    metrics["train_minutes"] = round((time.monotonic() - started) / 60, 1)
    card.metrics = metrics
    write_card(out, card)
    log(f"wrote {out}: {metrics}")
    return card


_THRESHOLDS = np.round(np.arange(0.05, 0.91, 0.05), 2)


@torch.no_grad()
def calibrate(model: torch.nn.Module, r: ReferenceRecipe) -> dict[str, float]:
    """Pick, per defect type, the probability at which a pixel counts as defective.

    On `calib_count` fresh cores (seeds away from training and evaluation) each candidate
    threshold is scored by the IoU at the input size plus the shares of exact and
    within-one grades; the best one is folded into the head's bias (logit - logit(t)), so the
    graph's 0.5 is that threshold and the grader needs no setting. Returns the chosen thresholds.
    """
    if r.calib_count <= 0:
        return {}
    model.eval()
    probs, truths, grades = [], [], []
    for i in range(r.calib_count):
        core = generate_core(r.calib_seed + i, r.core_size)
        x = torch.from_numpy(normalise(resize_image(core.image, r.input_size)))
        probs.append(torch.sigmoid(model(x))[0].numpy())
        h, w = r.input_size
        truths.append(np.stack([_share(core.masks[c], (w, h)) for c in CLASSES]) >= 0.5)
        grades.append(core.grades)
    probs_a, truth_a = np.stack(probs), np.stack(truths)
    part = probs_a[:, 0] > 0.5
    n_part = np.maximum(part.sum(axis=(1, 2)), 1)
    chosen = {}
    head = _last_conv(model)
    assert head.bias is not None  # the head convolution has a bias
    for d in DEFECTS:
        c = CLASSES.index(d)
        want = np.array([g[d] for g in grades])
        best, best_t = -1.0, 0.5
        for t in _THRESHOLDS:
            pred = probs_a[:, c] > t
            iou = (pred & truth_a[:, c]).sum() / max((pred | truth_a[:, c]).sum(), 1)
            area = 100.0 * (pred & part).sum(axis=(1, 2)) / n_part
            got = np.array([DEFAULT_TABLES[d].grade(float(a)) for a in area])
            score = iou + np.mean(got == want) + np.mean(np.abs(got - want) <= 1)
            if score > best + 1e-9:
                best, best_t = score, float(t)
        chosen[d] = best_t
        head.bias[c] -= math.log(best_t / (1 - best_t))
    return chosen


def _share(mask: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    return cv2.resize(mask.astype(np.float32), size_wh, interpolation=cv2.INTER_AREA)


def _last_conv(model: torch.nn.Module) -> torch.nn.Conv2d:
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    return convs[-1]


def reference_card(r: ReferenceRecipe) -> ModelCard:
    """The card for a model trained with recipe `r` (metrics filled in after evaluation)."""
    return ModelCard(
        name="reman-seg",
        version=r.version,
        task="segmentation",
        input_name="image",
        input_size=r.input_size,
        layout="NCHW",
        color_order="RGB",
        mean=list(MEAN),
        std=list(STD),
        output_names=["probs"],
        classes=list(CLASSES),
        output_activation="sigmoid",
        training_data=(
            f"{r.train_count} synthetic cores from vision.synth (seeds {r.train_seed}.."
            f"{r.train_seed + r.train_count - 1}, {r.core_size[1]}x{r.core_size[0]} px, resized to "
            f"{r.input_size[1]}x{r.input_size[0]}); evaluated on {r.eval_count} fresh cores "
            f"(seeds {r.eval_seed}..{r.eval_seed + r.eval_count - 1})."
        ),
        training_source="synthetic",
        intended_use=INTENDED_USE,
        limits=LIMITS,
    )
