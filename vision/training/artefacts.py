"""What `reman train` writes beside the model: card, metrics JSON, curves and confusion PNGs."""

from __future__ import annotations

import json
from pathlib import Path

import onnx

from vision.card import ModelCard, card_path, embed_card
from vision.training.plots import draw_confusion, draw_curves


def artefact_paths(model_path: Path) -> dict[str, Path]:
    """Where each output goes: `x.onnx` -> `x.card.json`, `x.metrics.json`, `x.curves.png`, `x.confusion.png`."""
    model_path = Path(model_path)
    stem = model_path.with_suffix("")
    return {
        "model": model_path,
        "card": card_path(model_path),
        "metrics": Path(f"{stem}.metrics.json"),
        "curves": Path(f"{stem}.curves.png"),
        "confusion": Path(f"{stem}.confusion.png"),
    }


def write_outputs(
    model_path: Path, onnx_bytes: bytes, card: ModelCard, report: dict
) -> dict[str, Path]:
    """Write the model (card embedded), the card beside it, metrics JSON and the two drawings."""
    paths = artefact_paths(model_path)
    paths["model"].parent.mkdir(parents=True, exist_ok=True)
    model = onnx.load_from_string(onnx_bytes)
    embed_card(model, card)
    onnx.save(model, str(paths["model"]))
    paths["card"].write_text(card.model_dump_json(indent=2) + "\n")
    paths["metrics"].write_text(json.dumps(report, indent=2) + "\n")
    draw_curves(report["history"], paths["curves"])
    confusion = report.get("validation", {}).get("confusion")
    if confusion:
        draw_confusion(confusion, report["validation"]["labels"], paths["confusion"])
    else:
        paths.pop("confusion")
    return paths
