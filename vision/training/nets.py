"""Networks that `reman train` builds, and their record in the ONNX file for fine-tuning.

The exported model carries `reman.architecture` in its metadata: `{"name": ..., "params": {...}}`.
`--init` rebuilds the same network from it and copies the weights back from the ONNX initializers,
so any model this tool made can be fine-tuned on new photographs.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import torch
from torch import nn

ARCHITECTURE_KEY = "reman.architecture"
HEAD_PRIOR_LOGIT = -3.0


def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)
    )


class CompactCNN(nn.Module):
    """A small VGG-like classifier: 7 convolutions, global average pooling, one linear layer.

    With width 16 it has about 0.3 M parameters (1.2 MB) and needs about 52 M multiply-adds
    at 128x128; every feature is seen at four scales, which suits texture-like surface defects.
    """

    def __init__(self, num_classes: int, width: int = 16, dropout: float = 0.2) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            _conv_bn(3, w, 2),
            _conv_bn(w, w),
            nn.MaxPool2d(2),
            _conv_bn(w, 2 * w),
            _conv_bn(2 * w, 2 * w),
            nn.MaxPool2d(2),
            _conv_bn(2 * w, 4 * w),
            _conv_bn(4 * w, 4 * w),
            nn.MaxPool2d(2),
            _conv_bn(4 * w, 8 * w),
            _conv_bn(8 * w, 8 * w),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(8 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes)."""
        return self.head(self.dropout(torch.flatten(self.pool(self.features(x)), 1)))


class MaskUNet(nn.Module):
    """A small U-Net: three down-sampling steps, bilinear up-sampling with skip connections.

    Outputs one logit map per defect class (sigmoid: classes may overlap).
    """

    def __init__(self, num_classes: int, width: int = 16) -> None:
        super().__init__()
        w = width
        self.enc1 = nn.Sequential(_conv_bn(3, w), _conv_bn(w, w))
        self.enc2 = nn.Sequential(_conv_bn(w, 2 * w), _conv_bn(2 * w, 2 * w))
        self.enc3 = nn.Sequential(_conv_bn(2 * w, 4 * w), _conv_bn(4 * w, 4 * w))
        self.middle = nn.Sequential(_conv_bn(4 * w, 8 * w), _conv_bn(8 * w, 4 * w))
        self.dec3 = nn.Sequential(_conv_bn(8 * w, 4 * w), _conv_bn(4 * w, 2 * w))
        self.dec2 = nn.Sequential(_conv_bn(4 * w, 2 * w), _conv_bn(2 * w, w))
        self.dec1 = nn.Sequential(_conv_bn(2 * w, w), _conv_bn(w, w))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.head = nn.Conv2d(w, num_classes, 1)
        # Start from "almost no defect" (p = 0.05): defects are rare pixels, and from p = 0.5 the
        # optimiser spends hundreds of steps just lowering the bias before learning any shape.
        assert self.head.bias is not None  # Conv2d is built with a bias by default
        nn.init.constant_(self.head.bias, HEAD_PRIOR_LOGIT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logit maps (N, classes, H, W); H and W must be multiples of 8."""
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        m = self.middle(self.pool(e3))
        d3 = self.dec3(torch.cat([self.up(m), e3], 1))
        d2 = self.dec2(torch.cat([self.up(d3), e2], 1))
        return self.head(self.dec1(torch.cat([self.up(d2), e1], 1)))


class WithActivation(nn.Module):
    """The exported graph: the network followed by softmax (labels) or sigmoid (masks).

    "part_sigmoid" puts a constant `part` plane (the whole image) before the defect planes, for
    segmentation data that has defect masks but no part mask: defect shares are then shares of
    the whole photograph.
    """

    def __init__(self, net: nn.Module, activation: str) -> None:
        super().__init__()
        self.net = net
        self.activation = activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities."""
        logits = self.net(x)
        if self.activation == "softmax":
            return torch.softmax(logits, 1)
        probs = torch.sigmoid(logits)
        if self.activation == "part_sigmoid":
            probs = torch.cat([torch.ones_like(probs[:, :1]), probs], 1)
        return probs


def _reference_segnet(num_classes: int, width: int, context: bool = False) -> nn.Module:
    """The shipped reference model's network (vision.training.net.SegNet), for --init."""
    from vision.training.net import SegNet

    return SegNet(width, num_classes, context)


ARCHITECTURES: dict[str, Callable[..., nn.Module]] = {
    "compact_cnn": CompactCNN,
    "mask_unet": MaskUNet,
    "reman_segnet": _reference_segnet,
}


def build(spec: dict) -> nn.Module:
    """Build a network from its record `{"name": ..., "params": {...}}`."""
    return ARCHITECTURES[spec["name"]](**spec["params"])


def spec_json(spec: dict) -> str:
    """The record as stored in the ONNX metadata."""
    return json.dumps(spec, sort_keys=True)
