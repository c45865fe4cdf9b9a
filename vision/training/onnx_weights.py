"""ONNX export of a trained network with its card, and weights read back for fine-tuning."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from vision.card import METADATA_KEY, ModelCard
from vision.errors import ModelError
from vision.training.nets import ARCHITECTURE_KEY, ARCHITECTURES, WithActivation, build, spec_json

OPSET = 17


def export_onnx(
    net: torch.nn.Module,
    activation: str,
    size: int,
    card: ModelCard,
    spec: dict,
    dynamic_size: bool = False,
) -> bytes:
    """The network (with its output activation) as ONNX bytes, card and architecture in metadata.

    With `dynamic_size` the height and width are free too (a fully convolutional network).
    """
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_size else {0: "batch"}
    graph = WithActivation(net, activation).cpu().eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notices
        torch.onnx.export(
            graph,
            (torch.zeros(1, 3, size, size),),
            buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes file objects too
            dynamo=False,
            opset_version=OPSET,
            input_names=[card.input_name],
            output_names=card.output_names,
            dynamic_axes={card.input_name: axes, card.output_names[0]: axes},
            # PRESERVE keeps parameter names (no batch-norm folding), so --init can read them back;
            # onnxruntime fuses the batch norms itself when it loads the model.
            training=torch.onnx.TrainingMode.PRESERVE,
            do_constant_folding=False,
        )
    model = onnx.load_from_string(buffer.getvalue())
    _set_metadata(model, {METADATA_KEY: card.model_dump_json(), ARCHITECTURE_KEY: spec_json(spec)})
    return model.SerializeToString()


def _set_metadata(model: onnx.ModelProto, values: dict[str, str]) -> None:
    kept = [p for p in model.metadata_props if p.key not in values]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in values.items():
        model.metadata_props.add(key=key, value=value)


def read_architecture(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The architecture record and named weights of a model made by `reman train`.

    Raises ModelError when the file is not ONNX or carries no architecture record.
    """
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises several unrelated types for a bad file
        raise ModelError(f"{path}: cannot read the ONNX model to fine-tune from: {exc}") from exc
    meta = {p.key: p.value for p in model.metadata_props}
    if ARCHITECTURE_KEY not in meta:
        raise ModelError(
            f"{path}: no '{ARCHITECTURE_KEY}' record in its metadata, so its network cannot be "
            f"rebuilt for fine-tuning (only models made by `reman train` carry one; "
            f"known architectures: {', '.join(ARCHITECTURES)})"
        )
    return json.loads(meta[ARCHITECTURE_KEY]), _named_weights(model)


def _named_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Initializers by name, also under the names Identity nodes give deduplicated copies."""
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Identity" and node.input[0] in weights:
            weights[node.output[0]] = weights[node.input[0]]
    return {name.removeprefix("net."): array for name, array in weights.items()}


def init_from_onnx(
    path: Path, spec: dict, record: tuple[dict, dict[str, np.ndarray]] | None = None
) -> tuple[torch.nn.Module, list[str]]:
    """Rebuild `spec`'s network with weights from the model at `path`.

    The architecture must match (same name and hyper-parameters, the number of classes aside);
    a head of another size is left freshly initialised and listed in the second return value.
    `record` is `read_architecture(path)` when the caller has already read it.
    Raises ModelError saying what differs.
    """
    stored, weights = record or read_architecture(path)
    _check_same_architecture(path, stored, spec)
    net = build(spec)
    state = net.state_dict()
    missing = [
        name for name in state if name not in weights and not name.endswith("num_batches_tracked")
    ]
    if missing:
        raise ModelError(f"{path}: weights missing for {', '.join(missing[:5])}")
    fresh = []
    for name, tensor in state.items():
        if name not in weights:
            continue
        if tuple(weights[name].shape) != tuple(tensor.shape):
            fresh.append(name)
            continue
        state[name] = torch.from_numpy(np.array(weights[name])).to(tensor.dtype)
    _check_only_head_differs(path, fresh)
    net.load_state_dict(state)
    return net, fresh


def _check_same_architecture(path: Path, stored: dict, spec: dict) -> None:
    ours = {k: v for k, v in spec["params"].items() if k != "num_classes"}
    theirs = {k: v for k, v in stored.get("params", {}).items() if k != "num_classes"}
    if stored.get("name") != spec["name"] or ours != theirs:
        raise ModelError(
            f"{path}: architecture {stored.get('name')} {theirs} does not match this run's "
            f"{spec['name']} {ours}; fine-tune with the same task and settings (e.g. --width)"
        )


def _check_only_head_differs(path: Path, fresh: list[str]) -> None:
    body = [name for name in fresh if not name.startswith("head.")]
    if body:
        raise ModelError(f"{path}: weight shapes differ for {', '.join(body[:5])}")
