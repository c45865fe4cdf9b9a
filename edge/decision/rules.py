"""The disposition engine: a pure function from grades, a bench snapshot and a family to a decision.

Every rule of the family is evaluated and every one that fires gives a reason. The worst outcome
wins: RECYCLE over REVIEW over REMANUFACTURE over REUSE. An input a rule depends on that is
missing, stale, of bad or uncertain quality, NaN, in the wrong unit, or graded with too little
confidence fires no rule; it adds a REVIEW reason instead, so the core goes to a person unless a
RECYCLE rule fired on trustworthy inputs. An unknown family, an image-quality problem and an
image unlike the model's training images (`out_of_distribution`) are REVIEW too. Nothing here
reads a clock or a file: `now` comes in as an argument.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from edge.contract import (
    Credit,
    DecisionInfo,
    Disposition,
    FigureMethod,
    Impact,
    ImpactMethod,
    InspectionRecord,
    Reason,
)
from edge.contract.timefmt import UTC
from edge.decision.families import (
    Condition,
    FactorRange,
    FamilyConfig,
    FamilySet,
    GradeLimit,
    ImpactSpec,
    MeasurementSpec,
)
from vision.severity import TABLES, severity

Decision = DecisionInfo
"""A decision: code, label, credit and reasons (the record's `decision` field)."""

_RANK = {
    Disposition.REUSE: 0,
    Disposition.REMANUFACTURE: 1,
    Disposition.REVIEW: 2,
    Disposition.RECYCLE: 3,
}
_TIERS = {"full": Credit.FULL, "partial": Credit.PARTIAL, "none": Credit.NONE}


class DefectInput(BaseModel):
    """A defect type's grade as the grader reported it (NaN and None are allowed: they mean REVIEW)."""

    model_config = ConfigDict(extra="ignore")

    grade: float | None = None
    area_pct: float | None = None
    confidence: float | None = None
    scale: str | None = None


class MeasurementInput(BaseModel):
    """A bench measurement as the snapshot saw it."""

    model_config = ConfigDict(extra="ignore")

    value: float | int | bool | str | None = None
    unit: str | None = None
    status: str = "Good"
    source_ts: str | None = None
    received_ts: str | None = None  # the node's clock; judged instead of source_ts when present


# ---------------------------------------------------------------- the decision


def decide(
    family: FamilyConfig | None,
    defects: dict[str, DefectInput | dict],
    measurements: dict[str, MeasurementInput | dict],
    image_problems: list[str] | tuple = (),
    now: datetime | None = None,
) -> Decision:
    """Decide a core's disposition under `family`; every reason that contributed is listed.

    `image_problems` are the node's image-quality findings (each makes grades untrustworthy);
    `now` enables the family's `max_measurement_age_s` check.
    """
    if family is None:
        return _decision(
            Disposition.REVIEW,
            Credit.UNKNOWN,
            [
                Reason(
                    code="unknown_family", text="no product family matches this core", rule="match"
                )
            ],
        )
    grades = _trusted_grades(family, {k: _defect(v) for k, v in defects.items()}, image_problems)
    values = _trusted_values(family, {k: _measurement(v) for k, v in measurements.items()}, now)
    fired = (
        _grade_reasons(family, grades)
        + _measurement_reasons(family, values)
        + _rule_reasons(family, grades, values)
    )
    review = grades.review + values.review + _image_reasons(image_problems)
    return _verdict(family, fired, review, grades.known)


class _Trusted:
    """Inputs that rules may read, and REVIEW reasons for those they may not."""

    def __init__(self) -> None:
        self.known: dict[str, float] = {}
        self.review: list[Reason] = []


def _verdict(
    family: FamilyConfig,
    fired: list[tuple[Disposition, Reason]],
    review: list[Reason],
    grades: dict[str, float],
) -> Decision:
    outcomes = [code for code, _ in fired] + [Disposition.REVIEW] * bool(review)
    code = max(outcomes, key=_RANK.__getitem__, default=Disposition.REUSE)
    reasons = [r for _, r in fired] + review
    if not reasons:
        reasons = [
            Reason(code="in_spec", text="all grades and measurements within limits", rule=None)
        ]
    return _decision(code, _credit(family, code, grades), reasons)


def _decision(code: Disposition, credit: Credit, reasons: list[Reason]) -> Decision:
    return DecisionInfo(code=code, label=code.name, credit=credit, reasons=reasons)


def _credit(family: FamilyConfig, code: Disposition, grades: dict[str, float]) -> Credit:
    """The credit tier for the outcome; full becomes partial at the family's grade limits."""
    if code not in _RANK or code == Disposition.REVIEW:
        return Credit.UNKNOWN
    tier = _TIERS[getattr(family.credit, code.name)]
    downgrade = any(grades.get(d, -1) >= g for d, g in family.credit.partial_if_grade_at.items())
    return Credit.PARTIAL if tier == Credit.FULL and downgrade else tier


# ---------------------------------------------------------------- inputs


def _defect(value: DefectInput | dict | BaseModel) -> DefectInput:
    if isinstance(value, DefectInput):
        return value
    return DefectInput.model_validate(value.model_dump() if isinstance(value, BaseModel) else value)


def _measurement(value: MeasurementInput | dict | BaseModel) -> MeasurementInput:
    if isinstance(value, MeasurementInput):
        return value
    return MeasurementInput.model_validate(
        value.model_dump() if isinstance(value, BaseModel) else value
    )


def _needed_defects(family: FamilyConfig) -> set[str]:
    needed = set(family.grades) | set(family.credit.partial_if_grade_at)
    return needed | {c.defect for r in family.rules for c in r.when if c.defect}


def _trusted_grades(
    family: FamilyConfig, defects: dict[str, DefectInput], image_problems: list[str] | tuple
) -> _Trusted:
    trusted = _Trusted()
    for name in sorted(_needed_defects(family)):
        problem = _grade_problem(family, defects.get(name), bool(image_problems))
        if problem:
            trusted.review.append(
                Reason(code=problem[0], text=f"{name}: {problem[1]}", rule="review")
            )
        else:
            trusted.known[name] = _severity(defects[name])
    return trusted


def _grade_problem(
    family: FamilyConfig, defect: DefectInput | None, image_bad: bool
) -> tuple[str, str] | None:
    if defect is None or defect.grade is None:
        return ("defect_missing", "no grade")
    if not math.isfinite(defect.grade) or (
        defect.confidence is not None and not math.isfinite(defect.confidence)
    ):
        return ("not_a_number", "grade or confidence is not a number")
    if defect.scale is not None and defect.scale not in TABLES:
        return ("unknown_scale", f"unknown grade table {defect.scale}")
    if defect.confidence is not None and defect.confidence < family.review.min_confidence:
        return (
            "low_confidence",
            f"confidence {defect.confidence:.2f} below {family.review.min_confidence:.2f}",
        )
    if image_bad:
        return ("image_quality", "graded on an image with quality problems")
    return None


def _severity(defect: DefectInput) -> float:
    assert defect.grade is not None  # only trusted grades get here (_grade_problem was None)
    grade = int(defect.grade)
    return float(severity(grade, defect.scale) if defect.scale else grade)


def _needed_measurements(family: FamilyConfig) -> set[str]:
    required = {n for n, spec in family.measurements.items() if spec.required}
    return required | {c.measurement for r in family.rules for c in r.when if c.measurement}


def _trusted_values(
    family: FamilyConfig, measurements: dict[str, MeasurementInput], now: datetime | None
) -> _Trusted:
    trusted = _Trusted()
    for name in sorted(
        set(family.measurements) & (set(measurements) | _needed_measurements(family))
    ):
        problem = _value_problem(family, family.measurements[name], measurements.get(name), now)
        if problem is None:
            trusted.known[name] = _number(measurements[name])
        elif name in _needed_measurements(family):
            trusted.review.append(
                Reason(code=problem[0], text=f"{name}: {problem[1]}", rule="review")
            )
    return trusted


def _number(m: MeasurementInput) -> float:
    # only trusted values get here: _value_problem refused None, bool and str
    assert isinstance(m.value, int | float)
    return float(m.value)


def _value_problem(
    family: FamilyConfig, spec: MeasurementSpec, m: MeasurementInput | None, now: datetime | None
) -> tuple[str, str] | None:
    if m is None or m.value is None or m.status.lower().startswith("missing"):
        return ("measurement_missing", "missing")
    status = m.status.lower()
    if status.startswith("stale") or _too_old(
        m.received_ts or m.source_ts, family.review.max_measurement_age_s, now
    ):
        return ("measurement_stale", f"stale (status {m.status}, source time {m.source_ts})")
    if not status.startswith("good"):
        return ("measurement_bad_quality", f"status {m.status}")
    if isinstance(m.value, bool | str):
        return ("measurement_bad_quality", f"not a number: {m.value!r}")
    if not math.isfinite(m.value):
        return ("not_a_number", f"value is {m.value}")
    if m.unit is not None and m.unit != spec.unit:
        return ("unit_mismatch", f"unit {m.unit}, rules expect {spec.unit}")
    return None


def _too_old(source_ts: str | None, max_age_s: float | None, now: datetime | None) -> bool:
    if max_age_s is None or now is None:
        return False
    if source_ts is None:
        return True
    try:
        moment = datetime.fromisoformat(source_ts.replace("Z", "+00:00"))
    except ValueError:
        return True
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (now - moment).total_seconds() > max_age_s


UNREADABLE = "unreadable: "
"""Prefix of an image problem that is a file the decoder refused (corrupt, truncated, too big)."""

OUT_OF_DISTRIBUTION = "out of distribution: "
"""Prefix of an image problem that is a photograph unlike the model's training images."""

_IMAGE_CODES = {UNREADABLE: "image_corrupt", OUT_OF_DISTRIBUTION: "out_of_distribution"}


def _image_reasons(image_problems: list[str] | tuple) -> list[Reason]:
    return [Reason(code=_image_code(p), text=f"image: {p}", rule="review") for p in image_problems]


def _image_code(problem: str) -> str:
    return next((c for p, c in _IMAGE_CODES.items() if problem.startswith(p)), "image_quality")


# ---------------------------------------------------------------- the rules


def _grade_reasons(family: FamilyConfig, grades: _Trusted) -> list[tuple[Disposition, Reason]]:
    fired = []
    for name, limit in family.grades.items():
        if name in grades.known:
            fired += _grade_limit(name, grades.known[name], limit)
    return fired


def _grade_limit(name: str, grade: float, limit: GradeLimit) -> list[tuple[Disposition, Reason]]:
    for code, at, key in (
        (Disposition.RECYCLE, limit.recycle_at, "recycle_at"),
        (Disposition.REMANUFACTURE, limit.remanufacture_at, "remanufacture_at"),
    ):
        if at is not None and grade >= at:
            return [
                (
                    code,
                    Reason(
                        code=f"{name}_grade",
                        rule=f"grades.{name}.{key}",
                        text=f"{name} grade {grade:g} at or above {at}: {code.name}",
                    ),
                )
            ]
    return []


def _measurement_reasons(
    family: FamilyConfig, values: _Trusted
) -> list[tuple[Disposition, Reason]]:
    fired = []
    for name, value in values.known.items():
        fired += _measurement_limit(name, value, family.measurements[name])
    return fired


def _measurement_limit(
    name: str, value: float, spec: MeasurementSpec
) -> list[tuple[Disposition, Reason]]:
    """The worst limit the value crosses: RECYCLE limits first, then the spec range."""
    out_of_spec = Disposition[spec.out_of_spec]
    checks = (
        ("recycle_below", spec.recycle_below, "below", Disposition.RECYCLE, "recycle_limit"),
        ("recycle_above", spec.recycle_above, "above", Disposition.RECYCLE, "recycle_limit"),
        ("min", spec.min, "below", out_of_spec, "out_of_spec"),
        ("max", spec.max, "above", out_of_spec, "out_of_spec"),
    )
    for key, limit, word, code, what in checks:
        if limit is not None and (value < limit if word == "below" else value > limit):
            text = f"{name} {value:g} {spec.unit} {word} {key} {limit:g}: {code.name}"
            return [
                (code, Reason(code=f"{name}_{what}", text=text, rule=f"measurements.{name}.{key}"))
            ]
    return []


def _rule_reasons(
    family: FamilyConfig, grades: _Trusted, values: _Trusted
) -> list[tuple[Disposition, Reason]]:
    fired = []
    for i, rule in enumerate(family.rules):
        if all(_holds(c, grades.known, values.known) for c in rule.when):
            code = Disposition[rule.outcome]
            fired.append(
                (code, Reason(code=rule.id, text=f"{rule.text}: {code.name}", rule=f"rules[{i}]"))
            )
    return fired


def _holds(cond: Condition, grades: dict[str, float], values: dict[str, float]) -> bool:
    """True when the condition holds on trusted inputs (an untrusted input never fires a rule)."""
    if cond.defect is not None:
        return (
            cond.grade_at is not None
            and cond.defect in grades
            and grades[cond.defect] >= cond.grade_at
        )
    if cond.measurement is None:  # a condition names a defect or a measurement
        return False
    value = values.get(cond.measurement)
    if value is None:
        return False
    return (cond.above is None or value > cond.above) and (cond.below is None or value < cond.below)


# ---------------------------------------------------------------- version and impact


def canonical(family: FamilyConfig) -> str:
    """The family's rules in canonical form: sorted-keys JSON of the validated model.

    The impact figures and the passport facts are left out: they do not decide, and changing a
    source note must not make every earlier decision look as if other rules had made it.
    """
    data = family.model_dump(mode="json", exclude={"impact", "passport"})
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def rules_version(family: FamilyConfig) -> tuple[str, str]:
    """(short version, sha256) of the family's canonical form."""
    digest = hashlib.sha256(canonical(family).encode("ascii")).hexdigest()
    return digest[:12], digest


def impact(family: FamilyConfig | None, code: int) -> Impact:
    """Material kept in use and CO2e avoided against making a new part, for a disposition.

    REUSE: the core's mass, co2e_new - co2e_reuse. REMANUFACTURE: the core's mass (the
    worn parts replaced are small against it), co2e_new - co2e_reman. RECYCLE: no material kept
    in use, only the recovery credit. REVIEW and NONE: zero, known: nothing is claimed until a
    person decides (an override then sets the figures). A family without figures: unknown
    (known=False, nulls), never a made-up default. The figures carry their method: the formula,
    the family's sources and, where the family gives them, each figure's range and source.
    """
    figures = family.impact if family is not None else None
    if figures is None:
        return Impact(known=False)
    decision = Disposition(code).name
    if decision not in _FORMULAS:
        return Impact(
            known=True,
            material_kept_kg=0.0,
            co2e_avoided_kg=0.0,
            method=ImpactMethod(formula=_NOTHING_CLAIMED, sources=figures.sources),
        )
    kept, avoided = figures.figures(decision)
    return Impact(
        known=True,
        material_kept_kg=round(kept, 6),
        co2e_avoided_kg=round(avoided, 6),
        method=_method(figures, decision),
    )


_FORMULAS = {
    "REUSE": "material_kept = mass_kg ({mass_kg}); co2e_avoided = co2e_new_kg - co2e_reuse_kg "
    "({co2e_new_kg} - {co2e_reuse_kg})",
    "REMANUFACTURE": "material_kept = mass_kg ({mass_kg}); co2e_avoided = co2e_new_kg - "
    "co2e_reman_kg ({co2e_new_kg} - {co2e_reman_kg})",
    "RECYCLE": "material_kept = 0; co2e_avoided = co2e_recycle_credit_kg "
    "({co2e_recycle_credit_kg})",
}
_NOTHING_CLAIMED = "nothing is claimed until a person decides: material_kept = 0, co2e_avoided = 0"


def _method(figures: ImpactSpec, decision: str) -> ImpactMethod:
    factors = next((v for k, v in figures.factors.items() if k == decision), None)
    return ImpactMethod(
        formula=_FORMULAS[decision].format(**figures.model_dump()),
        sources=figures.sources,
        co2e_avoided=_range(factors.co2e_avoided_kg if factors else None),
        material_kept=_range(factors.material_kept_kg if factors else None),
    )


def _range(given: FactorRange | None) -> FigureMethod | None:
    if given is None:
        return None
    return FigureMethod(low_kg=given.low, high_kg=given.high, source=given.source)


# ---------------------------------------------------------------- what-if replay


def inputs_of(record: InspectionRecord) -> tuple[dict, dict, list[str]]:
    """(defects, measurements, image problems) of a journaled inspection, as `decide` takes them."""
    problems = [
        r.text.removeprefix("image: ")
        for r in record.decision.reasons
        if r.code in ("image_quality", "image_corrupt", "out_of_distribution")
    ]
    return dict(record.defects), dict(record.measurements), problems


def redecide(families: FamilySet, record: InspectionRecord) -> Decision:
    """The decision `families` would give a journaled inspection (family by id, else by match).

    Staleness is judged at the inspection's own time. Reasons the rules did not give (no `rule`:
    the node's core-id findings) are carried over, and a REVIEW they caused stands unless the
    rules now say RECYCLE.
    """
    family = families.get(record.family) or families.match(record.core_id, record.part_number)
    defects, measurements, problems = inputs_of(record)
    now = datetime.fromisoformat(record.ts.replace("Z", "+00:00"))
    new = decide(family, defects, measurements, problems, now=now)
    outside = [r for r in record.decision.reasons if r.rule is None and r.code != "in_spec"]
    if not outside:
        return new
    reasons = [r for r in new.reasons if r.code != "in_spec"] + outside
    if record.decision.code == Disposition.REVIEW and new.code != Disposition.RECYCLE:
        return _decision(Disposition.REVIEW, Credit.UNKNOWN, reasons)
    return new.model_copy(update={"reasons": reasons})


def replay(families: FamilySet, records: Iterable[InspectionRecord]) -> dict[str, Any]:
    """What-if: how many of `records` the rules in `families` would decide differently.

    Compares with each record's original rules decision (overrides aside) and lists every
    change with its new reasons, and a count per transition (`REUSE -> REMANUFACTURE`).
    Inspections that failed or were rejected (code 0: no rules decided them) are skipped.
    """
    total, skipped = 0, 0
    changes: list[dict[str, Any]] = []
    transitions: dict[str, int] = {}
    for record in records:
        if record.decision.code == Disposition.NONE:
            skipped += 1
            continue
        total += 1
        new = redecide(families, record)
        if new.code == record.decision.code:
            continue
        step = f"{record.decision.label} -> {new.label}"
        transitions[step] = transitions.get(step, 0) + 1
        changes.append(
            {
                "id": record.id,
                "core_id": record.core_id,
                "ts": record.ts,
                "family": record.family,
                "from": record.decision.label,
                "to": new.label,
                "reasons": [r.text for r in new.reasons],
            }
        )
    return {
        "inspections": total,
        "skipped": skipped,
        "changed": len(changes),
        "transitions": transitions,
        "changes": changes,
    }
