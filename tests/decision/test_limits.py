"""The limits a record carries: the family's own, and the ones whose outcome the decision took."""

from __future__ import annotations

import pytest

from edge.contract import Disposition, InspectionRecord
from edge.decision.families import load_families
from edge.decision.limits import limits_of
from edge.decision.rules import decide
from tests.conftest import REPO

FAMILIES = load_families(REPO / "config/families")
PUMP = FAMILIES.get("hydraulic-gear-pump")


def _grades(**grades: int) -> dict:
    base = {"wear": 0, "corrosion": 0, "coating_damage": 0, **grades}
    return {k: {"grade": g, "confidence": 0.9, "scale": "iso4628-5"} for k, g in base.items()}


def _bench(leak: float = 3.0, flow: float = 24.0, **more: dict) -> dict:
    return {
        "leak_rate_ml_min": {"value": leak, "unit": "ml/min"},
        "flow_l_min": {"value": flow, "unit": "l/min"},
        **more,
    }


@pytest.mark.parametrize(
    "grades,bench,code,deciding",
    [
        ({}, {}, Disposition.REUSE, []),
        (
            {"wear": 2},
            {},
            Disposition.REMANUFACTURE,
            [("grades.wear.remanufacture_at", ["wear"], [])],
        ),
        (
            {},
            {"flow": 15.0},
            Disposition.REMANUFACTURE,
            [("measurements.flow_l_min.min", [], ["flow_l_min"])],
        ),
        # the wear limit says REMANUFACTURE, the leak's recycle limit RECYCLE: only RECYCLE decided
        (
            {"wear": 2},
            {"leak": 50.0},
            Disposition.RECYCLE,
            [("measurements.leak_rate_ml_min.recycle_above", [], ["leak_rate_ml_min"])],
        ),
        (
            {"wear": 4},
            {"leak": 20.0},
            Disposition.RECYCLE,
            [("rules[0]", ["wear"], ["leak_rate_ml_min"])],
        ),
    ],
)
def test_the_deciding_limits_are_those_whose_outcome_the_decision_took(
    grades, bench, code, deciding
):
    decision = decide(PUMP, _grades(**grades), _bench(**bench))
    limits = limits_of(PUMP, decision)
    assert decision.code == code
    assert [(d.rule, d.defects, d.measurements) for d in limits.deciding] == deciding


def test_only_the_family_measurements_with_their_range_and_unit():
    bench = _bench(starter_current_a={"value": 120.0, "unit": "A"})
    limits = limits_of(PUMP, decide(PUMP, _grades(), bench))
    assert list(limits.measurements) == ["leak_rate_ml_min", "flow_l_min"]
    flow = limits.measurements["flow_l_min"]
    assert (flow.unit, flow.min, flow.max, flow.recycle_below) == ("l/min", 20.0, None, 8.0)
    assert limits.grades["wear"].model_dump() == {"remanufacture_at": 2, "recycle_at": 5}


def test_missing_inputs_make_review_that_no_limit_decided():
    decision = decide(PUMP, _grades(), {"flow_l_min": {"value": 24.0, "unit": "l/min"}})
    assert decision.code == Disposition.REVIEW
    assert limits_of(PUMP, decision).deciding == []


def test_a_review_rule_of_the_family_decides():
    compressor = FAMILIES.get("heat-pump-compressor")
    bench = {
        "current_a": {"value": 9.8, "unit": "A"},
        "discharge_pressure_bar": {"value": 24.0, "unit": "bar"},
        "insulation_resistance_mohm": {"value": 5.0, "unit": "MOhm"},
    }
    decision = decide(compressor, _grades(corrosion=2), bench)
    deciding = limits_of(compressor, decision).deciding
    assert decision.code == Disposition.REVIEW
    assert [(d.rule, d.defects, d.measurements) for d in deciding] == [
        ("rules[0]", ["corrosion"], ["insulation_resistance_mohm"])
    ]


def test_limits_travel_in_the_record():
    decision = decide(PUMP, _grades(wear=2), _bench())
    record = InspectionRecord(
        id="x1",
        seq=1,
        ts="2026-11-28T08:00:00Z",
        station="st-1",
        core_id="HGP-1",
        decision=decision,
        limits=limits_of(PUMP, decision),
    )
    assert InspectionRecord.model_validate_json(record.to_json()) == record
