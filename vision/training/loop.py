"""The training loop: BCE, soft Dice over the batch and per image, AdamW, one-cycle LR, an
exponential moving average of the weights, and a checkpoint after every epoch.

After the first epoch a share of each epoch (`hard_share`) is drawn again in proportion to each
image's loss the last time it was trained on, so the cores the network still gets wrong (a rare
paint colour, a faint rub mark) come round more often than the ones it has learnt.

The per-image Dice term is what keeps clean parts clean: on a core without a defect type its
loss is sum(p) / (sum(p) + 1), so even a handful of false-positive pixels costs almost as much
as a whole missed defect. Grades come from area shares as small as 0.05 % of the part, a few
pixels at the model's input size, so those stray pixels decide grades 0 and 1.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from vision.training.data import MEAN, STD, SegmentationSet


@dataclass
class TrainConfig:
    """How long and how hard to train."""

    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 1e-4
    dice_weight: float = 1.0
    image_dice_weight: float = 0.5
    ema_decay: float = 0.998
    seed: int = 0
    crop: int = 0  # train on random square crops of this size (0: whole images); cheaper steps
    channels_last: bool = True  # NHWC tensors: the same arithmetic, faster convolutions on CPU
    bf16: bool = (
        False  # bfloat16 convolutions where the CPU has them; weights and loss stay float32
    )
    hard_share: float = 0.0  # share of each epoch after the first drawn by per-image loss
    checkpoint: str = ""  # torch state after every epoch ("" for none)
    resume: bool = False  # continue from `checkpoint` when it exists


def train_segmentation(
    model: nn.Module, data: SegmentationSet, config: TrainConfig, log: Callable[[str], None] = print
) -> nn.Module:
    """Train `model` on `data`; returns the moving average of its weights, in eval mode."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    steps_per_epoch = max(1, len(data) // config.batch_size)
    if config.channels_last:
        model = _in_memory_format(model, torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, config.lr, total_steps=config.epochs * steps_per_epoch, pct_start=0.1
    )
    ema = copy.deepcopy(model).eval()
    recent = np.zeros(len(data), np.float32)  # each image's loss when last trained on (0: not yet)
    first = _resume(config, model, ema, opt, sched, recent, log) if config.resume else 0
    if first:
        rng = np.random.default_rng([config.seed, first])
    bf16 = config.bf16 and bf16_available()
    if config.bf16 and not bf16:
        log("this CPU has no bfloat16 instructions: training in float32")
    model.train()
    for epoch in range(first, config.epochs):
        started, total = time.monotonic(), 0.0
        order = epoch_order(rng, recent, steps_per_epoch * config.batch_size, config.hard_share)
        for step in range(steps_per_epoch):
            idx = np.sort(order[step * config.batch_size : (step + 1) * config.batch_size])
            x, y = batch_tensors(data, idx, rng, config.crop)
            if config.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = model(x)
            logits = logits.float()
            loss = segmentation_loss(logits, y, config.dice_weight, config.image_dice_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            _update_ema(ema, model, config.ema_decay if epoch else 0.9)
            total += loss.detach().item()
            recent[idx] = image_losses(logits.detach(), y)
        log(
            f"epoch {epoch + 1}/{config.epochs} loss {total / steps_per_epoch:.4f} "
            f"({time.monotonic() - started:.0f} s)"
        )
        if config.checkpoint:
            _save(config.checkpoint, epoch + 1, model, ema, opt, sched, recent)
    return _in_memory_format(ema, torch.contiguous_format).eval()


def _in_memory_format(module: nn.Module, fmt: torch.memory_format) -> nn.Module:
    """`module` with its 4-D parameters and buffers in memory format `fmt`."""
    return module.to(memory_format=fmt)  # type: ignore[call-overload]  # stub omits memory_format


@torch.no_grad()
def _update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, m in zip(ema.state_dict().values(), model.state_dict().values(), strict=True):
        if e.dtype.is_floating_point:
            e.mul_(decay).add_(m.detach(), alpha=1 - decay)
        else:
            e.copy_(m)


def bf16_available() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def epoch_order(
    rng: np.random.Generator, recent: np.ndarray, count: int, hard_share: float
) -> np.ndarray:
    """`count` image indices for one epoch, shuffled.

    Until every image has a loss (`recent` > 0) it is a plain permutation. After that, a
    `hard_share` of the epoch is drawn with replacement in proportion to each image's last loss
    and the rest is the start of a fresh permutation, so every image keeps coming round.
    """
    n = len(recent)
    hard = int(round(count * hard_share)) if hard_share > 0 and bool((recent > 0).all()) else 0
    plain = rng.permutation(n)[: count - hard]
    if not hard:
        return plain
    drawn = rng.choice(n, hard, replace=True, p=recent / recent.sum())
    return rng.permutation(np.concatenate([plain, drawn]))


@torch.no_grad()
def image_losses(logits: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Each image's own loss: its mean BCE plus its mean Dice over the defect channels, so a
    missed small defect counts as much as a missed large one."""
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=(1, 2, 3))
    dice = _soft_dice(torch.sigmoid(logits[:, 1:]), target[:, 1:], (2, 3))
    loss = bce + dice.mean(dim=1)
    return loss.clamp_min(1e-6).numpy()


def _save(path: str, epochs_done: int, model, ema, opt, sched, recent: np.ndarray) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    torch.save(
        {
            "epochs_done": epochs_done,
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "opt": opt.state_dict(),
            "sched": sched.state_dict(),
            "recent": torch.from_numpy(recent.copy()),
        },
        tmp,
    )
    tmp.replace(target)


def _resume(config: TrainConfig, model, ema, opt, sched, recent: np.ndarray, log) -> int:
    """Load the checkpoint's state (and its per-image losses into `recent`); epochs done."""
    path = Path(config.checkpoint)
    if not config.checkpoint or not path.is_file():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    if "recent" in state and len(state["recent"]) == len(recent):
        recent[:] = state["recent"].numpy()
    log(f"resumed from {path} after epoch {state['epochs_done']}")
    return int(state["epochs_done"])


def load_checkpoint_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """`model` with the moving-average weights of a checkpoint written by train_segmentation."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    model.load_state_dict(state["ema"])
    return model.eval()


def batch_tensors(
    data: SegmentationSet, idx: np.ndarray, rng: np.random.Generator, crop: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised images and 0..1 targets for `idx`, with random flips, 90 degree turns and gain;
    with `crop`, a random crop x crop window of each image (a multiple of 8 for the network)."""
    images, targets = data.images[idx], data.targets[idx]
    h, w = images.shape[1:3]
    if 0 < crop < min(h, w):
        tops, lefts = (
            rng.integers(0, h - crop + 1, len(idx)),
            rng.integers(0, w - crop + 1, len(idx)),
        )
        images = np.stack(
            [im[t : t + crop, s : s + crop] for im, t, s in zip(images, tops, lefts, strict=True)]
        )
        targets = np.stack(
            [
                tg[:, t : t + crop, s : s + crop]
                for tg, t, s in zip(targets, tops, lefts, strict=True)
            ]
        )
    images = images.astype(np.float32) / 255.0
    targets = targets.astype(np.float32) / 255.0
    images = images * rng.uniform(0.8, 1.2, (len(idx), 1, 1, 1)).astype(np.float32)
    x = torch.from_numpy(
        (images - np.asarray(MEAN, np.float32)) / np.asarray(STD, np.float32)
    ).permute(0, 3, 1, 2)
    y = torch.from_numpy(targets)
    if rng.random() < 0.5:
        x, y = x.flip(3), y.flip(3)
    if rng.random() < 0.5:
        x, y = x.flip(2), y.flip(2)
    if x.shape[2] == x.shape[3] and rng.random() < 0.5:
        x, y = x.transpose(2, 3), y.transpose(2, 3)
    return x.contiguous(), y.contiguous()


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, dice_weight: float, image_dice_weight: float = 0.0
) -> torch.Tensor:
    """Mean BCE over all channels, plus soft Dice over the defect channels: `dice_weight` x Dice
    over the whole batch, `image_dice_weight` x Dice per image (smoothing 1 pixel)."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits[:, 1:])
    tgt = target[:, 1:]
    loss = bce + dice_weight * _soft_dice(prob, tgt, (0, 2, 3)).mean()
    if image_dice_weight:
        loss = loss + image_dice_weight * _soft_dice(prob, tgt, (2, 3)).mean()
    return loss


def _soft_dice(prob: torch.Tensor, target: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    """1 - soft Dice summed over `dims` (smoothing 1 pixel)."""
    inter = (prob * target).sum(dim=dims)
    return 1 - (2 * inter + 1) / (prob.sum(dim=dims) + target.sum(dim=dims) + 1)
