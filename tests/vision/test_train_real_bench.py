"""bench/train_real.py on a generated image-folder set: hold-out and k-fold cross-validation."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.vision.photo_sets import class_folders

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "train_real.py"
TINY = [
    "--task",
    "classify",
    "--epochs",
    "1",
    "--size",
    "32",
    "--batch-size",
    "4",
    "--threads",
    "1",
]


def _run(*args: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_cross_validation_holds_out_every_image_once(tmp_path):
    data = class_folders(tmp_path / "data", per_class=6, size=32, classes=("ok", "spot"))
    result = _run(str(data), *TINY, "--folds", "3", "--work", str(tmp_path / "work"))
    assert result["split"] == "stratified 3-fold cross-validation, seed 0"
    folds = result["folds"]
    assert [f["fold"] for f in folds] == [0, 1, 2]
    assert sum(f["validation_images"] for f in folds) == 12
    assert result["accuracy"] == pytest.approx(np.mean([f["accuracy"] for f in folds]), abs=1e-4)
    assert result["accuracy_min"] == pytest.approx(min(f["accuracy"] for f in folds), abs=1e-4)
    assert np.sum(result["confusion_summed"]) == 12
    assert sorted(p.name for p in (tmp_path / "work").glob("*.onnx")) == [
        f"data-classify-fold{k}.onnx" for k in range(3)
    ]


def test_hold_out_split_and_a_missing_dataset(tmp_path):
    data = class_folders(tmp_path / "data", per_class=5, size=32, classes=("ok", "spot"))
    result = _run(str(data), *TINY, "--work", str(tmp_path / "work"))
    assert result["split"] == "stratified hold-out 20%, seed 0"
    assert result["validation_images"] == 2 and result["model_mb"] > 0 and result["run_p50_ms"] > 0
    assert "skipped" in _run(str(tmp_path / "absent"))
