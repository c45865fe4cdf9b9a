"""Train the reference segmentation model on synthetic cores and ship it as ONNX with its card."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from vision.card import ModelCard, write_card
from vision.synth import CLASSES
from vision.training.data import MEAN, STD, synthetic_set
from vision.training.evaluate import evaluate_synthetic, run_p50_ms
from vision.training.export import export_onnx
from vision.training.loop import TrainConfig, train_segmentation
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

    train_count: int = 3000
    train_seed: int = 1
    eval_count: int = 500
    eval_seed: int = 900_000
    input_size: tuple[int, int] = (160, 160)
    core_size: tuple[int, int] = (256, 256)
    width: int = 16
    epochs: int = 5
    batch_size: int = 16
    lr: float = 2e-3
    threads: int = 2
    version: str = "1.0.0"


def train_reference(out_path: str | Path, recipe: ReferenceRecipe | None = None,
                    log: Callable[[str], None] = print) -> ModelCard:
    """Train, export, evaluate and card the reference model at `out_path`; returns its card."""
    r = recipe or ReferenceRecipe()
    torch.set_num_threads(r.threads)
    torch.manual_seed(r.train_seed)
    started = time.monotonic()
    data = synthetic_set(r.train_count, r.train_seed, r.input_size, r.core_size)
    log(f"{len(data)} synthetic cores ready ({time.monotonic() - started:.0f} s)")
    model = train_segmentation(SegNet(r.width, len(CLASSES)), data,
                               TrainConfig(r.epochs, r.batch_size, r.lr, seed=r.train_seed), log)
    card = reference_card(r)
    out = export_onnx(model, out_path, card)
    metrics = evaluate_synthetic(out, card, r.eval_count, r.eval_seed, r.core_size)
    metrics["run_p50_ms_1thread"] = round(run_p50_ms(out, card), 3)
    metrics["train_minutes"] = round((time.monotonic() - started) / 60, 1)
    card.metrics = metrics
    write_card(out, card)
    log(f"wrote {out}: {metrics}")
    return card


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
        intended_use=INTENDED_USE,
        limits=LIMITS,
    )
