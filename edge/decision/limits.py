"""The limits a decision was held against, as the record carries them for the operator.

The rules stay in `edge.decision.rules`; this module only copies the family's grade limits and
measurement ranges into the contract's `Limits` and names the ones whose outcome the decision
took, by the `rule` of each reason (`grades.wear.remanufacture_at`, `measurements.flow_l_min.min`,
`rules[0]`).
"""

from __future__ import annotations

import re

from edge.contract import (
    DecidingLimit,
    DecisionInfo,
    Disposition,
    GradeLimits,
    Limits,
    MeasurementLimits,
)
from edge.decision.families import FamilyConfig

_FAMILY_RULE = re.compile(r"^rules\[(\d+)\]$")


def limits_of(family: FamilyConfig, decision: DecisionInfo) -> Limits:
    """The family's limits, with the deciding ones: those whose outcome is the decision's code."""
    grades = {
        name: GradeLimits(remanufacture_at=g.remanufacture_at, recycle_at=g.recycle_at)
        for name, g in family.grades.items()
    }
    measurements = {
        name: MeasurementLimits.model_validate(spec.model_dump(exclude={"required"}))
        for name, spec in family.measurements.items()
    }
    deciding: list[DecidingLimit] = []
    for reason in decision.reasons:
        limit = _limit(family, reason.rule)
        if limit is not None and limit[0] == decision.code:
            if all(d.rule != limit[1].rule for d in deciding):
                deciding.append(limit[1])
    return Limits(grades=grades, measurements=measurements, deciding=deciding)


def _limit(family: FamilyConfig, rule: str | None) -> tuple[Disposition, DecidingLimit] | None:
    """The outcome a rule gives and what it reads, or None for a rule that is no limit."""
    if rule is None:
        return None
    parts = rule.split(".")
    if len(parts) == 3 and parts[0] == "grades" and parts[1] in family.grades:
        code = Disposition.RECYCLE if parts[2] == "recycle_at" else Disposition.REMANUFACTURE
        return code, DecidingLimit(rule=rule, defects=[parts[1]])
    if len(parts) == 3 and parts[0] == "measurements" and parts[1] in family.measurements:
        spec = family.measurements[parts[1]]
        recycle = parts[2].startswith("recycle_")
        code = Disposition.RECYCLE if recycle else Disposition[spec.out_of_spec]
        return code, DecidingLimit(rule=rule, measurements=[parts[1]])
    found = _FAMILY_RULE.match(rule)
    if found and int(found.group(1)) < len(family.rules):
        fired = family.rules[int(found.group(1))]
        return Disposition[fired.outcome], DecidingLimit(
            rule=rule,
            defects=[c.defect for c in fired.when if c.defect],
            measurements=[c.measurement for c in fired.when if c.measurement],
        )
    return None
