"""bench/ood.py on folders the test draws: monochrome photographs flagged, generated cores not."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from vision.synth import generate_core

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "ood.py"


def test_bench_flags_grey_photographs_and_skips_a_missing_folder(tmp_path):
    plates = tmp_path / "grey-plates" / "free"
    plates.mkdir(parents=True)
    for i in range(3):
        grey = cv2.cvtColor(generate_core(4_000_000 + i).image, cv2.COLOR_BGR2GRAY)
        cv2.imwrite(str(plates / f"tile_{i}.jpg"), grey)
        cv2.imwrite(str(plates / f"tile_{i}.png"), np.zeros_like(grey))  # a mask, left out
    run = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            str(tmp_path / "grey-plates"),
            str(tmp_path / "absent"),
            "--cores",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    figures = json.loads(run.stdout)
    assert figures["grey-plates"]["images"] == 3
    assert figures["grey-plates"]["flagged_share"] == 1.0
    assert figures["grey-plates"]["review_out_of_distribution_share"] == 1.0
    assert figures["generated_cores"] == figures["generated_cores"] | {
        "images": 4,
        "flagged_share": 0.0,
        "review_out_of_distribution_share": 0.0,
    }
    assert "skipped" in figures["absent"]
