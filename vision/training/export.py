"""ONNX export: sigmoid inside the graph, fixed batch 1, model card in the metadata and beside it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import onnx
import torch
from torch import nn

from vision.card import METADATA_KEY, ModelCard
from vision.errors import ModelError

OPSET = 17


class _WithSigmoid(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.model(x))


def card_path(model_path: str | Path) -> Path:
    """Where the card lives beside a model: `<model>.card.json` (reman-seg.onnx -> reman-seg.card.json)."""
    path = Path(model_path)
    return path.with_name(path.stem + ".card.json")


def export_onnx(model: nn.Module, out_path: str | Path, card: ModelCard) -> Path:
    """Write `model` as ONNX (opset 17, input card.input_name, output card.output_names[0]).

    The card is embedded under vision.card.METADATA_KEY and written to `<model>.card.json`.
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


def write_card(model_path: str | Path, card: ModelCard) -> None:
    """Embed `card` in the ONNX file's metadata and write it beside the model."""
    path = Path(model_path)
    text = card.model_dump_json(indent=2)
    proto = onnx.load(str(path))
    del proto.metadata_props[:]
    proto.metadata_props.add(key=METADATA_KEY, value=text)
    proto.producer_name = "reman-edge"
    onnx.save(proto, str(path))
    card_path(path).write_text(text + "\n", encoding="utf-8")


def read_embedded_card(model_path: str | Path) -> dict:
    """The card stored in an ONNX file's metadata, as a dict."""
    proto = onnx.load(str(model_path), load_external_data=False)
    for prop in proto.metadata_props:
        if prop.key == METADATA_KEY:
            return json.loads(prop.value)
    raise ModelError(f"{model_path}: no model card under metadata key {METADATA_KEY}")
