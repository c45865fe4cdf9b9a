"""Benchmark the out-of-distribution guard: real photographs against generated cores, in one run.

    .venv/bin/python bench/ood.py ../shared/datasets/neu-det ../shared/datasets/magnetic-tile \
        [--model models/reman-seg.onnx] [--limit 0] [--cores 300]

Grades every image of each dataset folder (any *.jpg, *.jpeg, *.png, *.bmp below it, masks named
like `<stem>.png` beside a `.jpg` left out) and `--cores` generated cores (vision.synth, seeds
3000000.., neither the model's training seeds nor the summary's), as the node does, and decides
each with the gear pump family's rules. Prints JSON per set: the share flagged out of
distribution, the share decided REVIEW with reason `out_of_distribution`, the share of grades
below the 0.6 confidence threshold, distance percentiles and the guard's own time per image
against the bare `session.run` (p50, one thread). A dataset folder that does not exist is
reported as skipped; the images are read where they lie and never copied.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.decision.families import load_families  # noqa: E402
from edge.decision.rules import OUT_OF_DISTRIBUTION, decide  # noqa: E402
from vision.grader import DEFAULT_MODEL, Grader  # noqa: E402
from vision.imageio import read_image  # noqa: E402
from vision.synth import generate_core  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
FAMILY = "hydraulic-gear-pump"
CORE_SEED = 3_000_000
SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


def dataset_images(folder: Path, limit: int) -> list[Path]:
    """Image files below `folder`, sorted; a `.png` beside a same-stem `.jpg` is a mask."""
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in SUFFIXES)
    images = [p for p in files if not (p.suffix == ".png" and p.with_suffix(".jpg").exists())]
    return images[:limit] if limit else images


def measure(grader: Grader, images: Iterable[np.ndarray]) -> dict:
    """Flag, REVIEW and confidence shares, distances and guard time over the images."""
    family = load_families(REPO / "config" / "families").get(FAMILY)
    assert grader.guard is not None
    flagged, review, low, grades, distances, guard_ms, run_ms = 0, 0, 0, 0, [], [], []
    count = 0
    for image in images:
        count += 1
        view = grader.grade(image)
        start = time.perf_counter()
        verdict = grader.guard.check(image)
        guard_ms.append((time.perf_counter() - start) * 1000)
        run_ms.append(view.timings_ms["inference_ms"])
        distances.append(verdict.distance)
        problems = [f"{OUT_OF_DISTRIBUTION}{verdict.describe()}"] * verdict.out_of_distribution
        defects = {k: g.to_dict() | {"scale": g.scale} for k, g in view.defects.items()}
        decision = decide(family, defects, {}, problems)
        flagged += verdict.out_of_distribution
        review += any(r.code == "out_of_distribution" for r in decision.reasons)
        low += sum(g.confidence < grader.min_confidence for g in view.defects.values())
        grades += len(view.defects)
    return {
        "images": count,
        "flagged_share": round(flagged / max(count, 1), 4),
        "review_out_of_distribution_share": round(review / max(count, 1), 4),
        "grades_below_min_confidence_share": round(low / max(grades, 1), 4),
        "distance_p5_p50_p95": [round(float(d), 3) for d in np.percentile(distances, [5, 50, 95])]
        if distances
        else None,
        "guard_p50_ms": round(float(np.median(guard_ms)), 3) if guard_ms else None,
        "run_p50_ms": round(float(np.median(run_ms)), 3) if run_ms else None,
    }


def _read_all(paths: list[Path]) -> Iterator[np.ndarray]:
    return (read_image(p) for p in paths)


def main(argv: list[str] | None = None) -> int:
    """Parse options, measure each set, print JSON; 0 on success, 2 without a guard."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("datasets", nargs="*", type=Path, help="Folders of real photographs.")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="The ONNX model.")
    parser.add_argument("--limit", type=int, default=0, help="Images per dataset (0: all).")
    parser.add_argument("--cores", type=int, default=300, help="Generated cores to grade.")
    args = parser.parse_args(argv)
    grader = Grader.load(args.model, providers=["CPUExecutionProvider"], threads=1)
    if grader.guard is None:
        print(json.dumps({"model": str(args.model), "skipped": "the card has no input summary"}))
        return 2
    summary = grader.guard.summary
    figures: dict = {
        "model": f"{grader.card.name} {grader.card.version}",
        "threshold": summary.threshold,
        "summary_images": summary.images,
        "generated_cores": measure(
            grader, (generate_core(CORE_SEED + i).image for i in range(args.cores))
        ),
    }
    for folder in args.datasets:
        if not folder.is_dir():
            figures[folder.name] = {"skipped": f"{folder} is not a folder"}
            continue
        figures[folder.name] = measure(grader, _read_all(dataset_images(folder, args.limit)))
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
