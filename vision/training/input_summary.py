"""Give a model trained on synthetic cores its input summary, in place, without retraining.

    python -m vision.training.input_summary --model models/reman-seg.onnx

draws the generated cores (vision.synth, seeded: by default 1,500 of the reference model's own
training seeds 1..1500 and 600 held-out calibration seeds 800000..800599, all 256x256),
computes the out-of-distribution guard's summary (vision.ood.fit_summary) and rewrites the
card embedded in the ONNX file and beside it with `input_summary` and `training_source:
synthetic`. The graph is not touched: only the metadata entry `reman.model_card` changes.
Needs the `onnx` package (the `train` extra), not torch. About two minutes on one core.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from vision.card import read_card, write_card
from vision.errors import VisionError
from vision.ood import InputSummary, describe_all, fit_summary
from vision.synth import DEFAULT_SIZE, generate_core

TRAIN_SEEDS = range(1, 1501)
HELD_OUT_SEEDS = range(800_000, 800_600)


def synthetic_descriptors(seeds: range, size: tuple[int, int] = DEFAULT_SIZE) -> np.ndarray:
    """Descriptors (vision.ood.describe) of the generated cores for `seeds`."""
    return describe_all(generate_core(seed, size).image for seed in seeds)


def synthetic_summary(
    train_seeds: range = TRAIN_SEEDS, held_out_seeds: range = HELD_OUT_SEEDS
) -> InputSummary:
    """The input summary of generated cores, calibrated on other generated cores."""
    summary = fit_summary(synthetic_descriptors(train_seeds), synthetic_descriptors(held_out_seeds))
    note = (
        f"generated cores (vision.synth) at {DEFAULT_SIZE[0]}x{DEFAULT_SIZE[1]}: statistics of "
        f"seeds {train_seeds.start}..{train_seeds.stop - 1}, calibrated on seeds "
        f"{held_out_seeds.start}..{held_out_seeds.stop - 1}; {summary.calibration}"
    )
    return summary.model_copy(update={"calibration": note})


def add_summary(model_path: Path, summary: InputSummary) -> Path:
    """Rewrite the model's card with the summary and `training_source: synthetic`."""
    card = read_card(model_path)
    updated = card.model_copy(update={"input_summary": summary, "training_source": "synthetic"})
    return write_card(model_path, type(card).model_validate(updated.model_dump()))


def main(argv: list[str] | None = None) -> int:
    """Parse options, compute the summary and rewrite the card; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, required=True, help="The ONNX model to update.")
    parser.add_argument(
        "--train-count", type=int, default=len(TRAIN_SEEDS), help="Training cores described."
    )
    parser.add_argument(
        "--held-out-count", type=int, default=len(HELD_OUT_SEEDS), help="Calibration cores."
    )
    args = parser.parse_args(argv)
    try:
        summary = synthetic_summary(
            range(TRAIN_SEEDS.start, TRAIN_SEEDS.start + args.train_count),
            range(HELD_OUT_SEEDS.start, HELD_OUT_SEEDS.start + args.held_out_count),
        )
        beside = add_summary(args.model, summary)
    except (VisionError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.model}: input summary of {summary.images} cores, threshold {summary.threshold}")
    print(f"card: {beside}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
