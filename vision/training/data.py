"""Training data: images and per-class coverage targets at the model's input size."""

from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision.errors import DatasetError
from vision.synth import CLASSES, DEFECTS, generate_core

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass
class SegmentationSet:
    """Images (N,H,W,3 uint8 RGB), targets (N,C,H,W uint8 coverage 0..255) and labels per image."""

    images: np.ndarray
    targets: np.ndarray
    labels: list[dict]

    def __len__(self) -> int:
        return len(self.images)


def resize_image(
    bgr: np.ndarray, size: tuple[int, int], interpolation: int = cv2.INTER_AREA
) -> np.ndarray:
    """A BGR image resized to size (height, width) and turned to RGB."""
    h, w = size
    return cv2.cvtColor(cv2.resize(bgr, (w, h), interpolation=interpolation), cv2.COLOR_BGR2RGB)


def normalise(rgb: np.ndarray, mean=MEAN, std=STD) -> np.ndarray:
    """RGB uint8 (H,W,3) to a float32 NCHW tensor scaled to 0..1, minus mean, over std."""
    x = rgb.astype(np.float32) / 255.0
    x = (x - np.float32(mean)) / np.float32(std)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def coverage(masks: dict[str, np.ndarray], size: tuple[int, int]) -> np.ndarray:
    """Per-class share of each input pixel covered by the mask, as uint8 0..255 (C,H,W)."""
    h, w = size
    planes = [
        cv2.resize(masks[c].astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
        for c in CLASSES
    ]
    return np.round(np.stack(planes) * 255).astype(np.uint8)


def synthetic_set(
    count: int,
    seed: int,
    input_size: tuple[int, int],
    core_size: tuple[int, int] = (256, 256),
    workers: int = 1,
    cache_dir: str | Path | None = None,
) -> SegmentationSet:
    """`count` synthetic cores (seeds seed..seed+count-1) drawn at core_size, resized to input_size.

    Half the images are resized with INTER_AREA and half with INTER_LINEAR, so the model does
    not depend on how a grader downscales. `workers` processes draw the cores. With `cache_dir`
    the set is kept there as one .npz named after the arguments and a hash of vision.synth's
    source, so a second run (or a resumed one) loads it instead of drawing it again.
    """
    cache = _cache_path(cache_dir, count, seed, input_size, core_size) if cache_dir else None
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as z:
            labels = json.loads(str(z["labels"]))
            return SegmentationSet(z["images"], z["targets"], labels)
    h, w = input_size
    images = np.zeros((count, h, w, 3), np.uint8)
    targets = np.zeros((count, len(CLASSES), h, w), np.uint8)
    labels = []
    jobs = [(seed + i, i, tuple(input_size), tuple(core_size)) for i in range(count)]
    if workers > 1 and count >= 64:
        with ProcessPoolExecutor(workers) as pool:
            rows = list(pool.map(_draw, jobs, chunksize=32))
    else:
        rows = [_draw(job) for job in jobs]
    for i, (image, target, label) in enumerate(rows):
        images[i], targets[i] = image, target
        labels.append(label)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(f"{cache.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, images=images, targets=targets, labels=np.array(json.dumps(labels)))
        tmp.replace(cache)
    return SegmentationSet(images, targets, labels)


def _draw(job: tuple) -> tuple[np.ndarray, np.ndarray, dict]:
    core_seed, index, input_size, core_size = job
    core = generate_core(core_seed, core_size)
    interp = cv2.INTER_AREA if index % 2 == 0 else cv2.INTER_LINEAR
    label = {d: {"area_pct": core.area_pct[d], "grade": core.grades[d]} for d in DEFECTS}
    return resize_image(core.image, input_size, interp), coverage(core.masks, input_size), label


def _cache_path(cache_dir, count, seed, input_size, core_size) -> Path:
    import vision.synth

    digest = hashlib.sha256(Path(vision.synth.__file__).read_bytes()).hexdigest()[:12]
    name = f"synth-{digest}-{seed}-{count}-{input_size[0]}x{input_size[1]}-{core_size[0]}x{core_size[1]}.npz"
    return Path(cache_dir) / name


def folder_set(folder: str | Path, input_size: tuple[int, int]) -> SegmentationSet:
    """A folder in `reman synth`'s layout (labels.jsonl, images/, masks/) at input_size."""
    root = Path(folder)
    rows = _read_labels(root / "labels.jsonl")
    h, w = input_size
    images = np.zeros((len(rows), h, w, 3), np.uint8)
    targets = np.zeros((len(rows), len(CLASSES), h, w), np.uint8)
    for i, row in enumerate(rows):
        images[i] = resize_image(_read(root / row["image"], cv2.IMREAD_COLOR), input_size)
        masks = {
            c: (_read(root / row["masks"][c], cv2.IMREAD_GRAYSCALE) > 127).astype(np.uint8)
            for c in CLASSES
        }
        targets[i] = coverage(masks, input_size)
    return SegmentationSet(images, targets, [row["defects"] for row in rows])


def _read_labels(path: Path) -> list[dict]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot read labels: {exc}") from exc


def _read(path: Path, flags: int) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    if image is None:
        raise DatasetError(f"{path}: missing or not an image")
    return image
