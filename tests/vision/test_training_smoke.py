"""The training code end to end on tiny data: an ONNX model with its card, loadable by onnxruntime."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from vision.card import read_card  # noqa: E402
from vision.training.evaluate import load_session  # noqa: E402
from vision.training.segment import ReferenceRecipe, train_reference  # noqa: E402

TINY = ReferenceRecipe(
    train_count=16,
    calib_count=4,
    eval_count=4,
    input_size=(32, 32),
    core_size=(64, 64),
    crop=24,
    width=4,
    epochs=1,
    batch_size=8,
    threads=1,
)


def test_tiny_training_exports_a_model_with_its_card(tmp_path):
    out = tmp_path / "tiny.onnx"
    recipe = replace(TINY, cache_dir=str(tmp_path / "cache"), checkpoint=str(tmp_path / "state.pt"))
    card = train_reference(out, recipe, log=lambda _line: None)
    assert out.is_file() and (tmp_path / "tiny.card.json").is_file()
    session = load_session(out)
    assert read_card(out, session) == card
    assert {"mean_iou", "grade_exact", "grade_within_one", "iou_corrosion"} <= set(card.metrics)
    (probs,) = session.run(["probs"], {"image": np.zeros((1, 3, 32, 32), np.float32)})
    assert probs.shape == (1, 4, 32, 32)
    assert 0.0 <= probs.min() and probs.max() <= 1.0


def test_training_resumes_from_its_checkpoint_and_reuses_the_cached_cores(tmp_path):
    recipe = replace(
        TINY,
        epochs=2,
        calib_count=0,
        cache_dir=str(tmp_path / "cache"),
        checkpoint=str(tmp_path / "state.pt"),
    )
    train_reference(tmp_path / "a.onnx", recipe, log=lambda _line: None)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    lines: list[str] = []
    train_reference(tmp_path / "b.onnx", replace(recipe, resume=True), log=lines.append)
    assert any(line.startswith("resumed from") for line in lines)
    assert not any(line.startswith("epoch") for line in lines)  # all epochs were already done
    exported: list[str] = []
    card = train_reference(
        tmp_path / "c.onnx", replace(recipe, from_checkpoint=True), log=exported.append
    )
    assert any(line.startswith("weights from") for line in exported) and "mean_iou" in card.metrics


def test_the_documented_command_trains_the_shipped_recipe(monkeypatch):
    import vision.training.reference as reference
    from vision.card import read_card as read_shipped

    seen: list[ReferenceRecipe] = []
    monkeypatch.setattr(reference, "train_reference", lambda _out, recipe, log: seen.append(recipe))
    assert reference.main([]) == 0
    (recipe,) = seen
    assert recipe == replace(
        ReferenceRecipe(), cache_dir="/tmp/reman-seg-cache", checkpoint="/tmp/reman-seg-train.pt"
    )
    assert recipe.context and not recipe.resume
    shipped = read_shipped(Path(__file__).resolve().parents[2] / "models" / "reman-seg.onnx")
    assert shipped.version == recipe.version
    assert f"{recipe.train_count} synthetic cores" in shipped.training_data
    assert reference.main(["--no-context", "--epochs", "3"]) == 0
    assert not seen[1].context and seen[1].epochs == 3
