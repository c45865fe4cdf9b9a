"""ONNX export of the reference model: sigmoid in the graph, card and architecture in the metadata.

The export keeps the batch norms and the parameter names (vision.training.onnx_weights), so
`reman train --task segment --init models/reman-seg.onnx` can rebuild the network and fine-tune it.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from vision.card import ModelCard, write_card
from vision.errors import ModelError
from vision.training.onnx_weights import export_onnx as export_graph

ARCHITECTURE = "reman_segnet"


def reference_spec(width: int, classes: int, context: bool = False) -> dict:
    """The architecture record of a reference network (see vision.training.nets)."""
    return {
        "name": ARCHITECTURE,
        "params": {"num_classes": classes, "width": width, "context": context},
    }


def export_onnx(model: nn.Module, out_path: str | Path, card: ModelCard, spec: dict) -> Path:
    """Write `model` as ONNX at `out_path` with its card embedded and written beside it."""
    out = Path(out_path)
    h, w = card.input_size
    if h != w:
        raise ModelError(f"the reference model is exported square; got input size {h}x{w}")
    try:
        data = export_graph(model, "sigmoid", h, card, spec)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(data)
    except Exception as exc:  # torch raises many types here; one boundary
        raise ModelError(f"ONNX export to {out} failed: {exc}") from exc
    write_card(out, card)
    return out
