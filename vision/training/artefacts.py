"""What `reman train` writes beside the model: card, metrics JSON, curves (CSV and PNG) and the
confusion PNG."""

from __future__ import annotations

import json
from pathlib import Path

import onnx

from vision.card import ModelCard, card_path, embed_card
from vision.training.plots import draw_confusion, draw_curves
from vision.training.progress import Curves


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
    model_path: Path,
    onnx_bytes: bytes,
    card: ModelCard,
    report: dict,
    curves: Curves | None = None,
) -> dict[str, Path]:
    """Write the model (card embedded), the card beside it, metrics JSON and the drawings.

    With `curves` (one row per step), the curves are `x.curves.csv` and its drawing; without,
    the drawing is of the report's per-epoch history.
    """
    paths = artefact_paths(model_path)
    paths["model"].parent.mkdir(parents=True, exist_ok=True)
    model = onnx.load_from_string(onnx_bytes)
    embed_card(model, card)
    onnx.save(model, str(paths["model"]))
    paths["card"].write_text(card.model_dump_json(indent=2) + "\n")
    paths["metrics"].write_text(json.dumps(report, indent=2) + "\n")
    if curves is not None and curves.rows:
        paths.update(curves.write(model_path))
    else:
        draw_curves(report["history"], paths["curves"])
    confusion = report.get("validation", {}).get("confusion")
    if confusion:
        draw_confusion(confusion, report["validation"]["labels"], paths["confusion"])
    else:
        paths.pop("confusion")
    return paths
