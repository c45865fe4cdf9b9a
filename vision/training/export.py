"""ONNX export: sigmoid inside the graph, fixed batch 1, model card in the metadata and beside it."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from vision.card import ModelCard, write_card
from vision.errors import ModelError

OPSET = 17


class _WithSigmoid(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(x))


def export_onnx(model: nn.Module, out_path: str | Path, card: ModelCard) -> Path:
    """Write `model` as ONNX (opset 17, input card.input_name, output card.output_names[0]).

    The card is embedded under vision.card.METADATA_KEY and written to `<model>.card.json`
    (vision.card.write_card).
    """
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    h, w = card.input_size
    wrapped = _WithSigmoid(model).eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(wrapped, (torch.zeros(1, 3, h, w),), str(out), dynamo=False,
                              input_names=[card.input_name], output_names=card.output_names,
                              opset_version=OPSET, do_constant_folding=True)
    except Exception as exc:  # torch raises many types here; one boundary
        raise ModelError(f"ONNX export to {out} failed: {exc}") from exc
    write_card(out, card)
    return out
