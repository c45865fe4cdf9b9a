"""`reman train --task segment --steps N`: defects outlined at the photograph's own resolution.

The network is the pretrained EfficientNet-Lite0 encoder (vision.training.backbone, blocks 2, 4
and 10: 1/4, 1/8 and 1/16 of the input) under a light FPN-style decoder whose logits are
up-sampled to the input; it is fully convolutional, so it runs on any size that is a multiple
of 32. Training never stretches a photograph: each step takes square crops at native resolution
(edge-padded where a photograph is smaller), and with probability `defect_share` a crop is centred
near a defect pixel of a defective photograph, because defects are often under 0.5 % of the
pixels. The loss is BCE with the defect pixels weighted up plus soft Dice. Training length is
counted in optimisation steps and the one-cycle schedule spans exactly those steps.

The exported model's card gives the crop as its input size and `tile_overlap_px`, so the grader
runs it tile by tile over the whole photograph (vision.tiling) instead of resizing it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from vision.card import PART_CLASS, ModelCard
from vision.errors import DatasetError
from vision.evaluate_folders import segmentation_metrics
from vision.folders import MAX_CLASS_VALUE, MaskPairs, read_image, scan_mask_pairs
from vision.training.artefacts import write_outputs
from vision.training.augment_photos import augment_batch
from vision.training.backbone import MULTIPLE, Encoder, load_efficientnet_lite0
from vision.training.fit_photos import (
    PHOTO_LIMITS,
    TrainSettings,
    pick_device,
    seed_everything,
    split_for,
)
from vision.training.onnx_weights import export_onnx
from vision.training.progress import Curves, Progress
from vision.training.segment_masks import defect_names

ARCHITECTURE = "lite0_fpn"
TAPS = (2, 4, 10)
HEAD_PRIOR_LOGIT = -3.0  # start from "almost no defect": defects are rare pixels


@dataclass(frozen=True)
class NativeSettings:
    """How crops are drawn and weighed; the rest comes from TrainSettings (size is the crop)."""

    defect_share: float = 0.7  # chance that a crop is centred near a defect pixel
    pos_weight: float = 5.0  # BCE weight of a defect pixel
    encoder_lr_scale: float = 0.3  # the pretrained encoder learns more gently than the decoder
    decoder_width: int = 64
    frozen_blocks: int = 3  # stem and blocks 0..2 (1/2 and 1/4 resolution) keep ImageNet weights
    overlap_px: int = 32  # tile overlap the card asks of the grader
    tile_px: int = 320  # the card's input size: the grader's tile (the crop is only for training)


class NativeSegNet(nn.Module):
    """Pretrained encoder, top-down decoder over three taps, logits at the input resolution."""

    def __init__(self, num_classes: int, decoder_width: int = 64, encoder: nn.Module | None = None):
        super().__init__()
        self.encoder = encoder if encoder is not None else Encoder(load_efficientnet_lite0(), TAPS)
        assert isinstance(self.encoder, Encoder)
        w = decoder_width
        self.lateral = nn.ModuleList(nn.Conv2d(c, w, 1) for c in self.encoder.channels())
        self.smooth = nn.Sequential(
            nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)
        )
        self.head = nn.Conv2d(w, num_classes, 1)
        assert self.head.bias is not None
        nn.init.constant_(self.head.bias, HEAD_PRIOR_LOGIT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logit maps (N, classes, H, W) for float RGB 0..1 input; H and W multiples of 32."""
        features = self.encoder(x)
        top = self.lateral[-1](features[-1])
        for lateral, feature in zip(self.lateral[-2::-1], features[-2::-1], strict=True):
            top = F.interpolate(top, scale_factor=2.0, mode="bilinear") + lateral(feature)
        logits = self.head(self.smooth(top))
        return F.interpolate(logits, scale_factor=4.0, mode="bilinear")


@dataclass
class Photos:
    """Photographs at their own resolution (RGB uint8) and their masks (class indices)."""

    images: list[np.ndarray]
    masks: list[np.ndarray]

    def defective(self) -> np.ndarray:
        """Indices of the photographs with at least one defect pixel."""
        return np.array([i for i, m in enumerate(self.masks) if m.any()], np.int64)


def load_native(pairs: MaskPairs) -> Photos:
    """Read every image and mask unresized; DatasetError names every unreadable or mismatched one."""
    images, raw, problems = [], [], []
    for image_path, mask_path in zip(pairs.images, pairs.masks, strict=True):
        image = read_image(image_path)
        mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
        if image is None or mask is None or mask.shape != image.shape[:2]:
            problems.append(f"unreadable or mismatched image and mask: {image_path}, {mask_path}")
            continue
        images.append(image)
        raw.append(mask)
    if problems:
        raise DatasetError(f"{pairs.root}: " + "; ".join(problems))
    binary = max((int(m.max()) for m in raw), default=0) > MAX_CLASS_VALUE
    masks = [(m > 127).astype(np.uint8) if binary else m for m in raw]
    return Photos(images, masks)


def draw_crops(
    photos: Photos, count: int, crop: int, defect_share: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """`count` square crops (N, crop, crop, 3) and their masks, some centred near defects."""
    defective = photos.defective()
    images = np.empty((count, crop, crop, 3), np.uint8)
    masks = np.empty((count, crop, crop), np.uint8)
    for k in range(count):
        near_defect = len(defective) > 0 and rng.random() < defect_share
        index = int(rng.choice(defective) if near_defect else rng.integers(len(photos.images)))
        image, mask = _padded(photos.images[index], photos.masks[index], crop)
        top, left = _crop_origin(mask, crop, near_defect, rng)
        images[k] = image[top : top + crop, left : left + crop]
        masks[k] = mask[top : top + crop, left : left + crop]
    return images, masks


def _padded(image: np.ndarray, mask: np.ndarray, crop: int) -> tuple[np.ndarray, np.ndarray]:
    extra_h, extra_w = max(crop - image.shape[0], 0), max(crop - image.shape[1], 0)
    if not extra_h and not extra_w:
        return image, mask
    pad = ((0, extra_h), (0, extra_w))
    return np.pad(image, (*pad, (0, 0)), mode="edge"), np.pad(mask, pad, mode="edge")


def _crop_origin(
    mask: np.ndarray, crop: int, near_defect: bool, rng: np.random.Generator
) -> tuple[int, int]:
    """A crop origin: uniform, or so that a random defect pixel lies somewhere inside."""
    height, width = mask.shape
    if near_defect:
        ys, xs = np.nonzero(mask)
        pick = int(rng.integers(len(ys)))
        top = int(ys[pick]) - int(rng.integers(crop))
        left = int(xs[pick]) - int(rng.integers(crop))
    else:
        top, left = int(rng.integers(height - crop + 1)), int(rng.integers(width - crop + 1))
    return min(max(top, 0), height - crop), min(max(left, 0), width - crop)


def native_loss(logits: torch.Tensor, masks: torch.Tensor, pos_weight: float) -> torch.Tensor:
    """BCE with defect pixels weighted `pos_weight`, plus soft Dice per defect channel."""
    target = F.one_hot(masks.long(), logits.shape[1] + 1)[..., 1:].permute(0, 3, 1, 2).float()
    weight = torch.tensor(pos_weight, device=logits.device)
    bce = F.binary_cross_entropy_with_logits(logits, target, pos_weight=weight)
    probs = torch.sigmoid(logits)
    inter = (probs * target).sum(dim=(0, 2, 3))
    dice = 1 - (2 * inter + 1) / (probs.sum(dim=(0, 2, 3)) + target.sum(dim=(0, 2, 3)) + 1)
    return bce + dice.mean()


def fit_steps(
    net: NativeSegNet,
    photos: Photos,
    settings: TrainSettings,
    native: NativeSettings,
    curves: Curves | None = None,
) -> list[dict]:
    """Train `net` in place for `settings.steps` steps; the mean loss of each tenth of them.

    The progress bar goes to stderr; `curves`, when given, gets a row per step."""
    steps = settings.steps or 1
    device = pick_device(settings.device)
    net.to(device).train()
    rng = np.random.default_rng(settings.seed)
    optimiser, schedule = optimisation(net, settings, native, steps)
    progress = Progress(steps, "train", curves=curves)
    history: list[dict] = []
    losses: list[float] = []
    for step in range(1, steps + 1):
        crops, masks = draw_crops(
            photos, settings.batch_size, settings.size, native.defect_share, rng
        )
        x, y = augment_batch(crops, rng, masks)
        assert y is not None
        logits = net(torch.from_numpy(x.transpose(0, 3, 1, 2).copy()).to(device))
        loss = native_loss(logits, torch.from_numpy(y.copy()).to(device), native.pos_weight)
        lr = float(optimiser.param_groups[-1]["lr"])  # the decoder's rate this step
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(float(loss.detach()))
        progress.step(losses[-1], lr)
        if step % max(steps // 10, 1) == 0 or step == steps:
            history.append({"step": step, "train_loss": float(np.mean(losses))})
            losses = []
    return history


def optimisation(net: NativeSegNet, settings: TrainSettings, native: NativeSettings, steps: int):
    # The high-resolution early blocks cost most of a backward pass on a CPU and learn edges
    # and blobs that ImageNet already taught them: they stay frozen.
    encoder_net = net.encoder
    assert isinstance(encoder_net, Encoder)
    frozen = [encoder_net.stem, *encoder_net.blocks[: native.frozen_blocks]]
    for module in frozen:
        module.requires_grad_(False)
    encoder = [p for p in encoder_net.parameters() if p.requires_grad]
    ids = {id(p) for p in encoder_net.parameters()}
    decoder = [p for p in net.parameters() if id(p) not in ids and p.requires_grad]
    lrs = [settings.lr * native.encoder_lr_scale, settings.lr]
    optimiser = torch.optim.AdamW(
        [{"params": encoder, "lr": lrs[0]}, {"params": decoder, "lr": lrs[1]}],
        weight_decay=settings.weight_decay,
    )
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=lrs, total_steps=steps, pct_start=0.1
    )
    return optimiser, schedule


@torch.no_grad()
def predict_whole(net: nn.Module, image: np.ndarray, device: torch.device) -> np.ndarray:
    """Defect probabilities (classes, H, W) for one RGB uint8 photograph at its own size."""
    net.eval()
    height, width = image.shape[:2]
    padded_h = math.ceil(height / MULTIPLE) * MULTIPLE
    padded_w = math.ceil(width / MULTIPLE) * MULTIPLE
    padded = np.pad(image, ((0, padded_h - height), (0, padded_w - width), (0, 0)), mode="edge")
    x = torch.from_numpy(padded.transpose(2, 0, 1)[None].astype(np.float32) / 255.0)
    probs = torch.sigmoid(net(x.to(device))).cpu().numpy()[0]
    return probs[:, :height, :width]


def evaluate(net: nn.Module, photos: Photos, names: list[str], device: torch.device) -> dict:
    """IoU and Dice over all pixels of `photos` (pooled), and image-level detection."""
    return score(
        [predict_whole(net, image, device) for image in photos.images], photos.masks, names
    )


def score(probs: list[np.ndarray], masks: list[np.ndarray], names: list[str]) -> dict:
    """segmentation_metrics over photographs of different sizes: (C, H, W) probabilities."""
    if not probs:
        empty = np.zeros((0, len(names), 1, 1), np.float32)
        return segmentation_metrics(np.zeros((0, 1, 1), np.uint8), empty, names)
    # Flatten each photograph so that different sizes pool into one (N, C, 1, pixels) set;
    # pad with background pixels of probability 0, which count for neither truth nor prediction.
    longest = max(p.shape[1] * p.shape[2] for p in probs)
    flat_probs = np.zeros((len(probs), len(names), 1, longest), np.float32)
    flat_masks = np.zeros((len(probs), 1, longest), np.uint8)
    for i, (p, m) in enumerate(zip(probs, masks, strict=True)):
        flat_probs[i, :, 0, : m.size] = p.reshape(len(names), -1)
        flat_masks[i, 0, : m.size] = m.reshape(-1)
    return segmentation_metrics(flat_masks, flat_probs, names)


def train_native_segmenter(
    data: Path,
    out: Path,
    settings: TrainSettings,
    label_map_file: Path | None = None,
    native: NativeSettings | None = None,
) -> dict:
    """Check the folder, train for `settings.steps` steps, export with its card; the report."""
    native = native or NativeSettings()
    _check(settings)
    started = time.monotonic()
    pairs = scan_mask_pairs(data)
    photos = load_native(pairs)
    names = defect_names(max(max(int(m.max()) for m in photos.masks), 1), label_map_file)
    keys = [f"{g}:{int(m.any())}" for g, m in zip(pairs.groups, photos.masks, strict=True)]
    train_idx, val_idx = split_for(keys, settings)
    seed_everything(settings.seed)
    net = NativeSegNet(len(names), native.decoder_width)
    curves = Curves()
    history = fit_steps(net, _subset(photos, train_idx), settings, native, curves)
    train_seconds = time.monotonic() - started
    held = _subset(photos, val_idx)
    device = pick_device(settings.device)
    report = _report(pairs, photos, (train_idx, val_idx), settings, names)
    probs = [predict_whole(net, image, device) for image in held.images]
    report["validation"] = score(probs, held.masks, names) | {"split": "validation"}
    defective = held.defective()
    report["validation_defective"] = score(
        [probs[i] for i in defective], [held.masks[i] for i in defective], names
    )
    report.update(history=history, train_seconds=round(train_seconds, 1), init_fresh=[])
    _measure(curves, report["validation"])
    card = _card(out, pairs, settings, native, names, report)
    spec = {
        "name": ARCHITECTURE,
        "params": {"num_classes": len(names), "decoder_width": native.decoder_width},
    }
    onnx_bytes = export_onnx(
        net.cpu(), "part_sigmoid", native.tile_px, card, spec, dynamic_size=True
    )
    written = write_outputs(out, onnx_bytes, card, report, curves)
    report["outputs"] = {k: str(v) for k, v in written.items()}
    return report


def _measure(curves: Curves, validation: dict) -> None:
    """The held-out figures, measured once after the last step, on the curves' last row."""
    if curves.rows and validation["images"]:
        curves.measure(
            val_mean_iou=validation["mean_iou"],
            val_defect_accuracy=validation["detection"]["accuracy"],
        )


def _check(settings: TrainSettings) -> None:
    if settings.size % MULTIPLE:
        raise DatasetError(f"--size {settings.size}: the pretrained encoder needs a multiple of 32")
    if not settings.steps or settings.steps < 1:
        raise DatasetError("--steps must be at least 1")
    if settings.init is not None:
        raise DatasetError("--init does not apply to --steps: the segmenter starts from ImageNet")


def _subset(photos: Photos, index: np.ndarray) -> Photos:
    return Photos([photos.images[i] for i in index], [photos.masks[i] for i in index])


def _report(pairs: MaskPairs, photos: Photos, split, settings: TrainSettings, names) -> dict:
    train_idx, val_idx = split
    return {
        "task": "segmentation",
        "data": {
            "root": str(pairs.root),
            "images": len(photos.images),
            "with_defect": int(len(photos.defective())),
            "train": int(len(train_idx)),
            "validation": int(len(val_idx)),
            "classes": names,
        },
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(settings).items()},
    }


def _card(out, pairs: MaskPairs, settings, native: NativeSettings, names, report) -> ModelCard:
    validation, defective = report["validation"], report["validation_defective"]
    metrics = {
        "val_mean_iou": validation["mean_iou"],
        "val_mean_dice": validation["mean_dice"],
        "val_defective_mean_iou": defective["mean_iou"],
        "val_defect_accuracy": validation["detection"]["accuracy"],
    }
    data = report["data"]
    return ModelCard(
        name=Path(out).stem,
        version=settings.version,
        task="segmentation",
        input_name="image",
        input_size=(native.tile_px, native.tile_px),
        tile_overlap_px=native.overlap_px,
        layout="NCHW",
        color_order="RGB",
        mean=[0.0, 0.0, 0.0],  # the encoder applies ImageNet normalisation itself
        std=[1.0, 1.0, 1.0],
        output_names=["probs"],
        classes=[PART_CLASS, *names],
        output_activation="sigmoid",
        metrics=metrics,
        training_data=(
            f"{data['images']} images with masks from {pairs.root.name} "
            f"({data['with_defect']} with defects), at their own resolution; "
            f"{data['validation']} held out for validation (stratified by folder and defect "
            f"presence, seed {settings.seed}); {settings.steps} steps of {settings.batch_size} "
            f"crops of {settings.size} px"
        ),
        intended_use=(
            "Outline defects in photographs like the training images, at their own resolution "
            "(tiled); the part channel is the whole image."
        ),
        limits=PHOTO_LIMITS,
    )
