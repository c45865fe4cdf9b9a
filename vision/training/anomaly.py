"""Anomaly detection learnt from good parts only: a PatchCore-style memory bank in one ONNX graph.

    model = fit_patchcore(encoder, good_images, AnomalySettings())   # torch, the `train` extra
    maps, scores = model(images)                                     # (N,1,H,W), (N,)

Each image is first standardised on its own (its pixels to mean 0.5, standard deviation 50/255,
clipped to 0..1): tiles of the same part lit a little brighter or darker are then alike, which
on the magnetic tiles lifted the image AUROC from 0.87 to 0.94 (models/README.md).
Patch features are the backbone's tapped maps (vision.training.backbone), each averaged over its
3x3 neighbourhood (PatchCore's "locally aware" features), the coarser one upsampled to the finer
one's grid and concatenated. The memory bank is a greedy coreset of the good images' patches (each
pick is the patch farthest from those already picked, in a seeded random projection), so a few
per cent of the patches cover the rest. A patch's anomaly is its Euclidean distance to the nearest
bank entry (||a||^2 - 2ab + ||b||^2 as one matmul and a min, so the graph needs only onnxruntime);
the map is upsampled to the input size and Gaussian-smoothed, and the image score is its maximum.
The decision threshold comes from held-out good images (`calibrate_threshold`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vision.training.progress import Progress

MAP_OUTPUT, SCORE_OUTPUT = "anomaly_map", "score"
SIGMA_PX = 4.0  # smoothing of the map at the input's resolution (PatchCore's value at 224 px)


@dataclass(frozen=True)
class AnomalySettings:
    """How the memory bank is built and the threshold chosen."""

    taps: tuple[int, ...] = (4, 10)
    coreset_ratio: float = 0.05  # share of the good patches kept in the bank
    max_bank: int = 16384  # cap on bank entries (model size and latency grow with it)
    projection_dims: int = 128  # random projection used only to pick the coreset
    quantile: float = 1.0  # of held-out good image scores; 1.0 is their maximum
    margin: float = 1.1  # threshold = margin * that quantile (headroom over the good ones seen)
    standardize: bool = True  # each image to a common brightness and contrast first
    batch_size: int = 8
    seed: int = 0


STANDARD_MEAN, STANDARD_STD = 128 / 255, 50 / 255  # what `standardize` brings each image to


def standardize(x: torch.Tensor) -> torch.Tensor:
    """Each image of (N,3,H,W) in [0,1] to mean STANDARD_MEAN and deviation STANDARD_STD over
    its pixels and channels, clipped to [0,1]. The mean and deviation are summed in float64, so
    torch and onnxruntime (which add in different orders) agree on them to the last bit that
    matters: in float32 their difference, divided by a low-contrast image's deviation, moved the
    image score by 4e-4."""
    wide = x.double()
    mean = wide.mean(dim=(1, 2, 3), keepdim=True)
    centred = wide - mean
    std = torch.sqrt((centred * centred).mean(dim=(1, 2, 3), keepdim=True) + 1e-12)
    scaled = (centred / (std + 1e-6) * STANDARD_STD + STANDARD_MEAN).float()
    return torch.clamp(scaled, 0.0, 1.0)


class PatchFeatures(nn.Module):
    """The encoder's tapped maps, 3x3-averaged, on the finest tap's grid, concatenated (of the
    standardised image when `standardized`)."""

    def __init__(self, encoder: nn.Module, standardized: bool = True) -> None:
        super().__init__()
        self.encoder = encoder
        self.standardized = standardized
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.standardized:
            x = standardize(x)
        maps = [self.pool(m) for m in self.encoder(x)]
        grid = maps[0].shape[-2:]  # taps are sorted, so the first is the finest
        return torch.cat([maps[0], *(_resize(m, grid) for m in maps[1:])], dim=1)


class PatchCore(nn.Module):
    """Images (N,3,H,W) float RGB in [0,1] to anomaly maps (N,1,H,W) and image scores (N,)."""

    def __init__(self, features: PatchFeatures, bank: torch.Tensor, size: tuple[int, int]) -> None:
        super().__init__()
        self.features = features
        self.size = size
        self.bank: torch.Tensor
        self.bank_sq: torch.Tensor
        self.kernel: torch.Tensor
        self.register_buffer("bank", bank.contiguous())  # (M, D)
        self.register_buffer("bank_sq", (bank * bank).sum(1))  # (M,)
        self.register_buffer("kernel", gaussian_kernel(SIGMA_PX))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        patches = self.features(x)  # (N, D, h, w)
        n, d, h, w = patches.shape
        flat = patches.flatten(2).transpose(1, 2)  # (N, h*w, D)
        cross = torch.matmul(flat, self.bank.t())  # (N, h*w, M)
        sq = (flat * flat).sum(-1, keepdim=True)
        nearest = torch.amin(sq - 2 * cross + self.bank_sq, dim=-1)  # (N, h*w)
        distance = torch.sqrt(torch.clamp(nearest, min=0.0)).reshape(n, 1, h, w)
        anomaly_map = self._smooth(_resize(distance, self.size))
        return anomaly_map, torch.amax(anomaly_map, dim=(1, 2, 3))

    def _smooth(self, image: torch.Tensor) -> torch.Tensor:
        radius = self.kernel.shape[0] // 2
        row = self.kernel.view(1, 1, 1, -1)
        col = self.kernel.view(1, 1, -1, 1)
        image = F.conv2d(F.pad(image, (radius, radius, 0, 0), mode="replicate"), row)
        return F.conv2d(F.pad(image, (0, 0, radius, radius), mode="replicate"), col)


def gaussian_kernel(sigma: float) -> torch.Tensor:
    """A normalised 1-D Gaussian of radius 4 sigma."""
    radius = max(1, int(4 * sigma + 0.5))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(x * x) / (2 * sigma * sigma))
    return kernel / kernel.sum()


def fit_patchcore(
    encoder: nn.Module, images: np.ndarray, settings: AnomalySettings, show: bool = False
) -> PatchCore:
    """The memory bank of good images (N,H,W,3) uint8 RGB, as a PatchCore ready to export.

    With `show`, progress bars for the features and the coreset go to stderr."""
    features = PatchFeatures(encoder, settings.standardize).eval()
    batches = math.ceil(len(images) / settings.batch_size)
    progress = Progress(batches, "features") if show else None
    parts = []
    with torch.no_grad():
        for batch in _batches(images, settings):
            parts.append(_patches(features, batch))
            if progress is not None:
                progress.advance()
    patches = torch.cat(parts)
    count = min(settings.max_bank, max(1, math.ceil(settings.coreset_ratio * len(patches))))
    picks = Progress(count, "coreset") if show else None
    chosen = greedy_coreset(patches, count, settings.projection_dims, settings.seed, picks)
    return PatchCore(features, patches[chosen], (images.shape[1], images.shape[2])).eval()


def greedy_coreset(
    points: torch.Tensor, count: int, dims: int, seed: int, progress: Progress | None = None
) -> torch.Tensor:
    """Indices of `count` points picked farthest-first (k-center greedy) in a random projection
    (`progress` advances as they are picked)."""
    generator = torch.Generator().manual_seed(seed)
    if points.shape[1] > dims:
        projection = torch.randn(points.shape[1], dims, generator=generator) / math.sqrt(dims)
        points = points @ projection
    count = min(count, len(points))
    points = points.contiguous()
    squared = (points * points).sum(1)
    chosen = torch.empty(count, dtype=torch.long)
    chosen[0] = int(torch.randint(len(points), (1,), generator=generator))
    nearest = torch.full((len(points),), float("inf"))
    distance = torch.empty(len(points))
    for k in range(1, count):  # in place: this loop is most of the training time
        last = int(chosen[k - 1])
        torch.mv(points, points[last], out=distance)
        distance.mul_(-2.0).add_(squared).add_(float(squared[last]))
        torch.minimum(nearest, distance, out=nearest)
        chosen[k] = torch.argmax(nearest)
        if progress is not None and k % 64 == 0:
            progress.advance(64)
    if progress is not None:
        progress.advance(progress.total)  # the last picks (the count stops at the total)
    return chosen


def score_images(model: PatchCore, images: np.ndarray, batch_size: int = 8) -> np.ndarray:
    """Image scores (N,) of (N,H,W,3) uint8 RGB images, computed in torch."""
    return anomaly_maps(model, images, batch_size)[1]


def anomaly_maps(
    model: PatchCore, images: np.ndarray, batch_size: int = 8
) -> tuple[np.ndarray, np.ndarray]:
    """Anomaly maps (N,H,W) and image scores (N,) in torch."""
    maps, scores = [], []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            batch_map, batch_score = model(to_tensor(images[start : start + batch_size]))
            maps.append(batch_map[:, 0].numpy())
            scores.append(batch_score.numpy())
    return np.concatenate(maps), np.concatenate(scores)


def calibrate_threshold(good_scores: np.ndarray, quantile: float, margin: float) -> float:
    """The decision threshold: `margin` times the `quantile` of held-out good image scores."""
    return float(margin * np.quantile(np.asarray(good_scores, np.float64), quantile))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """(N,H,W,3) uint8 RGB to (N,3,H,W) float in [0,1], as the grader feeds the graph."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float() / 255.0


def _patches(features: PatchFeatures, images: np.ndarray) -> torch.Tensor:
    maps = features(to_tensor(images))
    return maps.flatten(2).transpose(1, 2).reshape(-1, maps.shape[1])


def _batches(images: np.ndarray, settings: AnomalySettings) -> Iterator[np.ndarray]:
    for start in range(0, len(images), settings.batch_size):
        yield images[start : start + settings.batch_size]


def _resize(image: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    return F.interpolate(image, size=tuple(size), mode="bilinear", align_corners=False)
