"""The training loop for `reman train`: seeded, repeatable, CPU by default, CUDA when present."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vision.card import ModelCard
from vision.training.augment_photos import augment_batch
from vision.training.progress import Curves, Progress

MEAN = (0.5, 0.5, 0.5)
STD = (0.25, 0.25, 0.25)


@dataclass(frozen=True)
class TrainSettings:
    """What `reman train` was asked to do."""

    epochs: int = 30
    size: int = 128
    val_split: float = 0.2
    seed: int = 0
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 5e-4
    width: int = 16
    device: str = "auto"
    init: Path | None = None
    threads: int | None = None
    # Cross-validation: with folds > 1 the validation images are fold `fold` (0-based) of a
    # stratified split into `folds` parts, and val_split is not used.
    folds: int = 0
    fold: int = 0
    # Optimisation steps for the native-resolution segmenter (vision.training.segment_native);
    # None: the epoch-counted trainers above.
    steps: int | None = None
    # A pretrained backbone for --task classify (vision.training.classify_backbone); None: the
    # compact CNN trained from scratch.
    backbone: str | None = None
    # The version in the model card: the node's registry keeps models by it.
    version: str = "1"
    # --task anomaly: the share of good parts the threshold may flag (a quantile of the held-out
    # good images' scores); None: 1.1 x the highest of them (vision.training.anomaly).
    false_alarms: float | None = None


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch so that a run repeats exactly on the same machine."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    """'auto' is CUDA when present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def split_for(keys: list, settings: TrainSettings) -> tuple[np.ndarray, np.ndarray]:
    """The hold-out split, or fold `settings.fold` of `settings.folds` for cross-validation."""
    if settings.folds > 1:
        return stratified_fold(keys, settings.folds, settings.fold, settings.seed)
    return stratified_split(keys, settings.val_split, settings.seed)


def stratified_fold(keys: list, folds: int, fold: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices for fold `fold` of `folds`: each key's items are shuffled
    (seeded) and dealt into `folds` near-equal parts; the validation set is part `fold`."""
    if not 0 <= fold < folds:
        raise ValueError(f"fold {fold} is not in 0..{folds - 1}")
    train, val = [], []
    for members in _shuffled_by_key(keys, seed):
        parts = np.array_split(members, folds)
        val += parts[fold].tolist()
        train += [i for k, part in enumerate(parts) if k != fold for i in part.tolist()]
    return np.array(sorted(train), np.int64), np.array(sorted(val), np.int64)


def stratified_split(keys: list, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation indices: `fraction` of each key's items (at least one where a key has two)."""
    train, val = [], []
    for members in _shuffled_by_key(keys, seed):
        take = int(round(len(members) * fraction))
        if fraction > 0 and len(members) >= 2:
            take = min(max(take, 1), len(members) - 1)
        val += members[:take].tolist()
        train += members[take:].tolist()
    return np.array(sorted(train), np.int64), np.array(sorted(val), np.int64)


def _shuffled_by_key(keys: list, seed: int) -> Iterator[np.ndarray]:
    """The indices of each key's items, key by key in sorted order, each shuffled (seeded)."""
    rng = np.random.default_rng(seed)
    keys_array = np.asarray(keys)
    for key in sorted(set(keys)):
        members = np.flatnonzero(keys_array == key)
        rng.shuffle(members)
        yield members


def to_input(images: np.ndarray) -> torch.Tensor:
    """(N,H,W,3) float 0..1 or uint8 RGB to a normalised NCHW tensor."""
    x = images.astype(np.float32) / 255.0 if images.dtype == np.uint8 else images
    x = (x - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


@torch.no_grad()
def predict_logits(
    net: nn.Module, images: np.ndarray, device: torch.device, batch: int = 64
) -> np.ndarray:
    """The network's raw outputs for uint8 images, in evaluation mode, without augmentation."""
    net.eval()
    parts = [
        net(to_input(images[i : i + batch]).to(device)).float().cpu().numpy()
        for i in range(0, len(images), batch)
    ]
    return np.concatenate(parts) if parts else np.zeros((0,), np.float32)


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Evaluate = Callable[[nn.Module], dict]


def fit(
    net: nn.Module,
    images: np.ndarray,
    targets: np.ndarray,
    loss_fn: LossFn,
    evaluate: Evaluate,
    settings: TrainSettings,
    label: str,
    spatial: bool = False,
    positives: np.ndarray | None = None,
    curves: Curves | None = None,
) -> list[dict]:
    """Train `net` in place; returns one dict per epoch (train loss and `evaluate`'s figures).

    The progress bar goes to stderr; `curves`, when given, gets a row per step and each epoch's
    validation figures.

    `spatial` targets (masks) get the same flips and rotations as their images. With
    `positives` (one bool per image), each epoch takes every positive image and as many
    negatives drawn afresh, so rare defects are not drowned by clean images.
    """
    device = pick_device(settings.device)
    net.to(device)
    rng = np.random.default_rng(settings.seed)
    batches = _batch_count(
        len(_epoch_order(np.random.default_rng(0), len(images), positives)), settings.batch_size
    )
    optimiser = torch.optim.AdamW(
        net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=settings.lr, total_steps=max(settings.epochs * batches, 1), pct_start=0.15
    )
    progress = Progress(settings.epochs * batches, label, curves=curves)
    history: list[dict] = []
    for epoch in range(1, settings.epochs + 1):
        last = _last_figures(history)
        losses = _epoch(
            net,
            images,
            targets,
            _epoch_order(rng, len(images), positives),
            loss_fn,
            (optimiser, schedule),
            rng,
            settings,
            device,
            spatial,
            lambda loss, lr, e=epoch, last=last: progress.step(
                loss, lr, note=f"epoch {e}/{settings.epochs}{last}"
            ),
        )
        figures = evaluate(net)
        if curves is not None and curves.rows and figures:
            curves.measure(**figures)
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), **figures})
    return history


def _last_figures(history: list[dict]) -> str:
    """The previous epoch's validation figures for the progress line."""
    if not history:
        return ""
    shown = [
        f"{k.removeprefix('val_')} {v:.3f}"
        for k, v in history[-1].items()
        if k.startswith("val_") and k != "val_loss"
    ]
    return " | last epoch " + ", ".join(shown) if shown else ""


def _batch_count(count: int, batch_size: int) -> int:
    full, rest = divmod(count, batch_size)
    return full + (1 if rest >= 2 else 0)  # batch norm cannot train on a batch of one


def _epoch_order(rng: np.random.Generator, count: int, positives: np.ndarray | None) -> np.ndarray:
    """This epoch's image indices: all, or every positive and as many negatives, shuffled."""
    if positives is None or not positives.any() or positives.all():
        return rng.permutation(count)
    pos, neg = np.flatnonzero(positives), np.flatnonzero(~positives)
    chosen = rng.choice(neg, size=min(len(pos), len(neg)), replace=False)
    return rng.permutation(np.concatenate([pos, chosen]))


def _epoch(
    net, images, targets, order, loss_fn, optimisation, rng, settings, device, spatial, report
) -> list[float]:
    optimiser, schedule = optimisation
    net.train()
    losses = []
    for start in range(0, len(order), settings.batch_size):
        index = order[start : start + settings.batch_size]
        if len(index) < 2:
            continue
        x, masks = augment_batch(images[index], rng, targets[index] if spatial else None)
        y = torch.from_numpy(np.ascontiguousarray(masks if spatial else targets[index])).to(device)
        loss = loss_fn(net(to_input(x).to(device)), y)
        lr = float(optimiser.param_groups[-1]["lr"])  # the rate this step uses
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
        report(losses[-1] if math.isfinite(losses[-1]) else float("nan"), lr)
    return losses


PHOTO_LIMITS = (
    "Only as good as its training photographs; check on site images before production use."
)


def photo_card(out, settings: TrainSettings, **fields) -> ModelCard:
    """A card for a model trained by `reman train`: the input spec every such model shares,
    plus the task-specific `fields` (task, classes, activation, metrics, training data...)."""
    return ModelCard(
        name=Path(out).stem,
        version=settings.version,
        input_name="image",
        input_size=(settings.size, settings.size),
        layout="NCHW",
        color_order="RGB",
        mean=list(MEAN),
        std=list(STD),
        output_names=["probs"],
        limits=PHOTO_LIMITS,
        **fields,
    )
