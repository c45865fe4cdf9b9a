"""Tiled inference: a fully convolutional model run over a photograph at its own resolution.

    probs = tiled_probabilities(run, tensor, tile=(256, 256), overlap_px=32)

`tensor` is the whole image as the model's (1, C, H, W) input; `run` maps one (1, C, th, tw)
tile to (1, K, th, tw) probabilities. Tiles step by `tile - overlap_px` and the last one in each
direction is moved back to end at the image's edge; where two tiles overlap, each pixel is taken
from the tile whose centre it is nearer (the seam lies mid-overlap), so no pixel comes from within
overlap_px / 2 of an inner tile edge, where a convolution sees padding instead of image. A side
shorter than a tile gets a shorter tile, rounded up to a multiple of 32 (`MULTIPLE`, the stride
of the encoders used here), so the model must accept any such size up to the tile; the image is
padded (edge pixels repeated) to fill it and the result cropped back.

`fit_pixel_budget` shrinks an image, keeping its aspect ratio, when it has more pixels than the
node should spend on one view; nothing is ever stretched to a square.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise

import cv2
import numpy as np

DEFAULT_MAX_PIXELS = 4_000_000
MULTIPLE = 32


def tile_origins(length: int, tile: int, overlap_px: int) -> list[int]:
    """Start of each tile along one side of `length` pixels (length >= tile)."""
    if not 0 <= overlap_px < tile:
        raise ValueError(f"overlap {overlap_px} px must be at least 0 and below the tile {tile} px")
    stride = tile - overlap_px
    origins = list(range(0, max(length - tile, 0) + 1, stride))
    if origins[-1] + tile < length:
        origins.append(length - tile)
    return origins


def _seams(origins: list[int], tile: int, length: int) -> list[int]:
    """Where each tile's owned span begins, and the length: tile i owns seams[i]:seams[i+1]."""
    inner = [(later + earlier + tile) // 2 for earlier, later in pairwise(origins)]
    return [0, *inner, length]


def tiled_probabilities(
    run: Callable[[np.ndarray], np.ndarray],
    tensor: np.ndarray,
    tile: tuple[int, int],
    overlap_px: int,
) -> np.ndarray:
    """The model's output for the whole (1, C, H, W) `tensor`, computed tile by tile."""
    _, _, height, width = tensor.shape
    tile = (min(tile[0], _round_up(height)), min(tile[1], _round_up(width)))
    padded = _pad_to(tensor, tile)
    rows = tile_origins(padded.shape[2], tile[0], overlap_px)
    cols = tile_origins(padded.shape[3], tile[1], overlap_px)
    row_seams, col_seams = (
        _seams(rows, tile[0], padded.shape[2]),
        _seams(cols, tile[1], padded.shape[3]),
    )
    out: np.ndarray | None = None
    for i, top in enumerate(rows):
        for j, left in enumerate(cols):
            probs = run(
                np.ascontiguousarray(padded[:, :, top : top + tile[0], left : left + tile[1]])
            )
            if out is None:
                out = np.empty((1, probs.shape[1], *padded.shape[2:]), probs.dtype)
            r0, r1, c0, c1 = row_seams[i], row_seams[i + 1], col_seams[j], col_seams[j + 1]
            out[:, :, r0:r1, c0:c1] = probs[:, :, r0 - top : r1 - top, c0 - left : c1 - left]
    assert out is not None  # there is always at least one tile
    return out[:, :, :height, :width]


def _round_up(length: int) -> int:
    return -(-length // MULTIPLE) * MULTIPLE


def _pad_to(tensor: np.ndarray, tile: tuple[int, int]) -> np.ndarray:
    """Pad the bottom and right edges so that both sides are at least a tile long."""
    extra_h, extra_w = max(tile[0] - tensor.shape[2], 0), max(tile[1] - tensor.shape[3], 0)
    if not extra_h and not extra_w:
        return tensor
    return np.pad(tensor, ((0, 0), (0, 0), (0, extra_h), (0, extra_w)), mode="edge")


def fit_pixel_budget(image: np.ndarray, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """`image` itself when it has at most `max_pixels` pixels, else shrunk to fit (same aspect)."""
    height, width = image.shape[:2]
    if height * width <= max_pixels:
        return image
    scale = (max_pixels / (height * width)) ** 0.5
    size = (max(int(width * scale), 1), max(int(height * scale), 1))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)
