"""Augmentation for inspection photographs, on uint8 numpy batches.

Geometry: flips and rotations by multiples of 90 degrees (a defect has no preferred orientation
under a station camera, and these never resample pixels). Photometry: small brightness, contrast
and gamma changes, sensor noise and a slight blur, as lighting and focus drift on the shop floor.
No hue or saturation changes: colour is what tells rust from primer. Masks get the same geometry
and nothing else. Every draw comes from the generator passed in, so a seed repeats a run exactly.
"""

from __future__ import annotations

import cv2
import numpy as np


def augment_batch(
    images: np.ndarray, rng: np.random.Generator, masks: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Augment (N,H,W,3) uint8 images (and (N,H,W) masks alike); returns float32 images in 0..1."""
    out = np.empty(images.shape, np.float32)
    out_masks = None if masks is None else np.empty_like(masks)
    for i in range(len(images)):
        k, flip = int(rng.integers(4)), bool(rng.integers(2))
        out[i] = photometric(_geometry(images[i], k, flip), rng)
        if masks is not None and out_masks is not None:
            out_masks[i] = _geometry(masks[i], k, flip)
    return out, out_masks


def _geometry(image: np.ndarray, quarter_turns: int, flip: bool) -> np.ndarray:
    if flip:
        image = image[:, ::-1]
    return np.rot90(image, quarter_turns)


def photometric(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Small brightness, contrast, gamma, blur and noise changes; uint8 in, float32 0..1 out."""
    if rng.random() < 0.2:
        image = cv2.GaussianBlur(np.ascontiguousarray(image), (3, 3), float(rng.uniform(0.3, 0.9)))
    x = image.astype(np.float32) / 255.0
    x = np.power(x, float(np.exp(rng.uniform(-0.2, 0.2))))
    mean = float(x.mean())
    x = (x - mean) * float(rng.uniform(0.85, 1.15)) + mean + float(rng.uniform(-0.08, 0.08))
    if rng.random() < 0.3:
        x = x + rng.normal(0.0, float(rng.uniform(0.005, 0.03)), x.shape).astype(np.float32)
    return np.clip(x, 0.0, 1.0)
