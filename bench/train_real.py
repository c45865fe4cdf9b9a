"""Train and measure on a real photograph set: accuracy or IoU, model size, speed, training time.

    python bench/train_real.py ../shared/datasets/neu-det --task classify
    python bench/train_real.py ../shared/datasets/magnetic-tile --task segment
    python bench/train_real.py ../shared/datasets/magnetic-tile --task anomaly --good free

Prints one JSON object; `{"skipped": reason}` when the folder is absent. The figures are for a
stratified hold-out split (`--val-split`, seeded): the model never sees those images in training
and nothing is tuned on them. Models go to `--work` (default: a temporary folder), never into the
repository: the public sets carry no licence, so a model trained on them is not to be shipped.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vision.folders import detect_layout  # noqa: E402

RUNS = 200


def main(argv: list[str] | None = None) -> int:
    """Parse options, train, measure, print JSON."""
    args = _parser().parse_args(argv)
    data = Path(args.data)
    if not data.is_dir():
        print(json.dumps({"skipped": f"dataset folder not found: {data}"}))
        return 0
    task = (
        args.task
        if args.task != "auto"
        else ("segment" if detect_layout(data) == "masks" else "classify")
    )
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="reman-train-real-"))
    if task == "anomaly":
        print(json.dumps(run_anomaly(data, work, args), indent=2))
        return 0
    result = (
        cross_validate(data, task, work, args) if args.folds > 1 else run(data, task, work, args)
    )
    print(json.dumps(result, indent=2))
    return 0


def cross_validate(data: Path, task: str, work: Path, args: argparse.Namespace) -> dict:
    """`args.folds` trainings, each holding out another stratified fold; per-fold and mean figures."""
    runs = [run(data, task, work, args, fold=k) for k in range(args.folds)]
    key = "accuracy" if "accuracy" in runs[0] else "mean_iou"
    values = [r[key] for r in runs]
    minutes = [r["train_minutes"] for r in runs]
    per_run = (
        "confusion",
        "model",
        "fold",
        "train_cpu_minutes",
        "train_minutes_if_cores_idle",
        "load_average_before_after",
    )
    first = {k: v for k, v in runs[0].items() if k not in per_run}
    return first | {
        "split": f"stratified {args.folds}-fold cross-validation, seed {args.seed}",
        key: round(float(np.mean(values)), 4),
        f"{key}_std": round(float(np.std(values)), 4),
        f"{key}_min": round(float(np.min(values)), 4),
        "folds": [
            {
                "fold": r["fold"],
                key: r[key],
                "validation_images": r["validation_images"],
                "train_minutes": r["train_minutes"],
                "train_minutes_if_cores_idle": r["train_minutes_if_cores_idle"],
            }
            for r in runs
        ],
        "train_minutes": max(minutes),
        "train_minutes_if_cores_idle": max(r["train_minutes_if_cores_idle"] for r in runs),
        "train_minutes_all_folds": round(sum(minutes), 2),
        "confusion_summed": np.sum([r["confusion"] for r in runs], axis=0).tolist()
        if "confusion" in runs[0]
        else None,
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="dataset folder (image folders or images with masks)")
    parser.add_argument(
        "--task", choices=["auto", "classify", "segment", "anomaly"], default="auto"
    )
    parser.add_argument(
        "--good",
        default="free",
        help="anomaly: the class folder of good parts (the rest defective)",
    )
    parser.add_argument(
        "--bank-share", type=float, default=0.3, help="anomaly: good images in the memory bank"
    )
    parser.add_argument(
        "--calibration-share",
        type=float,
        default=0.2,
        help="anomaly: good images that calibrate the threshold (the rest of them are evaluated)",
    )
    parser.add_argument(
        "--coreset", type=float, default=0.02, help="anomaly: share of patches kept in the bank"
    )
    parser.add_argument(
        "--false-alarms",
        type=float,
        default=None,
        help="anomaly: the threshold as `reman train --false-alarms` sets it [default: 1.1 x max]",
    )
    parser.add_argument("--epochs", type=int, default=None, help="default: 30 classify, 25 segment")
    parser.add_argument("--size", type=int, default=None, help="default: 128 classify, 192 segment")
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="default: 32 classify, 8 segment"
    )
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (one-cycle)")
    parser.add_argument("--val-split", type=float, default=0.2)
    parser.add_argument(
        "--folds",
        type=int,
        default=0,
        help="k-fold cross-validation (k > 1) instead of --val-split",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="segment: train the native-resolution segmenter for this many steps (--size: crop)",
    )
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training")
    parser.add_argument(
        "--backbone",
        choices=["efficientnet-lite0"],
        default=None,
        help="classify: a linear head on the frozen pretrained backbone (--size a multiple of 32)",
    )
    parser.add_argument("--work", default=None, help="folder for the model and reports")
    return parser


def run(
    data: Path, task: str, work: Path, args: argparse.Namespace, fold: int | None = None
) -> dict:
    """Train with `reman train`'s code, then time the exported model on one thread."""
    from vision.training.fit_photos import TrainSettings
    from vision.training.train_cmd import train

    epochs = args.epochs or (30 if task == "classify" else 25)
    size = args.size or (128 if task == "classify" else 192)
    batch_size = args.batch_size or (32 if task == "classify" else 8)
    settings = TrainSettings(
        batch_size=batch_size,
        lr=args.lr,
        epochs=epochs,
        size=size,
        val_split=args.val_split,
        seed=args.seed,
        width=args.width,
        threads=args.threads,
        device="cpu",
        folds=args.folds if fold is not None else 0,
        fold=fold or 0,
        steps=args.steps if task == "segment" else None,
        backbone=args.backbone if task == "classify" else None,
    )
    model = work / f"{data.name}-{task}{'' if fold is None else f'-fold{fold}'}.onnx"
    load_before = os.getloadavg()[0]
    started, cpu_started = time.monotonic(), _cpu_seconds()
    report = train(task, data, model, settings)
    minutes = (time.monotonic() - started) / 60
    cpu_minutes = (_cpu_seconds() - cpu_started) / 60
    result = {
        "dataset": data.name,
        "task": task,
        "split": f"stratified hold-out {args.val_split:.0%}, seed {args.seed}",
        "fold": fold,
        "images": report["data"]["images"],
        "train_images": report["data"]["train"],
        "validation_images": report["data"]["validation"],
        "epochs": None if settings.steps else epochs,
        "steps": settings.steps,
        "size_px": size,
        "width": args.width,
        "batch_size": batch_size,
        "lr": args.lr,
        "train_threads": args.threads,
        "train_minutes": round(minutes, 2),
        # The machine may be shared: CPU time over the thread count is the wall time the same
        # work takes on that many otherwise idle cores.
        "train_cpu_minutes": round(cpu_minutes, 2),
        "train_minutes_if_cores_idle": round(cpu_minutes / max(args.threads, 1), 2),
        "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "model_mb": round(model.stat().st_size / 1e6, 3),
        **_latency(model, size),
        "model": str(model),
    }
    if "validation_defective" in report:  # the native segmenter scores defective images apart
        defective = report["validation_defective"]
        result |= {
            "defective_images": defective["images"],
            "defect_iou_on_defective": defective["mean_iou"],
            "defect_dice_on_defective": defective["mean_dice"],
            **_photo_latency(model, data),
        }
    return result | _figures(report["validation"])


def _figures(validation: dict) -> dict:
    detection = validation.get("detection", {})
    figures = {
        "defect_detection_accuracy": detection.get("accuracy"),
        "defect_detection_auroc": detection.get("auroc"),
    }
    if "accuracy" in validation:
        return {
            "accuracy": validation["accuracy"],
            "confusion": validation["confusion"],
            "labels": validation["labels"],
            **figures,
        }
    return {
        "iou": validation["iou"],
        "dice": validation["dice"],
        "mean_iou": validation["mean_iou"],
        **figures,
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _latency(model: Path, size: int) -> dict:
    """onnxruntime on one thread, batch of one: p50 and p99 of `session.run` in ms."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    for _ in range(10):
        session.run(None, {name: x})
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        session.run(None, {name: x})
        times.append((time.perf_counter() - start) * 1000)
    return {
        "run_p50_ms": round(float(np.percentile(times, 50)), 3),
        "run_p99_ms": round(float(np.percentile(times, 99)), 3),
    }


def _photo_latency(model: Path, data: Path) -> dict:
    """A tiled model on its own input size and through the grader on a median-sized photograph."""
    from vision.card import read_card
    from vision.grader import Grader
    from vision.imageio import read_image

    tile = read_card(model).input_size[0]
    sample = [read_image(p) for p in sorted(data.rglob("*.jpg"))[::25]]
    image = sorted(sample, key=lambda photo: photo.shape[0] * photo.shape[1])[len(sample) // 2]
    grader = Grader.load(model, providers=["CPUExecutionProvider"], threads=1)
    for _ in range(5):
        grader.grade(image)
    times = []
    for _ in range(RUNS // 4):
        start = time.perf_counter()
        grader.grade(image)
        times.append((time.perf_counter() - start) * 1000)
    return {
        "tile_px": tile,
        "tile_run": _latency(model, tile),
        "photo_px": list(image.shape[:2]),
        "photo_grade_p50_ms": round(float(np.percentile(times, 50)), 3),
    }


def run_anomaly(data: Path, work: Path, args: argparse.Namespace) -> dict:
    """Learn a seeded share of the good class, calibrate on another, measure on the rest of it
    and every defective image: image and pixel AUROC, threshold error rates, size, speed, time."""
    from dataclasses import replace

    import torch

    from vision.folders import scan_mask_pairs
    from vision.training.fit_anomaly import anomaly_settings, train_anomaly
    from vision.training.fit_photos import TrainSettings

    torch.set_num_threads(args.threads)
    size = args.size or 256
    pairs = scan_mask_pairs(data)
    good = [i for i, group in enumerate(pairs.groups) if group == args.good]
    order = np.random.default_rng(args.seed).permutation(good)
    n_bank, n_cal = (
        round(share * len(good)) for share in (args.bank_share, args.calibration_share)
    )
    train_dir = work / "anomaly-train"  # links to the bank and calibration images, not copies
    train_dir.mkdir(parents=True, exist_ok=True)
    for i in order[: n_bank + n_cal]:
        link = train_dir / pairs.images[i].name
        if not link.exists():
            link.symlink_to(pairs.images[i].resolve())
    settings = TrainSettings(
        size=size,
        val_split=n_cal / (n_bank + n_cal),
        seed=args.seed,
        threads=args.threads,
        false_alarms=args.false_alarms,
    )
    model = work / f"{data.name}-anomaly.onnx"
    started, cpu_started = time.monotonic(), _cpu_seconds()
    anomaly = replace(anomaly_settings(settings), coreset_ratio=args.coreset)
    report = train_anomaly(train_dir, model, settings, anomaly)
    minutes, cpu_minutes = (time.monotonic() - started) / 60, (_cpu_seconds() - cpu_started) / 60
    held_out = [*order[n_bank + n_cal :], *(i for i in range(len(pairs.images)) if i not in good)]
    defective = np.array([i not in good for i in held_out])
    calibration = np.array(report["validation"]["good_scores"])
    figures = _anomaly_figures(model, pairs, held_out, size, args.threads, defective, calibration)
    return {
        "dataset": data.name,
        "task": "anomaly",
        "split": f"seed {args.seed}: {args.good} {n_bank} bank, {n_cal} calibration, "
        f"{len(good) - n_bank - n_cal} evaluated with all {len(pairs.images) - len(good)} defective",
        "size_px": size,
        "bank_entries": report["bank"]["entries"],
        "coreset_ratio": args.coreset,
        "train_threads": args.threads,
        "train_minutes": round(minutes, 2),
        "train_minutes_if_cores_idle": round(cpu_minutes / max(args.threads, 1), 2),
        "model_mb": round(model.stat().st_size / 1e6, 3),
        **_latency(model, size),
        **figures,
        "model": str(model),
    }


def _anomaly_figures(
    model: Path,
    pairs,
    indices: list[int],
    size: int,
    threads: int,
    defective: np.ndarray,
    calibration: np.ndarray,
) -> dict:
    import cv2

    from vision.folders import load_images
    from vision.training.anomaly_eval import evaluate_anomaly

    images = load_images([pairs.images[i] for i in indices], size)
    masks = np.stack(
        [
            cv2.resize(
                cv2.imread(str(pairs.masks[i]), cv2.IMREAD_GRAYSCALE),
                (size, size),
                interpolation=cv2.INTER_NEAREST,
            )
            > 127
            for i in indices
        ]
    )
    return {
        k: round(v, 4) if isinstance(v, float) else v
        for k, v in evaluate_anomaly(model, images, masks, threads, defective, calibration).items()
    }


if __name__ == "__main__":
    sys.exit(main())
