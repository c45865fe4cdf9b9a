"""The training code end to end on tiny data: an ONNX model with its card, loadable by onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("onnx")

from vision.card import read_card  # noqa: E402
from vision.training.evaluate import load_session  # noqa: E402
from vision.training.segment import ReferenceRecipe, train_reference  # noqa: E402

TINY = ReferenceRecipe(train_count=16, eval_count=4, input_size=(32, 32), core_size=(64, 64),
                       width=4, epochs=1, batch_size=8, threads=1)


def test_tiny_training_exports_a_model_with_its_card(tmp_path):
    out = tmp_path / "tiny.onnx"
    card = train_reference(out, TINY, log=lambda _line: None)
    assert out.is_file() and (tmp_path / "tiny.card.json").is_file()
    session = load_session(out)
    assert read_card(out, session) == card
    assert {"mean_iou", "grade_exact", "grade_within_one", "iou_corrosion"} <= set(card.metrics)
    (probs,) = session.run(["probs"], {"image": np.zeros((1, 3, 32, 32), np.float32)})
    assert probs.shape == (1, 4, 32, 32)
    assert 0.0 <= probs.min() and probs.max() <= 1.0
