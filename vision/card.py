"""Model cards: what a model expects and produces, stored in the ONNX metadata and beside it.

The card is JSON under the metadata key `reman.model_card` and in `<model>.card.json`.
`read_card(path)` reads both (they must agree), `write_card(path, card)` stores both, and
`check_card(card, session)` compares a card with the graph and raises CardMismatch listing
every difference as "card says X, graph has Y".
(Owned by the vision package; extend with care, since training and the grader both use it.)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vision.errors import CardMismatch, ModelError
from vision.ood import InputSummary
from vision.severity import DEFECT_TYPES, NAMED_DEFECT_TYPES

if TYPE_CHECKING:
    import onnx
    import onnxruntime as ort

METADATA_KEY = "reman.model_card"
PART_CLASS = "part"
ANOMALY_CLASS = "anomaly"  # the one class (and defect type) of an anomaly model


class LabelMapping(BaseModel):
    """For a classification model: what one label means for grading."""

    model_config = ConfigDict(extra="forbid")

    defect: str | None = Field(
        description="Defect type (wear, corrosion, coating_damage) or null for 'no defect'."
    )
    grade: int = Field(ge=0, description="Grade this label stands for on the defect's table.")
    area_pct: float = Field(
        default=0.0, ge=0, le=100, description="Nominal area share reported for the label."
    )


class ModelCard(BaseModel):
    """The machine-readable model card."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Model name.")
    version: str = Field(description="Model version.")
    task: Literal["segmentation", "classification", "anomaly"] = Field(
        description="Per-pixel probabilities, one label per image, or (anomaly) a per-pixel anomaly map and an image score learnt from good parts only."
    )
    input_name: str = Field(description="Name of the graph's image input.")
    input_size: tuple[int, int] = Field(description="Input height and width in pixels.")
    tile_overlap_px: int | None = Field(
        default=None,
        ge=0,
        description="Segmentation: run the model tile by tile over the photograph at its own resolution (input_size is the tile), tiles overlapping by this many pixels (vision.tiling); null: the photograph is resized to input_size.",
    )
    layout: Literal["NCHW", "NHWC"] = Field(default="NCHW", description="Input tensor layout.")
    color_order: Literal["RGB", "BGR", "GRAY"] = Field(
        default="RGB", description="Channel order the model expects."
    )
    mean: list[float] = Field(
        default=[0.0, 0.0, 0.0], description="Per-channel mean subtracted after scaling to 0..1."
    )
    std: list[float] = Field(
        default=[1.0, 1.0, 1.0], description="Per-channel std divided by after the mean."
    )
    output_names: list[str] = Field(description="Graph output names, in order.")
    classes: list[str] = Field(
        description="Output channels (segmentation: part and defect types) or labels (classification)."
    )
    output_activation: Literal["sigmoid", "softmax", "none", "logits"] = Field(
        default="none",
        description="Activation already applied in the graph ('none': outputs are probabilities); 'logits': raw scores, the grader applies sigmoid (segmentation) or softmax (classification).",
    )
    label_map: dict[str, LabelMapping] = Field(
        default_factory=dict, description="Classification: label to defect type and grade."
    )
    anomaly_threshold: float | None = Field(
        default=None,
        gt=0,
        description="Anomaly: map values and image scores above this are anomalous (calibrated on held-out good images).",
    )
    training_data: str = Field(default="", description="What the model was trained on.")
    training_source: Literal["synthetic", "photos", "mixed"] | None = Field(
        default=None,
        description="Where the training images came from: generated (synthetic), photographs, or both; null: not recorded.",
    )
    input_summary: InputSummary | None = Field(
        default=None,
        description="Statistics of the training images for the out-of-distribution guard (vision.ood); null: no guard.",
    )
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Measured figures (name to value)."
    )
    intended_use: str = Field(default="", description="What the model is for.")
    limits: str = Field(default="", description="Where it must not be trusted.")

    @property
    def channels(self) -> int:
        """Input channels the card implies: 1 for GRAY, else 3."""
        return 1 if self.color_order == "GRAY" else 3


def card_path(model_path: str | Path) -> Path:
    """Where the card beside a model lives: `models/x.onnx` -> `models/x.card.json`."""
    return Path(model_path).with_suffix(".card.json")


def card_json(card: ModelCard) -> str:
    """The card as the JSON text stored in the metadata and the beside file."""
    return card.model_dump_json(indent=2)


def parse_card(text: str, source: str) -> ModelCard:
    """A card from JSON text; ModelError names the source and the invalid fields."""
    try:
        return ModelCard.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '(card)'}: {e['msg']}" for e in exc.errors()
        )
        raise ModelError(f"{source}: invalid model card: {problems}") from exc


def read_card(model_path: str | Path, session: ort.InferenceSession | None = None) -> ModelCard:
    """The model's card from its ONNX metadata and/or `<model>.card.json`.

    At least one must exist; when both do they must be the same card, else CardMismatch names
    the fields that differ. Without a session, a CPU session is opened to read the metadata.
    """
    model_path = Path(model_path)
    embedded = _embedded_card(model_path, session)
    beside_path = card_path(model_path)
    beside = (
        parse_card(beside_path.read_text(), str(beside_path)) if beside_path.is_file() else None
    )
    if embedded is None and beside is None:
        raise ModelError(
            f"{model_path}: no model card (neither metadata key {METADATA_KEY!r} nor {beside_path.name})"
        )
    if embedded is not None and beside is not None and embedded != beside:
        fields = [
            name
            for name in ModelCard.model_fields
            if getattr(embedded, name) != getattr(beside, name)
        ]
        raise CardMismatch(
            f"{model_path}: the embedded card and {beside_path.name} differ in {', '.join(fields)}"
        )
    card = embedded or beside
    assert card is not None  # the neither-exists case raised above
    return card


def _embedded_card(model_path: Path, session: ort.InferenceSession | None) -> ModelCard | None:
    from vision._onnx import model_metadata, open_session

    if session is None:
        session = open_session(model_path, ["CPUExecutionProvider"])
    text = model_metadata(session).get(METADATA_KEY)
    return None if text is None else parse_card(text, f"{model_path} (metadata {METADATA_KEY})")


def embed_card(model: onnx.ModelProto, card: ModelCard) -> None:
    """Store the card in an in-memory ONNX model's metadata (replacing an older card)."""
    kept = [prop for prop in model.metadata_props if prop.key != METADATA_KEY]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, card_json(card)


def write_card(model_path: str | Path, card: ModelCard) -> Path:
    """Embed the card in the ONNX file and write `<model>.card.json` beside it; returns that path.

    Needs the `onnx` package (the `train` extra).
    """
    import onnx

    model_path = Path(model_path)
    model = onnx.load(str(model_path))
    embed_card(model, card)
    onnx.save(model, str(model_path))
    beside = card_path(model_path)
    beside.write_text(card_json(card) + "\n")
    return beside


def check_card(card: ModelCard, session: ort.InferenceSession, model: str | None = None) -> None:
    """Refuse a card that does not describe the session's graph (or is inconsistent in itself).

    CardMismatch lists every difference as "card says X, graph has Y"; `model` prefixes the
    message (the model's path or name).
    """
    problems = card_problems(card) + graph_problems(card, session)
    if problems:
        raise CardMismatch(
            f"{model or card.name}: model card does not match the model: " + "; ".join(problems)
        )


def card_problems(card: ModelCard) -> list[str]:
    """Inconsistencies within the card itself."""
    problems = [
        f"{name} has {len(values)} values for {card.channels} input channel(s) ({card.color_order})"
        for name, values in (("mean", card.mean), ("std", card.std))
        if len(values) != card.channels
    ]
    if any(value == 0 for value in card.std):
        problems.append(f"std contains 0: {card.std}")
    if len(set(card.classes)) != len(card.classes):
        problems.append(f"classes repeat: {card.classes}")
    if not card.output_names:
        problems.append("no output names")
    if card.input_summary is not None:
        problems += card.input_summary.problems()
    task_check = {
        "segmentation": _segmentation_problems,
        "classification": _classification_problems,
        "anomaly": _anomaly_problems,
    }[card.task]
    return problems + task_check(card)


def _segmentation_problems(card: ModelCard) -> list[str]:
    problems = [] if PART_CLASS in card.classes else [f"classes {card.classes} lack {PART_CLASS!r}"]
    graded = list(NAMED_DEFECT_TYPES)  # an anomaly map comes from task anomaly, never a class
    unknown = [name for name in card.classes if name != PART_CLASS and name not in graded]
    if unknown:
        problems.append(f"classes {unknown} have no grade table (known defect types: {graded})")
    overlap = card.tile_overlap_px
    if overlap is not None and (card.layout != "NCHW" or overlap >= min(card.input_size)):
        problems.append(
            f"tile_overlap_px {overlap}: tiled models take NCHW input and tiles must overlap by "
            f"less than their side (input_size {card.input_size})"
        )
    return problems


def _anomaly_problems(card: ModelCard) -> list[str]:
    problems = (
        [] if card.anomaly_threshold is not None else ["task anomaly has no anomaly_threshold"]
    )
    if card.classes != [ANOMALY_CLASS]:
        problems.append(f"classes: task anomaly has [{ANOMALY_CLASS!r}], card says {card.classes}")
    if len(card.output_names) != 2:
        problems.append(
            f"output names: task anomaly has 2 (anomaly map, image score), card says {card.output_names}"
        )
    return problems


def _classification_problems(card: ModelCard) -> list[str]:
    problems = []
    unmapped = [label for label in card.classes if label not in card.label_map]
    if unmapped:
        problems.append(f"label_map has no entry for class(es) {unmapped}")
    extra = [label for label in card.label_map if label not in card.classes]
    if extra:
        problems.append(f"label_map names label(s) {extra} that are not in classes {card.classes}")
    unknown = sorted(
        {
            m.defect
            for m in card.label_map.values()
            if m.defect is not None and m.defect not in DEFECT_TYPES
        }
    )
    if unknown:
        problems.append(
            f"label_map names unknown defect type(s) {unknown} (known: {list(DEFECT_TYPES)})"
        )
    return problems


def graph_problems(card: ModelCard, session: ort.InferenceSession) -> list[str]:
    """Differences between the card and the session's inputs and outputs."""
    inputs = {node.name: node for node in session.get_inputs()}
    outputs = [node.name for node in session.get_outputs()]
    problems = []
    if card.input_name not in inputs:
        problems.append(f"input name: card says {card.input_name!r}, graph has {list(inputs)}")
    else:
        node = inputs[card.input_name]
        if node.type != "tensor(float)":
            problems.append(
                f"input type: card implies tensor(float) (float32), graph has {node.type}"
            )
        problems += _input_problems(card, list(node.shape))
    if card.output_names != outputs:
        problems.append(f"output names: card says {card.output_names}, graph has {outputs}")
    elif outputs and card.task == "anomaly":
        problems += _anomaly_output_problems(card, [list(o.shape) for o in session.get_outputs()])
    elif outputs:
        problems += _output_problems(card, list(session.get_outputs()[0].shape))
    return problems


def _anomaly_output_problems(card: ModelCard, shapes: list[list]) -> list[str]:
    names = card.output_names
    want = [1, *card.input_size] if card.layout == "NCHW" else [*card.input_size, 1]
    problems = []
    if len(shapes[0]) != 4 or any(
        _known(d) and d != w for d, w in zip(shapes[0][1:], want, strict=True)
    ):
        problems.append(
            f"output {names[0]!r}: task anomaly has N x {'x'.join(map(str, want))} (one map at the input size), graph has {_dims(shapes[0])}"
        )
    if len(shapes) > 1 and len(shapes[1]) != 1:
        problems.append(
            f"output {names[1]!r}: task anomaly has one score per image (rank 1), graph has {_dims(shapes[1])}"
        )
    return problems


def _input_problems(card: ModelCard, shape: list) -> list[str]:
    if len(shape) != 4:
        return [f"input rank: card says 4 ({card.layout}), graph has {len(shape)} {_dims(shape)}"]
    channel_axis, size_axes = (1, (2, 3)) if card.layout == "NCHW" else (3, (1, 2))
    problems = []
    if _known(shape[channel_axis]) and shape[channel_axis] != card.channels:
        other = shape[4 - channel_axis] if card.layout == "NCHW" else shape[1]
        hint = (
            f" (layout {'NHWC' if card.layout == 'NCHW' else 'NCHW'}?)"
            if other == card.channels
            else ""
        )
        problems.append(
            f"input channels: card says {card.channels} ({card.color_order}, {card.layout}), "
            f"graph has {shape[channel_axis]} at axis {channel_axis} of {_dims(shape)}{hint}"
        )
    graph_size = [shape[axis] for axis in size_axes]
    if any(_known(d) and d != want for d, want in zip(graph_size, card.input_size, strict=True)):
        problems.append(
            f"input size (HxW): card says {list(card.input_size)}, graph has {graph_size} in {_dims(shape)}"
        )
    return problems


def _output_problems(card: ModelCard, shape: list) -> list[str]:
    name = card.output_names[0]
    if card.task == "segmentation":
        if len(shape) != 4:
            return [
                f"output {name!r} rank: card says 4 (segmentation, {card.layout}), graph has {len(shape)} {_dims(shape)}"
            ]
        channels = shape[1] if card.layout == "NCHW" else shape[3]
    else:
        if len(shape) != 2:
            return [
                f"output {name!r} rank: card says 2 (classification, N x labels), graph has {len(shape)} {_dims(shape)}"
            ]
        channels = shape[1]
    if _known(channels) and channels != len(card.classes):
        return [
            f"classes: card says {len(card.classes)} {card.classes}, graph output {name!r} has {channels} channels in {_dims(shape)}"
        ]
    return []


def _known(dim) -> bool:
    return isinstance(dim, int) and dim > 0


def _dims(shape: list) -> str:
    return "x".join(str(d) if _known(d) else "?" for d in shape)
