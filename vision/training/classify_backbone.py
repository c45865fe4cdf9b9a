"""`reman train --task classify --backbone efficientnet-lite0`: a linear head on pretrained features.

The ImageNet-trained EfficientNet-Lite0 (vision.training.backbone) stays frozen: each training
image's features (blocks 10 and 15, global mean and max) are computed once, standardised, and a
linear head is fitted on them in a few hundred full-batch steps. On two CPU cores that is minutes
where training a CNN is tens of minutes, and it generalises better from few images. The exported
model is the encoder, the pooling, the standardisation and the head in one ONNX graph, taking
the same input as the project's other photo models (the card's mean and std).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from vision.training.artefacts import write_outputs
from vision.training.backbone import Encoder, load_efficientnet_lite0
from vision.training.classify import _card, _report, prepared
from vision.training.fit_photos import (
    MEAN,
    STD,
    TrainSettings,
    to_input,
)
from vision.training.onnx_weights import export_onnx
from vision.training.progress import Curves, Progress

BACKBONES = ("efficientnet-lite0",)
TAPS = (10, 15)
HEAD_STEPS = 300
HEAD_LR = 1e-2  # a constant rate: full-batch steps on a linear head


class BackboneClassifier(nn.Module):
    """Frozen encoder, mean+max pooling of each tap, standardisation, a linear head."""

    def __init__(self, encoder: Encoder, feature_mean: torch.Tensor, feature_std: torch.Tensor,
                 head: nn.Linear) -> None:  # fmt: skip
        super().__init__()
        self.encoder, self.head = encoder, head
        self.card_mean: torch.Tensor
        self.card_std: torch.Tensor
        self.feature_mean: torch.Tensor
        self.feature_std: torch.Tensor
        self.register_buffer("card_mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("card_std", torch.tensor(STD).view(1, 3, 1, 1))
        self.register_buffer("feature_mean", feature_mean)
        self.register_buffer("feature_std", feature_std)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features of inputs normalised as the card says."""
        maps = self.encoder(x * self.card_std + self.card_mean)  # back to RGB in [0, 1]
        return torch.cat([torch.cat([m.mean((2, 3)), m.amax((2, 3))], 1) for m in maps], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head((self.features(x) - self.feature_mean) / self.feature_std)


def train_backbone_classifier(
    data: Path, out: Path, settings: TrainSettings, label_map_file: Path | None = None
) -> dict:
    """Like train_classifier, with the pretrained encoder frozen and a linear head fitted."""
    started = time.monotonic()
    folders, label_map, images, labels, (train_idx, val_idx) = prepared(
        data, settings, label_map_file
    )
    encoder = Encoder(load_efficientnet_lite0(), taps=TAPS).eval()
    for parameter in encoder.parameters():
        parameter.requires_grad_(False)
    probe = BackboneClassifier(encoder, torch.zeros(1), torch.ones(1), nn.Linear(1, 1))
    feats = _features(probe, images)
    mean, std = feats[train_idx].mean(0), feats[train_idx].std(0) + 1e-6
    curves = Curves()
    head, history = _fit_head(
        (feats[train_idx] - mean) / std, labels[train_idx], len(folders.classes), curves
    )
    net = BackboneClassifier(encoder, mean, std, head).eval()
    report = _report(net, folders, images, labels, (train_idx, val_idx), settings, label_map)
    report.update(
        history=history, train_seconds=round(time.monotonic() - started, 1), backbone=BACKBONES[0]
    )
    card = _card(out, folders, settings, label_map, report)
    spec = {"name": "efficientnet_lite0_linear", "params": {"num_classes": len(folders.classes)}}
    model = export_onnx(net.cpu(), "softmax", settings.size, card, spec)
    _measure(curves, report["validation"])
    written = write_outputs(out, model, card, report, curves)
    report["outputs"] = {k: str(v) for k, v in written.items()}
    return report


def _measure(curves: Curves, validation: dict) -> None:
    """The held-out accuracy, measured once after the last step, on the curves' last row."""
    if curves.rows and validation["split"] == "validation":
        curves.measure(val_accuracy=validation["accuracy"])


@torch.no_grad()
def _features(net: BackboneClassifier, images: np.ndarray, batch: int = 32) -> torch.Tensor:
    return torch.cat(
        [net.features(to_input(images[i : i + batch])) for i in range(0, len(images), batch)]
    )


def _fit_head(
    x: torch.Tensor, y: np.ndarray, classes: int, curves: Curves | None = None
) -> tuple[nn.Linear, list[dict]]:
    """The head after HEAD_STEPS full-batch steps, and its loss every 25 steps (the history);
    the progress bar on stderr, a row per step in `curves` when given."""
    head = nn.Linear(x.shape[1], classes)
    optimiser = torch.optim.AdamW(head.parameters(), lr=HEAD_LR, weight_decay=1e-2)
    targets = torch.from_numpy(y)
    progress = Progress(HEAD_STEPS, "head", curves=curves)
    history = []
    for step in range(1, HEAD_STEPS + 1):
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(head(x), targets, label_smoothing=0.05)
        loss.backward()
        optimiser.step()
        progress.step(loss.item(), HEAD_LR)
        if step % 25 == 0:
            history.append({"epoch": step // 25, "train_loss": loss.item()})
    return head.eval(), history
