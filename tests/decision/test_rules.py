"""Decisions of the example families, table-driven: every limit, every review condition."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest

from edge.contract import Credit, Disposition
from edge.contract.timefmt import UTC
from edge.decision.families import load_families
from edge.decision.rules import decide, impact, rules_version
from tests.conftest import REPO

FAMILIES = load_families(REPO / "config/families")
NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)

CLEAN = {
    "hydraulic-gear-pump": {"leak_rate_ml_min": 3.2, "flow_l_min": 24.0},
    "heat-pump-compressor": {
        "current_a": 9.8,
        "discharge_pressure_bar": 24.0,
        "insulation_resistance_mohm": 50.0,
    },
    "battery-module": {"capacity_pct": 96.0, "internal_resistance_mohm": 18.0},
}

R, M, X, V = Disposition.REUSE, Disposition.REMANUFACTURE, Disposition.RECYCLE, Disposition.REVIEW

# (family, case, grades changed, measurements changed, expected code, expected reason rule)
CASES = [
    ("hydraulic-gear-pump", "clean", {}, {}, R, None),
    (
        "hydraulic-gear-pump",
        "leak above max",
        {},
        {"leak_rate_ml_min": 7.0},
        M,
        "measurements.leak_rate_ml_min.max",
    ),
    (
        "hydraulic-gear-pump",
        "leak above recycle",
        {},
        {"leak_rate_ml_min": 41.0},
        X,
        "measurements.leak_rate_ml_min.recycle_above",
    ),
    (
        "hydraulic-gear-pump",
        "flow below min",
        {},
        {"flow_l_min": 18.0},
        M,
        "measurements.flow_l_min.min",
    ),
    (
        "hydraulic-gear-pump",
        "flow below recycle",
        {},
        {"flow_l_min": 5.0},
        X,
        "measurements.flow_l_min.recycle_below",
    ),
    (
        "hydraulic-gear-pump",
        "corrosion Ri2",
        {"corrosion": 2},
        {},
        M,
        "grades.corrosion.remanufacture_at",
    ),
    (
        "hydraulic-gear-pump",
        "corrosion Ri4",
        {"corrosion": 4},
        {},
        X,
        "grades.corrosion.recycle_at",
    ),
    (
        "hydraulic-gear-pump",
        "coating grade 2",
        {"coating_damage": 2},
        {},
        M,
        "grades.coating_damage.remanufacture_at",
    ),
    ("hydraulic-gear-pump", "wear grade 2", {"wear": 2}, {}, M, "grades.wear.remanufacture_at"),
    ("hydraulic-gear-pump", "wear grade 5", {"wear": 5}, {}, X, "grades.wear.recycle_at"),
    ("hydraulic-gear-pump", "scored bore", {"wear": 4}, {"leak_rate_ml_min": 16.0}, X, "rules[0]"),
    ("heat-pump-compressor", "clean", {}, {}, R, None),
    (
        "heat-pump-compressor",
        "current above max",
        {},
        {"current_a": 13.0},
        M,
        "measurements.current_a.max",
    ),
    (
        "heat-pump-compressor",
        "current above recycle",
        {},
        {"current_a": 26.0},
        X,
        "measurements.current_a.recycle_above",
    ),
    (
        "heat-pump-compressor",
        "pressure below min",
        {},
        {"discharge_pressure_bar": 15.0},
        M,
        "measurements.discharge_pressure_bar.min",
    ),
    (
        "heat-pump-compressor",
        "insulation below min",
        {},
        {"insulation_resistance_mohm": 1.0},
        M,
        "measurements.insulation_resistance_mohm.min",
    ),
    (
        "heat-pump-compressor",
        "insulation below recycle",
        {},
        {"insulation_resistance_mohm": 0.2},
        X,
        "measurements.insulation_resistance_mohm.recycle_below",
    ),
    (
        "heat-pump-compressor",
        "corrosion Ri2",
        {"corrosion": 2},
        {},
        M,
        "grades.corrosion.remanufacture_at",
    ),
    (
        "heat-pump-compressor",
        "corrosion Ri4",
        {"corrosion": 4},
        {},
        X,
        "grades.corrosion.recycle_at",
    ),
    (
        "heat-pump-compressor",
        "coating grade 3",
        {"coating_damage": 3},
        {},
        M,
        "grades.coating_damage.remanufacture_at",
    ),
    ("heat-pump-compressor", "wear grade 3", {"wear": 3}, {}, M, "grades.wear.remanufacture_at"),
    (
        "heat-pump-compressor",
        "moisture ingress",
        {"corrosion": 2},
        {"insulation_resistance_mohm": 5.0},
        V,
        "rules[0]",
    ),
    ("battery-module", "clean", {}, {}, R, None),
    (
        "battery-module",
        "capacity below min",
        {},
        {"capacity_pct": 85.0},
        X,
        "measurements.capacity_pct.min",
    ),
    (
        "battery-module",
        "resistance above max",
        {},
        {"internal_resistance_mohm": 28.0},
        M,
        "measurements.internal_resistance_mohm.max",
    ),
    (
        "battery-module",
        "resistance above recycle",
        {},
        {"internal_resistance_mohm": 50.0},
        X,
        "measurements.internal_resistance_mohm.recycle_above",
    ),
    (
        "battery-module",
        "corrosion Ri1",
        {"corrosion": 1},
        {},
        M,
        "grades.corrosion.remanufacture_at",
    ),
    ("battery-module", "corrosion Ri3", {"corrosion": 3}, {}, X, "grades.corrosion.recycle_at"),
    (
        "battery-module",
        "coating grade 2",
        {"coating_damage": 2},
        {},
        M,
        "grades.coating_damage.remanufacture_at",
    ),
    ("battery-module", "wear grade 3", {"wear": 3}, {}, M, "grades.wear.remanufacture_at"),
    (
        "battery-module",
        "terminal corrosion",
        {"corrosion": 2},
        {"internal_resistance_mohm": 31.0},
        X,
        "rules[0]",
    ),
]


def inputs(
    family: str, grades: dict | None = None, values: dict | None = None, confidence: float = 0.95
):
    """Clean, in-spec inputs for a family with some grades and measurements changed."""
    spec = FAMILIES.get(family)
    defects = {
        d: {"grade": 0, "area_pct": 0.0, "confidence": confidence}
        for d in ("wear", "corrosion", "coating_damage")
    }
    for name, grade in (grades or {}).items():
        defects[name]["grade"] = grade
    measurements = {
        n: {
            "value": v,
            "unit": spec.measurements[n].unit,
            "status": "Good",
            "source_ts": "2026-11-28T11:59:58.000Z",
        }
        for n, v in {**CLEAN[family], **(values or {})}.items()
    }
    return defects, measurements


@pytest.mark.parametrize(
    "family,case,grades,values,code,rule", CASES, ids=[f"{c[0]}:{c[1]}" for c in CASES]
)
def test_decision(family, case, grades, values, code, rule):
    decision = decide(FAMILIES.get(family), *inputs(family, grades, values), now=NOW)
    assert decision.code == code, decision.reasons
    assert decision.label == code.name
    if rule is None:
        assert [r.code for r in decision.reasons] == ["in_spec"]
        assert decision.credit == Credit.FULL
    else:
        assert rule in [r.rule for r in decision.reasons]


@pytest.mark.parametrize("family", sorted(CLEAN))
def test_missing_measurement_is_review(family):
    defects, measurements = inputs(family)
    missing = sorted(measurements)[0]
    del measurements[missing]
    decision = decide(FAMILIES.get(family), defects, measurements, now=NOW)
    assert decision.code == V and decision.credit == Credit.UNKNOWN
    assert [(r.code, r.text) for r in decision.reasons] == [
        ("measurement_missing", f"{missing}: missing")
    ]


@pytest.mark.parametrize(
    "family,grade", [("hydraulic-gear-pump", 4), ("heat-pump-compressor", 4), ("battery-module", 3)]
)
def test_heavy_corrosion_recycles_even_with_a_measurement_missing(family, grade):
    defects, measurements = inputs(family, {"corrosion": grade})
    measurements.pop(sorted(measurements)[0])
    decision = decide(FAMILIES.get(family), defects, measurements, now=NOW)
    assert decision.code == X
    assert {r.code for r in decision.reasons} >= {"corrosion_grade", "measurement_missing"}


@pytest.mark.parametrize(
    "change,reason",
    [
        ({"value": math.nan}, "not_a_number"),
        ({"value": math.inf}, "not_a_number"),
        ({"status": "Stale"}, "measurement_stale"),
        ({"source_ts": "2026-11-28T11:00:00.000Z"}, "measurement_stale"),
        ({"status": "BadSensorFailure"}, "measurement_bad_quality"),
        ({"status": "UncertainLastUsableValue"}, "measurement_bad_quality"),
        ({"value": None, "status": "Missing"}, "measurement_missing"),
        ({"value": "n/a"}, "measurement_bad_quality"),
        ({"unit": "l/h"}, "unit_mismatch"),
    ],
)
def test_unusable_measurement_is_review(change, reason):
    family = FAMILIES.get("hydraulic-gear-pump").model_copy(deep=True)
    family.review.max_measurement_age_s = 60
    defects, measurements = inputs("hydraulic-gear-pump", values={"leak_rate_ml_min": 50.0})
    measurements["leak_rate_ml_min"].update(change)
    decision = decide(family, defects, measurements, now=NOW)
    assert decision.code == V, "an unusable value must not fire its RECYCLE limit"
    assert [r.code for r in decision.reasons] == [reason]


def test_low_confidence_is_review_and_fires_no_rule():
    defects, measurements = inputs("battery-module", {"corrosion": 3})
    defects["corrosion"]["confidence"] = 0.5
    decision = decide(FAMILIES.get("battery-module"), defects, measurements, now=NOW)
    assert decision.code == V
    assert [r.code for r in decision.reasons] == ["low_confidence"]


def test_nan_grade_and_missing_grade_are_review():
    defects, measurements = inputs("hydraulic-gear-pump")
    defects["wear"]["grade"] = math.nan
    del defects["coating_damage"]
    decision = decide(FAMILIES.get("hydraulic-gear-pump"), defects, measurements, now=NOW)
    assert decision.code == V
    assert sorted(r.code for r in decision.reasons) == ["defect_missing", "not_a_number"]


def test_review_beats_remanufacture_and_lists_both():
    defects, measurements = inputs("hydraulic-gear-pump", {"wear": 2})
    del measurements["flow_l_min"]
    decision = decide(FAMILIES.get("hydraulic-gear-pump"), defects, measurements, now=NOW)
    assert decision.code == V
    assert [r.code for r in decision.reasons] == ["wear_grade", "measurement_missing"]


def test_image_problem_is_review_but_measurement_recycle_still_fires():
    defects, measurements = inputs("hydraulic-gear-pump")
    decision = decide(
        FAMILIES.get("hydraulic-gear-pump"), defects, measurements, ["too dark"], now=NOW
    )
    assert decision.code == V and "image: too dark" in [r.text for r in decision.reasons]
    _, measurements = inputs("hydraulic-gear-pump", values={"flow_l_min": 2.0})
    assert decide(FAMILIES.get("hydraulic-gear-pump"), defects, measurements, ["blurred"]).code == X


def test_unknown_family_is_review():
    decision = decide(None, *inputs("battery-module"))
    assert (decision.code, decision.credit) == (V, Credit.UNKNOWN)
    assert [r.code for r in decision.reasons] == ["unknown_family"]


def test_astm_scale_is_mapped_to_severity():
    defects, measurements = inputs("hydraulic-gear-pump")
    defects["corrosion"].update(grade=3, scale="astm-d610")  # ASTM 3: up to 16 % rusted, Ri4
    assert decide(FAMILIES.get("hydraulic-gear-pump"), defects, measurements).code == X


def test_partial_credit_rules():
    defects, measurements = inputs("heat-pump-compressor", {"corrosion": 3})
    decision = decide(FAMILIES.get("heat-pump-compressor"), defects, measurements)
    assert (decision.code, decision.credit) == (M, Credit.PARTIAL)
    decision = decide(FAMILIES.get("battery-module"), *inputs("battery-module", {"wear": 3}))
    assert (decision.code, decision.credit) == (M, Credit.PARTIAL)
    decision = decide(FAMILIES.get("battery-module"), *inputs("battery-module", {"corrosion": 3}))
    assert (decision.code, decision.credit) == (X, Credit.NONE)


def test_rules_version_is_stable_and_changes_with_a_rule():
    first = rules_version(FAMILIES.get("hydraulic-gear-pump"))
    again = rules_version(load_families(REPO / "config/families").get("hydraulic-gear-pump"))
    assert first == again and len(first[1]) == 64 and first[0] == first[1][:12]
    changed = FAMILIES.get("hydraulic-gear-pump").model_copy(deep=True)
    changed.measurements["leak_rate_ml_min"].max = 6.0
    assert rules_version(changed)[1] != first[1]
    figures = FAMILIES.get("hydraulic-gear-pump").model_copy(deep=True)
    figures.impact.sources = ["another study"]
    assert rules_version(figures) == first, "impact figures do not decide"


def test_impact_per_decision():
    family = FAMILIES.get("hydraulic-gear-pump")
    assert impact(family, R).model_dump(exclude={"method"}) == {
        "known": True,
        "material_kept_kg": 4.6,
        "co2e_avoided_kg": 13.4,
    }
    assert impact(family, M).model_dump(exclude={"method"}) == {
        "known": True,
        "material_kept_kg": 4.6,
        "co2e_avoided_kg": 11.2,
    }
    assert impact(family, X).model_dump(exclude={"method"}) == {
        "known": True,
        "material_kept_kg": 0.0,
        "co2e_avoided_kg": 4.5,
    }
    assert impact(family, V).model_dump(exclude={"method"}) == {
        "known": True,
        "material_kept_kg": 0.0,
        "co2e_avoided_kg": 0.0,
    }
    method = impact(family, M).method
    assert method is not None and method.co2e_avoided is not None
    assert (method.co2e_avoided.low_kg, method.co2e_avoided.high_kg) == (7.0, 15.5)
    assert "co2e_new_kg - co2e_reman_kg (14.0 - 2.8)" in method.formula
    assert impact(family, V).method.formula.startswith("nothing is claimed")
    bare = family.model_copy(update={"impact": None})
    assert impact(bare, R).model_dump(exclude={"method"}) == {
        "known": False,
        "material_kept_kg": None,
        "co2e_avoided_kg": None,
    }
    assert impact(None, R).known is False


def test_stale_by_age_needs_now():
    family = FAMILIES.get("hydraulic-gear-pump").model_copy(deep=True)
    family.review.max_measurement_age_s = 5
    defects, measurements = inputs("hydraulic-gear-pump")
    assert decide(family, defects, measurements, now=NOW + timedelta(seconds=1)).code == R
    assert decide(family, defects, measurements, now=NOW + timedelta(seconds=30)).code == V
