"""The training loop: BCE on coverage targets plus soft Dice on the defect channels, AdamW, cosine LR."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

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
    seed: int = 0


def train_segmentation(model: nn.Module, data: SegmentationSet, config: TrainConfig,
                       log: Callable[[str], None] = print) -> nn.Module:
    """Train `model` in place on `data` and return it in eval mode."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    steps_per_epoch = max(1, len(data) // config.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.epochs * steps_per_epoch,
                                                pct_start=0.1)
    model.train()
    for epoch in range(config.epochs):
        started, total = time.monotonic(), 0.0
        order = rng.permutation(len(data))
        for step in range(steps_per_epoch):
            idx = np.sort(order[step * config.batch_size:(step + 1) * config.batch_size])
            x, y = batch_tensors(data, idx, rng)
            loss = segmentation_loss(model(x), y, config.dice_weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.detach().item()
        log(f"epoch {epoch + 1}/{config.epochs} loss {total / steps_per_epoch:.4f} "
            f"({time.monotonic() - started:.0f} s)")
    return model.eval()


def batch_tensors(data: SegmentationSet, idx: np.ndarray,
                  rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised images and 0..1 targets for `idx`, with random flips, 90 degree turns and gain."""
    images = data.images[idx].astype(np.float32) / 255.0
    targets = data.targets[idx].astype(np.float32) / 255.0
    images = images * rng.uniform(0.8, 1.2, (len(idx), 1, 1, 1)).astype(np.float32)
    x = torch.from_numpy((images - np.float32(MEAN)) / np.float32(STD)).permute(0, 3, 1, 2)
    y = torch.from_numpy(targets)
    if rng.random() < 0.5:
        x, y = x.flip(3), y.flip(3)
    if rng.random() < 0.5:
        x, y = x.flip(2), y.flip(2)
    if x.shape[2] == x.shape[3] and rng.random() < 0.5:
        x, y = x.transpose(2, 3), y.transpose(2, 3)
    return x.contiguous(), y.contiguous()


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float) -> torch.Tensor:
    """Mean BCE over all channels plus `dice_weight` x soft Dice loss over the defect channels."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    prob = torch.sigmoid(logits[:, 1:])
    tgt = target[:, 1:]
    inter = (prob * tgt).sum(dim=(0, 2, 3))
    dice = 1 - (2 * inter + 1) / (prob.sum(dim=(0, 2, 3)) + tgt.sum(dim=(0, 2, 3)) + 1)
    return bce + dice_weight * dice.mean()
