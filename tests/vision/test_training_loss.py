"""The reference training loss and memory layout: what the loss weighs, and that the layout changes nothing."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vision.training.data import SegmentationSet  # noqa: E402
from vision.training.loop import TrainConfig, segmentation_loss, train_segmentation  # noqa: E402
from vision.training.net import SegNet  # noqa: E402


def _logits(prob: np.ndarray) -> torch.Tensor:
    return torch.logit(torch.from_numpy(prob.astype(np.float32)), eps=1e-6)


def _case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A 16x16 defect on channel 1; one prediction misses 32 of its pixels, one adds 32 false ones."""
    target = np.zeros((1, 4, 32, 32), np.float32)
    target[0, 0] = 1.0
    target[0, 1, 8:24, 8:24] = 1.0
    missed = target.copy()
    missed[0, 1, 8:10, 8:24] = 0.0
    extra = target.copy()
    extra[0, 1, 24:26, 8:24] = 1.0
    return target, missed, extra


def test_plain_dice_counts_a_miss_and_a_false_alarm_alike():
    target, missed, extra = _case()
    y = torch.from_numpy(target)
    miss = segmentation_loss(_logits(missed), y, 1.0, 0.5)
    false = segmentation_loss(_logits(extra), y, 1.0, 0.5)
    perfect = segmentation_loss(_logits(target), y, 1.0, 0.5)
    assert miss > perfect and false > perfect
    assert float(miss) == pytest.approx(float(false), rel=0.05)


def test_the_loss_is_bce_plus_the_soft_dice_of_the_defect_channels():
    rng = np.random.default_rng(3)
    prob = rng.uniform(0.01, 0.99, (2, 4, 16, 16))
    target = (rng.random((2, 4, 16, 16)) < 0.2).astype(np.float32)
    p, t = torch.from_numpy(prob[:, 1:].astype(np.float32)), torch.from_numpy(target[:, 1:])
    inter = (p * t).sum(dim=(0, 2, 3))
    dice = 1 - (2 * inter + 1) / (p.sum(dim=(0, 2, 3)) + t.sum(dim=(0, 2, 3)) + 1)
    bce = torch.nn.functional.binary_cross_entropy(
        torch.from_numpy(prob.astype(np.float32)), torch.from_numpy(target)
    )
    got = segmentation_loss(_logits(prob), torch.from_numpy(target), 1.0, 0.0)
    assert float(got) == pytest.approx(float(bce + dice.mean()), rel=1e-4)


def test_channels_last_training_gives_the_same_weights_as_the_default_layout():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    targets = (rng.random((8, 4, 32, 32)) < 0.3).astype(np.uint8) * 255
    data = SegmentationSet(images, targets, [{} for _ in range(8)])
    torch.manual_seed(0)
    start = SegNet(4, 4)
    results = []
    for layout in (False, True):
        config = TrainConfig(epochs=1, batch_size=4, lr=1e-3, seed=5, channels_last=layout)
        results.append(
            train_segmentation(copy.deepcopy(start), data, config, log=lambda _line: None)
        )
    x = torch.from_numpy(rng.normal(size=(1, 3, 32, 32)).astype(np.float32))
    with torch.no_grad():
        a, b = results[0](x), results[1](x)
    assert b.is_contiguous()
    assert torch.allclose(a, b, atol=1e-3)
    assert not torch.allclose(a, start.eval()(x), atol=1e-3)  # it did train
