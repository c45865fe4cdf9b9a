"""The reference segmentation network: a small U-Net with a full-resolution detail branch.

About 0.1 GMAC at 128x128, so one image runs in a few milliseconds on one CPU thread. Outputs
logits for [part, wear, corrosion, coating_damage]; export puts the sigmoid in the graph.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _conv(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride, padding=dilation, dilation=dilation, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class SegNet(nn.Module):
    """Encoder at 1/2, 1/4, 1/8 scale, decoder with additive skips, 1x1 head at full scale."""

    def __init__(self, width: int = 16, classes: int = 4, context: bool = False) -> None:
        super().__init__()
        w = width
        # Whole-image context: the pooled deepest features re-weight its channels (squeeze and
        # excitation), so a decision such as "painted or bare metal" can use the whole part.
        self.context = (
            nn.Sequential(
                nn.AdaptiveAvgPool2d(1),
                nn.Conv2d(4 * w, w, 1),
                nn.ReLU(inplace=True),
                nn.Conv2d(w, 4 * w, 1),
                nn.Sigmoid(),
            )
            if context
            else None
        )
        self.detail = nn.Sequential(_conv(3, 8), _conv(8, 8))
        self.enc1 = nn.Sequential(_conv(3, w, 2), _conv(w, w))
        self.enc2 = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w))
        self.enc3 = nn.Sequential(
            _conv(2 * w, 4 * w, 2), _conv(4 * w, 4 * w), _conv(4 * w, 4 * w, dilation=2)
        )
        self.lat3 = nn.Conv2d(4 * w, 2 * w, 1)
        self.dec2 = _conv(2 * w, 2 * w)
        self.lat2 = nn.Conv2d(2 * w, w, 1)
        self.dec1 = _conv(w, w)
        self.head = nn.Sequential(
            nn.Conv2d(w + 8, 16, 1), nn.ReLU(inplace=True), nn.Conv2d(16, classes, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes, H, W) for an input (N, 3, H, W) with H and W divisible by 8."""
        d = self.detail(x)
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        if self.context is not None:
            e3 = e3 * self.context(e3)
        y = self.dec2(_up(self.lat3(e3)) + e2)
        y = self.dec1(_up(self.lat2(y)) + e1)
        return self.head(torch.cat([_up(y), d], dim=1))


def _up(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
