"""An image unlike the model's training images is REVIEW with its own reason, whatever its grades."""

from __future__ import annotations

from edge.contract import Disposition
from edge.decision.rules import OUT_OF_DISTRIBUTION, decide, inputs_of, redecide
from tests.decision.test_rules import FAMILIES, NOW, inputs
from tests.support.journal_records import make_record

PROBLEM = f"{OUT_OF_DISTRIBUTION}view 1: distance 3.10 from the training images (threshold 4.72)"


def test_an_out_of_distribution_image_is_review_with_its_reason():
    family = FAMILIES.get("hydraulic-gear-pump")
    defects, measurements = inputs("hydraulic-gear-pump")
    decision = decide(family, defects, measurements, [PROBLEM], now=NOW)
    assert decision.code == Disposition.REVIEW
    reasons = {r.code: r.text for r in decision.reasons}
    assert reasons["out_of_distribution"] == f"image: {PROBLEM}"
    assert "image_quality" not in [r.code for r in decision.reasons if r.rule is None]


def test_a_grade_that_would_recycle_is_not_trusted_on_such_an_image():
    family = FAMILIES.get("hydraulic-gear-pump")
    defects, measurements = inputs("hydraulic-gear-pump", {"corrosion": 5})
    decision = decide(family, defects, measurements, [PROBLEM], now=NOW)
    assert decision.code == Disposition.REVIEW
    assert "corrosion_grade" not in [r.code for r in decision.reasons]


def test_a_replay_keeps_the_out_of_distribution_review():
    family = FAMILIES.get("hydraulic-gear-pump")
    record = make_record(1, code=Disposition.REVIEW)
    decision = decide(family, dict(record.defects), dict(record.measurements), [PROBLEM])
    record = record.model_copy(update={"decision": decision})
    assert PROBLEM in inputs_of(record)[2]
    again = redecide(FAMILIES, record)
    assert again.code == Disposition.REVIEW
    assert "out_of_distribution" in [r.code for r in again.reasons]
