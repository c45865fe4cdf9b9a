"""Reproduce the shipped reference model: `python -m vision.training.reference --out models/reman-seg.onnx`."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from vision.errors import VisionError
from vision.training.segment import ReferenceRecipe, train_reference

HELP = {
    "train_count": "Synthetic training cores to draw",
    "train_seed": "Seed of the first training core (and of torch)",
    "eval_count": "Fresh synthetic cores to measure the model on",
    "eval_seed": "Seed of the first evaluation core (keep it away from the training seeds)",
    "width": "Channels of the network's first stage",
    "context": "Add whole-image context (squeeze and excitation on the deepest features)",
    "epochs": "Passes over the training cores",
    "batch_size": "Cores per optimiser step",
    "crop": "Train on random square crops of this many input pixels (0: whole images)",
    "lr": "Peak learning rate of the one-cycle schedule",
    "threads": "torch CPU threads",
    "bf16": "bfloat16 convolutions while training, where the CPU has them",
    "hard_share": "Share of each epoch after the first drawn again by each core's last loss",
    "version": "Version written into the model card",
    "calib_count": "Fresh synthetic cores to calibrate the per-class thresholds on (0: none)",
    "calib_seed": "Seed of the first calibration core",
    "cache_dir": "Where the drawn training cores are kept as .npz ('' for no cache)",
    "checkpoint": "Where the training state is saved after every epoch ('' for none)",
    "resume": "Continue from --checkpoint instead of starting over",
    "from_checkpoint": "Skip training: calibrate, export and evaluate --checkpoint's weights",
}


def main(argv: list[str] | None = None) -> int:
    """Parse options, train the reference model, print its card's metrics; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--out",
        default="models/reman-seg.onnx",
        help="Where to write the ONNX model (the card goes beside it).",
    )
    defaults = ReferenceRecipe(
        cache_dir="/tmp/reman-seg-cache", checkpoint="/tmp/reman-seg-train.pt"
    )
    for f in fields(ReferenceRecipe):
        if isinstance(getattr(defaults, f.name), bool):
            parser.add_argument(
                f"--{f.name.replace('_', '-')}",
                action=argparse.BooleanOptionalAction,
                default=getattr(defaults, f.name),
                help=f"{HELP[f.name]}.",
            )
        elif isinstance(getattr(defaults, f.name), int | float | str):
            parser.add_argument(
                f"--{f.name.replace('_', '-')}",
                type=type(getattr(defaults, f.name)),
                default=getattr(defaults, f.name),
                help=f"{HELP[f.name]} (default: %(default)s).",
            )
    parser.add_argument(
        "--input-px",
        type=int,
        default=defaults.input_size[0],
        help="Model input height and width in pixels (default: %(default)s).",
    )
    args = parser.parse_args(argv)
    recipe = ReferenceRecipe(
        **{f.name: getattr(args, f.name) for f in fields(ReferenceRecipe) if hasattr(args, f.name)}
    )
    recipe.input_size = (args.input_px, args.input_px)
    try:
        train_reference(args.out, recipe, log=lambda line: print(line, flush=True))
    except VisionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
