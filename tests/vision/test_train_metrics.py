"""The evaluation figures against hand-computed values, the split, the progress line, augmentation."""

from __future__ import annotations

import io

import numpy as np
import pytest

from vision.evaluate_folders import auroc, classification_metrics, segmentation_metrics
from vision.training.augment_photos import augment_batch
from vision.training.fit_photos import stratified_fold, stratified_split
from vision.training.progress import Progress


def _pairwise_auroc(positive, score):
    pos, neg = score[positive], score[~positive]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


def test_auroc_matches_the_pairwise_definition_with_ties():
    rng = np.random.default_rng(1)
    positive = rng.random(200) < 0.3
    score = np.round(rng.random(200) + positive * 0.3, 1)  # rounding makes many ties
    assert abs(auroc(positive, score) - _pairwise_auroc(positive, score)) < 1e-12
    assert auroc(np.array([True, True]), np.array([0.1, 0.2])) is None


def test_classification_figures():
    truth = np.array([0, 0, 1, 1, 2, 2])
    probs = np.eye(3)[[0, 1, 1, 1, 2, 0]]
    report = classification_metrics(truth, probs, ["ok", "dent", "rust"], no_defect=[0])
    assert report["confusion"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert report["accuracy"] == 4 / 6
    assert (
        report["per_class"]["dent"]["precision"] == 2 / 3
        and report["per_class"]["dent"]["recall"] == 1.0
    )
    assert report["detection"]["with_defect"] == 4
    assert (
        report["detection"]["accuracy"] == 4 / 6
    )  # one clean called defective, one rust called clean


def test_segmentation_iou_and_dice():
    masks = np.zeros((2, 4, 4), np.uint8)
    masks[0, :2, :2] = 1  # 4 defect pixels in image 0, none in image 1
    probs = np.zeros((2, 1, 4, 4), np.float32)
    probs[0, 0, :2, :] = 0.9  # 8 predicted, 4 of them right
    report = segmentation_metrics(masks, probs, ["corrosion"])
    assert (
        report["iou"]["corrosion"] == 0.5 and abs(report["dice"]["corrosion"] - 2 * 4 / 12) < 1e-9
    )
    assert report["detection"]["accuracy"] == 1.0 and report["detection"]["auroc"] == 1.0


def test_stratified_split_keeps_every_class_and_repeats():
    keys = ["a"] * 10 + ["b"] * 5 + ["c"] * 2
    train, val = stratified_split(keys, 0.2, seed=3)
    assert sorted([keys[i] for i in val]) == ["a", "a", "b", "c"]
    assert set(train).isdisjoint(val) and len(train) + len(val) == len(keys)
    again = stratified_split(keys, 0.2, seed=3)
    assert (again[0] == train).all() and (again[1] == val).all()


def test_folds_hold_out_every_image_once_with_classes_balanced():
    keys = ["a"] * 10 + ["b"] * 5
    held = []
    for fold in range(5):
        train, val = stratified_fold(keys, 5, fold, seed=3)
        assert sorted(keys[i] for i in val) == ["a", "a", "b"]
        assert set(train).isdisjoint(val) and len(train) + len(val) == len(keys)
        held += val.tolist()
    assert sorted(held) == list(range(len(keys)))
    assert (stratified_fold(keys, 5, 2, seed=3)[1] == stratified_fold(keys, 5, 2, seed=3)[1]).all()
    with pytest.raises(ValueError, match="fold 5"):
        stratified_fold(keys, 5, 5, seed=3)


def test_augmentation_moves_masks_with_images_and_repeats():
    images = np.zeros((3, 8, 8, 3), np.uint8)
    images[:, 0, 0] = 255
    masks = (images[..., 0] > 0).astype(np.uint8)
    x, m = augment_batch(images, np.random.default_rng(7), masks)
    assert (np.argmax(x[..., 0].reshape(3, -1), 1) == np.argmax(m.reshape(3, -1), 1)).all()
    y, _ = augment_batch(images, np.random.default_rng(7), masks)
    assert np.array_equal(x, y)


def test_progress_line_has_count_percent_and_eta():
    stream = io.StringIO()
    progress = Progress(20, "train", stream)
    for _ in range(20):
        progress.advance(note="loss 0.1")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 11  # not a terminal: the first step, then one line per tenth
    assert lines[-1].startswith("train [") and "20/20 100%" in lines[-1] and "ETA" in lines[-1]
