"""A grader's result as the contract's defect grades (shared by the station and its shadow)."""

from __future__ import annotations

from typing import Any

from edge.contract import DefectResult


def defects_of(graded: Any) -> dict[str, DefectResult]:
    """Each defect type's grade of a vision.grader.CoreGrade, clamped to the contract's ranges."""
    if graded is None:
        return {}
    return {
        name: DefectResult(
            area_pct=min(100.0, max(0.0, g.area_pct)),
            grade=g.grade,
            confidence=min(1.0, max(0.0, g.confidence)),
            scale=g.scale,
        )
        for name, g in graded.defects.items()
    }
