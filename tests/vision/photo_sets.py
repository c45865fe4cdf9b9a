"""Tiny generated photograph sets for the training tests (drawn here, never copied from real sets)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def surface(rng: np.random.Generator, size: int) -> np.ndarray:
    """A grey, slightly textured surface (BGR uint8)."""
    base = rng.normal(128, 12, (size, size)).astype(np.float32)
    base = cv2.GaussianBlur(base, (5, 5), 1.5)
    return cv2.cvtColor(np.clip(base, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)


def draw_defect(
    image: np.ndarray, kind: str, rng: np.random.Generator, mask: np.ndarray | None = None
) -> None:
    """Draw a dark scratch or a dark spot onto the image, and the same shape onto its mask."""
    size = image.shape[0]
    if kind == "scratch":
        p = tuple(int(v) for v in rng.integers(0, size, 2))
        q = tuple(int(v) for v in rng.integers(0, size, 2))
        shapes = [lambda target, colour: cv2.line(target, p, q, colour, 3)]
    else:
        centre = tuple(int(v) for v in rng.integers(size // 4, 3 * size // 4, 2))
        shapes = [lambda target, colour: cv2.circle(target, centre, size // 8, colour, -1)]
    for target, colour in ((image, (30, 30, 30)), (mask, 255)):
        if target is not None:
            shapes[0](target, colour)


def class_folders(
    root: Path,
    per_class: int = 8,
    size: int = 48,
    classes=("none", "scratch", "spot"),
    seed: int = 0,
) -> Path:
    """An image-folder layout: `root/<class>/<n>.png`."""
    rng = np.random.default_rng(seed)
    for name in classes:
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            image = surface(rng, size)
            if name != "none":
                draw_defect(image, name, rng)
            cv2.imwrite(str(root / name / f"{name}_{i}.png"), image)
    return root


def mask_pairs(
    root: Path, count: int = 12, size: int = 48, seed: int = 0, value: int = 255
) -> Path:
    """Images `root/<n>.jpg` with masks `root/<n>.png` (every other image has a spot)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image = surface(rng, size)
        mask = np.zeros((size, size), np.uint8)
        if i % 2:
            draw_defect(image, "spot", rng, mask)
        cv2.imwrite(str(root / f"tile_{i}.jpg"), image)
        cv2.imwrite(str(root / f"tile_{i}.png"), np.where(mask > 0, value, 0).astype(np.uint8))
    return root
