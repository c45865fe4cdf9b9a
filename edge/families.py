"""Product families: how a core is recognised and the rules that decide its disposition.

A family lives in `<families_dir>/<id>.yaml`; its id is the file name stem. The engine that
applies these rules is `edge.rules`; this module holds the config models and the loader, which
reports problems as FILE:LINE: KEY: message.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.contract import DEFECT_TYPES

Outcome = Literal["REUSE", "REMANUFACTURE", "RECYCLE", "REVIEW"]
CreditTier = Literal["full", "partial", "none"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MatchSpec(_Section):
    """How a core is recognised as this family."""

    core_id_pattern: str | None = Field(default=None, description="Regular expression matched against the core id (search from the start).")
    part_numbers: list[str] = Field(default_factory=list, description="Part numbers that belong to this family.")

    @field_validator("core_id_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from exc
        return value


class MeasurementSpec(_Section):
    """A bench measurement the decision depends on, with its limits."""

    unit: str = Field(description="Engineering unit, as the bench reports it.")
    description: str = Field(default="", description="What is measured, for the operator.")
    required: bool = Field(default=True, description="Missing, stale or bad: REVIEW (unless RECYCLE fired).")
    min: float | None = Field(default=None, description="Below this: the `out_of_spec` outcome.")
    max: float | None = Field(default=None, description="Above this: the `out_of_spec` outcome.")
    out_of_spec: Outcome = Field(default="REMANUFACTURE", description="Outcome outside [min, max].")
    recycle_below: float | None = Field(default=None, description="Below this: RECYCLE (beyond repair).")
    recycle_above: float | None = Field(default=None, description="Above this: RECYCLE (beyond repair).")

    @model_validator(mode="after")
    def _possible(self) -> MeasurementSpec:
        for name in ("min", "max", "recycle_below", "recycle_above"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"impossible limit: min {self.min} is above max {self.max}")
        if self.recycle_below is not None and self.min is not None and self.recycle_below > self.min:
            raise ValueError(f"impossible limit: recycle_below {self.recycle_below} is above min {self.min}")
        if self.recycle_above is not None and self.max is not None and self.recycle_above < self.max:
            raise ValueError(f"impossible limit: recycle_above {self.recycle_above} is below max {self.max}")
        return self


class GradeLimit(_Section):
    """Grade limits for one defect type (grade at or above the limit gives the outcome)."""

    remanufacture_at: int | None = Field(default=None, ge=0, le=10, description="Grade at or above which the core is remanufactured.")
    recycle_at: int | None = Field(default=None, ge=0, le=10, description="Grade at or above which the core is recycled.")

    @model_validator(mode="after")
    def _ordered(self) -> GradeLimit:
        if self.remanufacture_at is not None and self.recycle_at is not None and self.recycle_at < self.remanufacture_at:
            raise ValueError(f"impossible limit: recycle_at {self.recycle_at} is below remanufacture_at {self.remanufacture_at}")
        return self


class ReviewSpec(_Section):
    """When a person must decide."""

    min_confidence: float = Field(default=0.6, ge=0, le=1, description="A defect grade with lower confidence is uncertain: REVIEW.")


class CreditSpec(_Section):
    """Core credit per outcome."""

    REUSE: CreditTier = Field(default="full", description="Credit when reused.")
    REMANUFACTURE: CreditTier = Field(default="full", description="Credit when remanufactured.")
    RECYCLE: CreditTier = Field(default="none", description="Credit when recycled.")
    partial_if_grade_at: dict[str, int] = Field(default_factory=dict, description="Defect type to grade at or above which full credit becomes partial.")


class ImpactSpec(_Section):
    """Environmental figures for the family, each with its source."""

    mass_kg: float = Field(gt=0, description="Mass of one core, kg.")
    materials: dict[str, float] = Field(default_factory=dict, description="Main materials, kg each.")
    co2e_new_kg: float = Field(ge=0, description="CO2e of making a new part, kg.")
    co2e_reman_kg: float = Field(ge=0, description="CO2e of remanufacturing it, kg.")
    co2e_reuse_kg: float = Field(default=0.0, ge=0, description="CO2e of cleaning and testing for reuse, kg.")
    co2e_recycle_credit_kg: float = Field(default=0.0, ge=0, description="CO2e credit for recovering its material, kg.")
    sources: list[str] = Field(min_length=1, description="Where each figure comes from.")


class FamilyConfig(_Section):
    """One product family (`<id>.yaml`)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Family id; set from the file name stem.")
    name: str = Field(description="Name for people.")
    description: str = Field(default="", description="What the family is.")
    match: MatchSpec = Field(description="How a core is recognised.")
    measurements: dict[str, MeasurementSpec] = Field(default_factory=dict, description="Bench measurements the decision needs.")
    grades: dict[str, GradeLimit] = Field(default_factory=dict, description="Grade limits per defect type.")
    review: ReviewSpec = Field(default_factory=ReviewSpec, description="Review conditions.")
    credit: CreditSpec = Field(default_factory=CreditSpec, description="Core credit rules.")
    impact: ImpactSpec | None = Field(default=None, description="Environmental figures; absent means unknown.")

    @field_validator("grades")
    @classmethod
    def _known_defects(cls, value: dict[str, GradeLimit]) -> dict[str, GradeLimit]:
        unknown = sorted(set(value) - set(DEFECT_TYPES))
        if unknown:
            raise ValueError(f"unknown defect type {', '.join(unknown)}; known: {', '.join(DEFECT_TYPES)}")
        return value

    @model_validator(mode="after")
    def _recognisable(self) -> FamilyConfig:
        if not self.match.core_id_pattern and not self.match.part_numbers:
            raise ValueError("match needs core_id_pattern or part_numbers")
        unknown = sorted(set(self.credit.partial_if_grade_at) - set(DEFECT_TYPES))
        if unknown:
            raise ValueError(f"credit names unknown defect type {', '.join(unknown)}")
        return self


def family_id(path: Path) -> str:
    """A family's id is its file name stem."""
    return Path(path).stem
