"""How the reference training picks its cores and its arithmetic: cores it still gets wrong come
round more often, every core still comes round, a resumed run keeps what it learnt of them, and
bfloat16 convolutions train the same network as float32."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from vision.training.data import SegmentationSet  # noqa: E402
from vision.training.loop import (  # noqa: E402
    TrainConfig,
    bf16_available,
    epoch_order,
    image_losses,
    train_segmentation,
)
from vision.training.net import SegNet  # noqa: E402


def _data(n: int = 8, size: int = 32, seed: int = 0) -> SegmentationSet:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    targets = (rng.random((n, 4, size, size)) < 0.3).astype(np.uint8) * 255
    return SegmentationSet(images, targets, [{} for _ in range(n)])


def test_an_epoch_is_a_plain_shuffle_until_every_core_has_a_loss():
    rng = np.random.default_rng(1)
    recent = np.ones(100, np.float32)
    recent[7] = 0.0  # not trained on yet
    order = epoch_order(rng, recent, 96, hard_share=0.5)
    assert len(order) == 96 and len(set(order.tolist())) == 96


def test_the_hard_share_goes_to_the_cores_with_the_highest_loss():
    rng = np.random.default_rng(2)
    recent = np.full(1000, 0.05, np.float32)
    recent[:10] = 2.0  # ten cores the network still gets wrong
    order = epoch_order(rng, recent, 1000, hard_share=0.5)
    assert len(order) == 1000
    hard_visits = int(np.isin(order, np.arange(10)).sum())
    # 500 loss-weighted draws, of which 2.0*10 / (2.0*10 + 0.05*990) = 29 % land on the ten,
    # plus about 5 of them in the plain half: far more than the 10 a plain shuffle gives.
    assert hard_visits > 100
    # The plain half still shows 500 different cores.
    assert len(set(order.tolist())) >= 500


def test_a_missed_defect_has_a_higher_image_loss_than_a_found_one():
    target = torch.zeros((2, 4, 32, 32))
    target[:, 0] = 1.0
    target[:, 2, 10:14, 10:14] = 1.0  # a small corrosion spot on both images
    logits = torch.full((2, 4, 32, 32), -8.0)
    logits[:, 0] = 8.0
    logits[0, 2, 10:14, 10:14] = 8.0  # image 0 finds the spot, image 1 misses it
    found, missed = image_losses(logits, target)
    assert missed > found + 0.3


class _Stopped(Exception):
    pass


def test_a_resumed_run_keeps_the_per_core_losses(tmp_path, monkeypatch):
    import vision.training.loop as loop

    seen: list[np.ndarray] = []

    def spy(rng, recent, count, hard_share):
        seen.append(recent.copy())
        return epoch_order(rng, recent, count, hard_share)

    monkeypatch.setattr(loop, "epoch_order", spy)
    data = _data()
    checkpoint = tmp_path / "train.pt"
    config = TrainConfig(
        epochs=3, batch_size=4, lr=1e-3, seed=3, hard_share=0.5, checkpoint=str(checkpoint)
    )

    def stop_in_epoch_three(line: str) -> None:
        if line.startswith("epoch 3/3"):  # logged before epoch 3's checkpoint is written
            raise _Stopped

    with pytest.raises(_Stopped):
        train_segmentation(SegNet(4, 4), data, config, log=stop_in_epoch_three)
    saved = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert saved["epochs_done"] == 2
    assert saved["recent"].shape == (8,) and bool((saved["recent"] > 0).all())
    lines: list[str] = []
    config.resume = True
    seen.clear()
    train_segmentation(SegNet(4, 4), data, config, log=lines.append)
    assert np.array_equal(seen[0], saved["recent"].numpy())  # epoch 3 is drawn by those losses
    assert lines[0].startswith("resumed") and "after epoch 2" in lines[0]
    assert lines[1].startswith("epoch 3/3")
    resumed = torch.load(checkpoint, map_location="cpu", weights_only=True)
    assert resumed["epochs_done"] == 3 and bool((resumed["recent"] > 0).all())


@pytest.mark.skipif(not bf16_available(), reason="this CPU has no bfloat16 instructions")
def test_bfloat16_training_ends_near_the_float32_weights():
    data = _data(16)
    torch.manual_seed(0)
    start = SegNet(4, 4)
    results = []
    for bf16 in (False, True):
        config = TrainConfig(epochs=2, batch_size=4, lr=1e-3, seed=5, bf16=bf16)
        results.append(
            train_segmentation(copy.deepcopy(start), data, config, log=lambda _line: None)
        )
    x = torch.from_numpy(np.random.default_rng(9).normal(size=(1, 3, 32, 32)).astype(np.float32))
    with torch.no_grad():
        a, b, before = results[0](x), results[1](x), start.eval()(x)
    moved = float((a - before).abs().mean())
    assert b.dtype == torch.float32
    assert float((a - b).abs().mean()) < 0.2 * moved  # same training, rounding apart


def test_without_bfloat16_instructions_training_says_so_and_uses_float32(monkeypatch):
    import vision.training.loop as loop

    monkeypatch.setattr(loop, "bf16_available", lambda: False)
    lines: list[str] = []
    config = TrainConfig(epochs=1, batch_size=4, lr=1e-3, seed=5, bf16=True)
    model = train_segmentation(SegNet(4, 4), _data(), config, log=lines.append)
    assert any("no bfloat16" in line for line in lines)
    assert next(model.parameters()).dtype == torch.float32
