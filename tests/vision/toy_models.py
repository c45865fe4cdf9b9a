"""Small real ONNX models built with the onnx helper API, for card and grader tests.

`colour_segmenter` is a 1x1 convolution and a sigmoid: grey or any bright pixel is `part`,
strong red is corrosion, strong green wear, strong blue coating damage. So a test paints an
image with known colours and knows exactly what the model will see.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vision.card import ModelCard, write_card

SIZE = (64, 64)
CLASSES = ["part", "wear", "corrosion", "coating_damage"]
GAIN = 40.0
# Rows: part, wear (green), corrosion (red), coating_damage (blue); columns R, G, B (RGB input).
WEIGHTS = np.array([[1, 1, 1], [-1, 1, -1], [1, -1, -1], [-1, -1, 1]], np.float32) * GAIN
BIAS = np.array([-0.3, -0.2, -0.2, -0.2], np.float32) * GAIN

RED, GREEN, BLUE, GREY, BLACK = (0, 0, 255), (0, 255, 0), (255, 0, 0), (128, 128, 128), (0, 0, 0)


def segmentation_card(**changes) -> ModelCard:
    """The card that matches colour_segmenter(), with `changes` applied."""
    fields = {
        "name": "toy-seg",
        "version": "1",
        "task": "segmentation",
        "input_name": "image",
        "input_size": SIZE,
        "output_names": ["probs"],
        "classes": CLASSES,
        "output_activation": "sigmoid",
    }
    return ModelCard(**(fields | changes))


def colour_segmenter(path: Path, card: ModelCard | None = None, *, nan: bool = False) -> Path:
    """Write the colour segmentation model (and its card) to `path`."""
    h, w = SIZE
    nodes = [
        helper.make_node("Conv", ["image", "w", "b"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["sig" if nan else "probs"]),
    ]
    inits = [
        numpy_helper.from_array(WEIGHTS.reshape(4, 3, 1, 1), "w"),
        numpy_helper.from_array(BIAS, "b"),
    ]
    if nan:
        nodes.append(helper.make_node("Add", ["sig", "nan"], ["probs"]))
        inits.append(numpy_helper.from_array(np.array([np.nan], np.float32), "nan"))
    graph = helper.make_graph(
        nodes,
        "toy-seg",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 4, h, w])],
        inits,
    )
    return _save(graph, path, card or segmentation_card())


def classification_card(**changes) -> ModelCard:
    """The card that matches colour_classifier(), with `changes` applied."""
    fields = {
        "name": "toy-cls",
        "version": "1",
        "task": "classification",
        "input_name": "image",
        "input_size": SIZE,
        "output_names": ["scores"],
        "classes": ["clean", "rusty", "worn"],
        "output_activation": "softmax",
        "label_map": {
            "clean": {"defect": None, "grade": 0},
            "rusty": {"defect": "corrosion", "grade": 4, "area_pct": 10.0},
            "worn": {"defect": "wear", "grade": 3, "area_pct": 2.0},
        },
    }
    return ModelCard(**(fields | changes))


def colour_classifier(path: Path, card: ModelCard | None = None) -> Path:
    """Mean colour to three labels: grey is clean, red rusty, green worn (softmax scores)."""
    weights = np.array(
        [[0, 0, 0], [20, -10, -10], [-10, 20, -10]], np.float32
    ).T  # (3 RGB, 3 labels)
    nodes = [
        helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "w", "b"], ["raw"]),
        helper.make_node("Softmax", ["raw"], ["scores"], axis=1),
    ]
    inits = [
        numpy_helper.from_array(weights, "w"),
        numpy_helper.from_array(np.array([2.0, -2.0, -2.0], np.float32), "b"),
    ]
    graph = helper.make_graph(
        nodes,
        "toy-cls",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, *SIZE])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3])],
        inits,
    )
    return _save(graph, path, card or classification_card())


def _save(graph: onnx.GraphProto, path: Path, card: ModelCard) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    write_card(path, card)
    return path


def painted(size=SIZE, background=BLACK, part=GREY, patches=()) -> np.ndarray:
    """A BGR image: background, a part rectangle (rows 8..56, cols 8..56 at 64x64), colour patches.

    patches: (colour, (row0, row1, col0, col1)) in pixels.
    """
    h, w = size
    image = np.zeros((h, w, 3), np.uint8)
    image[:] = background
    image[h // 8 : h - h // 8, w // 8 : w - w // 8] = part
    for colour, (r0, r1, c0, c1) in patches:
        image[r0:r1, c0:c1] = colour
    return image
