"""Model cards: what a model expects and produces, stored in the ONNX metadata and beside it.

The card is JSON under the metadata key `reman.model_card` and in `<model>.card.json`.
`check_card(card, session)` compares it with the graph and raises CardMismatch saying what differs.
(Owned by the vision package; extend with care, since training and the grader both use it.)
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

METADATA_KEY = "reman.model_card"


class LabelMapping(BaseModel):
    """For a classification model: what one label means for grading."""

    model_config = ConfigDict(extra="forbid")

    defect: str | None = Field(description="Defect type (wear, corrosion, coating_damage) or null for 'no defect'.")
    grade: int = Field(ge=0, description="Grade this label stands for on the defect's table.")
    area_pct: float = Field(default=0.0, ge=0, le=100, description="Nominal area share reported for the label.")


class ModelCard(BaseModel):
    """The machine-readable model card."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Model name.")
    version: str = Field(description="Model version.")
    task: Literal["segmentation", "classification"] = Field(description="Per-pixel probabilities or one label per image.")
    input_name: str = Field(description="Name of the graph's image input.")
    input_size: tuple[int, int] = Field(description="Input height and width in pixels.")
    layout: Literal["NCHW", "NHWC"] = Field(default="NCHW", description="Input tensor layout.")
    color_order: Literal["RGB", "BGR", "GRAY"] = Field(default="RGB", description="Channel order the model expects.")
    mean: list[float] = Field(default=[0.0, 0.0, 0.0], description="Per-channel mean subtracted after scaling to 0..1.")
    std: list[float] = Field(default=[1.0, 1.0, 1.0], description="Per-channel std divided by after the mean.")
    output_names: list[str] = Field(description="Graph output names, in order.")
    classes: list[str] = Field(description="Output channels (segmentation: part and defect types) or labels (classification).")
    output_activation: Literal["sigmoid", "softmax", "none"] = Field(default="none", description="Activation already applied in the graph ('none': outputs are probabilities).")
    label_map: dict[str, LabelMapping] = Field(default_factory=dict, description="Classification: label to defect type and grade.")
    training_data: str = Field(default="", description="What the model was trained on.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Measured figures (name to value).")
    intended_use: str = Field(default="", description="What the model is for.")
    limits: str = Field(default="", description="Where it must not be trusted.")
