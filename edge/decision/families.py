"""Product families: how a core is recognised and the rules that decide its disposition.

A family lives in `<families_dir>/<id>.yaml`; its id is the file name stem. The engine that
applies these rules is `edge.decision.rules`; this module holds the config models and the loader, which
reports problems as FILE:LINE: KEY: message.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from edge.contract import DEFECT_TYPES, BatterySpec
from edge.contract.battery import original_id_template_problem
from edge.contract.configfile import line_of, load_model, read_yaml
from edge.contract.errors import ConfigError, ConfigProblem

Outcome = Literal["REUSE", "REMANUFACTURE", "RECYCLE", "REVIEW"]
CreditTier = Literal["full", "partial", "none"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MatchSpec(_Section):
    """How a core is recognised as this family."""

    core_id_pattern: str | None = Field(
        default=None,
        description="Regular expression matched against the core id (search from the start).",
    )
    part_numbers: list[str] = Field(
        default_factory=list, description="Part numbers that belong to this family."
    )
    examples: list[str] = Field(
        default_factory=list,
        description="Example core ids that must match core_id_pattern; the loader also checks that no other family matches them.",
    )

    def matches_core(self, core_id: str) -> bool:
        """True when the core id matches the pattern (searched from the start)."""
        return bool(self.core_id_pattern and re.match(self.core_id_pattern, core_id))

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
    required: bool = Field(
        default=True, description="Missing, stale or bad: REVIEW (unless RECYCLE fired)."
    )
    min: float | None = Field(default=None, description="Below this: the `out_of_spec` outcome.")
    max: float | None = Field(default=None, description="Above this: the `out_of_spec` outcome.")
    out_of_spec: Outcome = Field(default="REMANUFACTURE", description="Outcome outside [min, max].")
    recycle_below: float | None = Field(
        default=None, description="Below this: RECYCLE (beyond repair)."
    )
    recycle_above: float | None = Field(
        default=None, description="Above this: RECYCLE (beyond repair)."
    )

    @model_validator(mode="after")
    def _possible(self) -> MeasurementSpec:
        for name in ("min", "max", "recycle_below", "recycle_above"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"impossible limit: min {self.min} is above max {self.max}")
        if (
            self.recycle_below is not None
            and self.min is not None
            and self.recycle_below > self.min
        ):
            raise ValueError(
                f"impossible limit: recycle_below {self.recycle_below} is above min {self.min}"
            )
        if (
            self.recycle_above is not None
            and self.max is not None
            and self.recycle_above < self.max
        ):
            raise ValueError(
                f"impossible limit: recycle_above {self.recycle_above} is below max {self.max}"
            )
        return self


class GradeLimit(_Section):
    """Grade limits for one defect type (grade at or above the limit gives the outcome)."""

    remanufacture_at: int | None = Field(
        default=None, ge=0, le=10, description="Grade at or above which the core is remanufactured."
    )
    recycle_at: int | None = Field(
        default=None, ge=0, le=10, description="Grade at or above which the core is recycled."
    )

    @model_validator(mode="after")
    def _ordered(self) -> GradeLimit:
        if (
            self.remanufacture_at is not None
            and self.recycle_at is not None
            and self.recycle_at < self.remanufacture_at
        ):
            raise ValueError(
                f"impossible limit: recycle_at {self.recycle_at} is below remanufacture_at {self.remanufacture_at}"
            )
        return self


class Condition(_Section):
    """One condition of a rule: a defect grade at or above a level, or a measurement beyond a value."""

    defect: str | None = Field(
        default=None,
        description="Defect type the condition reads (wear, corrosion, coating_damage).",
    )
    grade_at: int | None = Field(
        default=None, ge=0, le=10, description="Holds when the defect's grade is at or above this."
    )
    measurement: str | None = Field(
        default=None, description="Measurement the condition reads (a key of `measurements`)."
    )
    above: float | None = Field(
        default=None, description="Holds when the measurement is above this."
    )
    below: float | None = Field(
        default=None, description="Holds when the measurement is below this."
    )

    @model_validator(mode="after")
    def _one_input(self) -> Condition:
        if (self.defect is None) == (self.measurement is None):
            raise ValueError("a condition names exactly one of defect or measurement")
        if self.defect is not None and (
            self.grade_at is None or self.above is not None or self.below is not None
        ):
            raise ValueError("a defect condition needs grade_at (and no above/below)")
        if self.measurement is not None and (
            self.grade_at is not None or (self.above is None and self.below is None)
        ):
            raise ValueError("a measurement condition needs above or below (and no grade_at)")
        for name in ("above", "below"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number")
        if self.above is not None and self.below is not None and self.above >= self.below:
            raise ValueError(
                f"impossible limit: above {self.above} and below {self.below} never both hold"
            )
        return self


class RuleSpec(_Section):
    """A combined rule: when all its conditions hold, the outcome applies."""

    id: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="Rule id, quoted in the decision's reasons.",
    )
    text: str = Field(description="The reason in words for the operator.")
    outcome: Outcome = Field(description="Outcome when every condition holds.")
    when: list[Condition] = Field(min_length=1, description="Conditions that must all hold.")


class ReviewSpec(_Section):
    """When a person must decide."""

    min_confidence: float = Field(
        default=0.6,
        ge=0,
        le=1,
        description="A defect grade with lower confidence is uncertain: REVIEW.",
    )
    max_measurement_age_s: float | None = Field(
        default=None,
        gt=0,
        description="A measurement whose source timestamp is older than this at decision time is stale: REVIEW. Null leaves staleness to the bench client's status.",
    )


class CreditSpec(_Section):
    """Core credit per outcome."""

    REUSE: CreditTier = Field(default="full", description="Credit when reused.")
    REMANUFACTURE: CreditTier = Field(default="full", description="Credit when remanufactured.")
    RECYCLE: CreditTier = Field(default="none", description="Credit when recycled.")
    partial_if_grade_at: dict[str, int] = Field(
        default_factory=dict,
        description="Defect type to grade at or above which full credit becomes partial.",
    )


class FactorRange(_Section):
    """The uncertainty range of one impact figure, with its source."""

    low: float = Field(description="Low end of the range, kg.")
    high: float = Field(description="High end of the range, kg.")
    source: str = Field(min_length=1, description="The citation the range comes from.")

    @model_validator(mode="after")
    def _ordered(self) -> FactorRange:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("low and high must be finite numbers")
        if self.low > self.high:
            raise ValueError(f"impossible range: low {self.low} is above high {self.high}")
        return self


class DecisionFactors(_Section):
    """The ranges of one decision's figures."""

    co2e_avoided_kg: FactorRange | None = Field(
        default=None, description="Range and source of the CO2e avoided, kg."
    )
    material_kept_kg: FactorRange | None = Field(
        default=None, description="Range and source of the material kept in use, kg."
    )


class ImpactSpec(_Section):
    """Environmental figures for the family, each with its source."""

    mass_kg: float = Field(gt=0, description="Mass of one core, kg.")
    materials: dict[str, float] = Field(
        default_factory=dict, description="Main materials, kg each."
    )
    co2e_new_kg: float = Field(ge=0, description="CO2e of making a new part, kg.")
    co2e_reman_kg: float = Field(ge=0, description="CO2e of remanufacturing it, kg.")
    co2e_reuse_kg: float = Field(
        default=0.0, ge=0, description="CO2e of cleaning and testing for reuse, kg."
    )
    co2e_recycle_credit_kg: float = Field(
        default=0.0, ge=0, description="CO2e credit for recovering its material, kg."
    )
    sources: list[str] = Field(min_length=1, description="Where each figure comes from.")
    factors: dict[Literal["REUSE", "REMANUFACTURE", "RECYCLE"], DecisionFactors] = Field(
        default_factory=dict,
        description="Per decision, the uncertainty range and source of its CO2e avoided and "
        "material kept (docs/impact.md); a decision or figure left out has no range.",
    )

    def figures(self, decision: str) -> tuple[float, float]:
        """(material kept, CO2e avoided) in kg for REUSE, REMANUFACTURE or RECYCLE."""
        return {
            "REUSE": (self.mass_kg, self.co2e_new_kg - self.co2e_reuse_kg),
            "REMANUFACTURE": (self.mass_kg, self.co2e_new_kg - self.co2e_reman_kg),
            "RECYCLE": (0.0, self.co2e_recycle_credit_kg),
        }[decision]

    @model_validator(mode="after")
    def _ranges_hold_the_figures(self) -> ImpactSpec:
        for decision, factors in self.factors.items():
            kept, avoided = self.figures(decision)
            for name, value in (("material_kept_kg", kept), ("co2e_avoided_kg", avoided)):
                given = getattr(factors, name)
                if given is not None and not given.low <= round(value, 6) <= given.high:
                    raise ValueError(
                        f"factors.{decision}.{name}: the range [{given.low}, {given.high}] does "
                        f"not hold the figure {round(value, 6)} the factors above give"
                    )
        return self


class FamilyPassportSpec(_Section):
    """What a family adds to its cores' passports."""

    battery: BatterySpec | None = Field(
        default=None,
        description="The battery passport (DIN DKE SPEC 99100 in the IDTA 02035 structure): "
        "status per decision, the measurements and rated values for the state of health, and "
        "where the original battery's passport id comes from.",
    )


class FamilyConfig(_Section):
    """One product family (`<id>.yaml`)."""

    id: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="Family id; set from the file name stem."
    )
    name: str = Field(description="Name for people.")
    description: str = Field(default="", description="What the family is.")
    match: MatchSpec = Field(description="How a core is recognised.")
    measurements: dict[str, MeasurementSpec] = Field(
        default_factory=dict, description="Bench measurements the decision needs."
    )
    grades: dict[str, GradeLimit] = Field(
        default_factory=dict, description="Grade limits per defect type."
    )
    rules: list[RuleSpec] = Field(
        default_factory=list, description="Combined rules over grades and measurements."
    )
    review: ReviewSpec = Field(default_factory=ReviewSpec, description="Review conditions.")
    credit: CreditSpec = Field(default_factory=CreditSpec, description="Core credit rules.")
    impact: ImpactSpec | None = Field(
        default=None, description="Environmental figures; absent means unknown."
    )
    passport: FamilyPassportSpec | None = Field(
        default=None, description="What the family adds to its cores' passports."
    )

    @field_validator("grades")
    @classmethod
    def _known_defects(cls, value: dict[str, GradeLimit]) -> dict[str, GradeLimit]:
        unknown = sorted(set(value) - set(DEFECT_TYPES))
        if unknown:
            raise ValueError(
                f"unknown defect type {', '.join(unknown)}; known: {', '.join(DEFECT_TYPES)}"
            )
        return value

    @model_validator(mode="after")
    def _recognisable(self) -> FamilyConfig:
        if not self.match.core_id_pattern and not self.match.part_numbers:
            raise ValueError("match needs core_id_pattern or part_numbers")
        unknown = sorted(set(self.credit.partial_if_grade_at) - set(DEFECT_TYPES))
        if unknown:
            raise ValueError(f"credit names unknown defect type {', '.join(unknown)}")
        return self

    def reference_problems(self) -> list[tuple[tuple[Any, ...], str]]:
        """(location, message) for every rule that names an unknown input or a duplicate id,
        and every example core id that its own pattern does not match."""
        problems: list[tuple[tuple[Any, ...], str]] = []
        seen: set[str] = set()
        for i, rule in enumerate(self.rules):
            if rule.id in seen:
                problems.append((("rules", i, "id"), f"rule id {rule.id} is used twice"))
            seen.add(rule.id)
            problems += [
                ((("rules", i, "when", j) + loc), msg)
                for j, cond in enumerate(rule.when)
                for loc, msg in self._unknown(cond)
            ]
        problems += self._battery_problems()
        for k, example in enumerate(self.match.examples):
            if not self.match.matches_core(example):
                problems.append(
                    (("match", "examples", k), f"example {example} does not match core_id_pattern")
                )
        return problems

    def _battery_problems(self) -> list[tuple[tuple[Any, ...], str]]:
        battery = self.passport.battery if self.passport else None
        if battery is None:
            return []
        at = ("passport", "battery")
        known = ", ".join(self.measurements) or "none"
        problems: list[tuple[tuple[Any, ...], str]] = []
        capacity = self.measurements.get(battery.capacity_measurement)
        if capacity is None:
            problems.append(
                (
                    at + ("capacity_measurement",),
                    f"unknown measurement {battery.capacity_measurement}; known: {known}",
                )
            )
        elif capacity.unit not in ("%", "Ah"):
            problems.append(
                (
                    at + ("capacity_measurement",),
                    f"{battery.capacity_measurement} is in "
                    f"{capacity.unit}; a capacity is in % (of rated) or Ah",
                )
            )
        elif capacity.unit == "Ah" and battery.rated_capacity_ah is None:
            problems.append(
                (at + ("rated_capacity_ah",), "a capacity in Ah needs rated_capacity_ah")
            )
        template = battery.original_id_template
        problem = original_id_template_problem(template) if template else None
        if problem:
            problems.append((at + ("original_id_template",), problem))
        name = battery.resistance_measurement
        if name is not None and name not in self.measurements:
            problems.append(
                (at + ("resistance_measurement",), f"unknown measurement {name}; known: {known}")
            )
        elif name is not None and self.measurements[name].unit != "mOhm":
            problems.append(
                (
                    at + ("resistance_measurement",),
                    f"{name} is in {self.measurements[name].unit}; the resistance is read in mOhm",
                )
            )
        return problems

    def _unknown(self, cond: Condition) -> list[tuple[tuple[str, ...], str]]:
        if cond.measurement is not None and cond.measurement not in self.measurements:
            known = ", ".join(self.measurements) or "none"
            return [(("measurement",), f"unknown measurement {cond.measurement}; known: {known}")]
        if cond.defect is not None and cond.defect not in DEFECT_TYPES:
            return [
                (
                    ("defect",),
                    f"unknown defect type {cond.defect}; known: {', '.join(DEFECT_TYPES)}",
                )
            ]
        return []


def family_id(path: Path) -> str:
    """A family's id is its file name stem."""
    return Path(path).stem


def load_family(path: Path) -> FamilyConfig:
    """Load and validate one product family file; its id is the file name stem."""
    path = Path(path)
    data = read_yaml(path)
    if isinstance(data, dict) and "id" in data:
        problem = ConfigProblem(
            str(path),
            line_of(data, ("id",)),
            "id",
            "a family's id is its file name; remove the key",
        )
        raise ConfigError([problem])
    return load_model(path, FamilyConfig, extra={"id": family_id(path)})


# ---------------------------------------------------------------- the set of a station's families


@dataclass
class FamilySet:
    """The product families of a station, checked so that no core matches two of them."""

    families: dict[str, FamilyConfig] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    def get(self, family: str | None) -> FamilyConfig | None:
        """The family with this id, or None."""
        return None if family is None else self.families.get(family)

    def match(self, core_id: str, part_number: str | None = None) -> FamilyConfig | None:
        """The family of a core: by part number first, then by core-id pattern; None if none."""
        if part_number:
            for family in self.families.values():
                if part_number in family.match.part_numbers:
                    return family
        for family in self.families.values():
            if family.match.matches_core(core_id):
                return family
        return None

    def __iter__(self) -> Iterator[FamilyConfig]:
        return iter(self.families.values())

    def __len__(self) -> int:
        return len(self.families)

    def __contains__(self, family: str) -> bool:
        return family in self.families


def load_families(directory: str | Path) -> FamilySet:
    """Load every `*.yaml` in `directory` (id = file stem) and check them together.

    Raises ConfigError listing every problem as FILE:LINE: KEY: message: a file that does not
    validate, a rule naming an unknown measurement or defect type, an impossible limit, and two
    families that would match the same core (a shared part number, identical patterns, or a
    pattern that matches another family's example core id).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ConfigError(
            [ConfigProblem(str(directory), None, "(folder)", "no such folder of families")]
        )
    loaded: dict[str, tuple[FamilyConfig, Path, Any]] = {}
    problems: list[ConfigProblem] = []
    for path in sorted(directory.glob("*.yaml")):
        try:
            family = load_family(path)
        except ConfigError as exc:
            problems += exc.problems
            continue
        located = read_yaml(path)
        problems += [
            ConfigProblem(str(path), line_of(located, loc), _key(loc), msg)
            for loc, msg in family.reference_problems()
        ]
        loaded[family.id] = (family, path, located)
    problems += _overlaps(list(loaded.values()))
    if problems:
        raise ConfigError(problems)
    return FamilySet(
        {k: f for k, (f, _, _) in loaded.items()}, {k: p for k, (_, p, _) in loaded.items()}
    )


def _key(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def _overlaps(loaded: list[tuple[FamilyConfig, Path, Any]]) -> list[ConfigProblem]:
    """Problems for every later family that would match a core an earlier one matches."""
    problems = []
    for i, (later, path, located) in enumerate(loaded):
        for earlier, other, _ in loaded[:i]:
            problems += [
                ConfigProblem(str(path), line_of(located, loc), _key(loc), msg)
                for loc, msg in _overlap(later, earlier, other)
            ]
    return problems


def _overlap(a: FamilyConfig, b: FamilyConfig, b_path: Path) -> list[tuple[tuple[Any, ...], str]]:
    """Where family `a` would match the same core as family `b` (from `b_path`)."""
    found: list[tuple[tuple[Any, ...], str]] = []
    for k, number in enumerate(a.match.part_numbers):
        if number in b.match.part_numbers:
            found.append(
                (
                    ("match", "part_numbers", k),
                    f"part number {number} also belongs to family {b.id} ({b_path})",
                )
            )
    pattern = ("match", "core_id_pattern")
    if a.match.core_id_pattern and a.match.core_id_pattern == b.match.core_id_pattern:
        found.append((pattern, f"same core_id_pattern as family {b.id} ({b_path})"))
    else:
        found += [
            (pattern, f"also matches {x}, an example core id of family {b.id} ({b_path})")
            for x in b.match.examples
            if a.match.matches_core(x)
        ]
        found += [
            (("match", "examples", k), f"example {x} is also matched by family {b.id} ({b_path})")
            for k, x in enumerate(a.match.examples)
            if b.match.matches_core(x)
        ]
    return found
