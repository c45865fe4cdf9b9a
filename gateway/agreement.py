"""How far a shadow (candidate) model agrees with the active one, and how both do against the
engineers' labels: the figures of the models page, from the stations' shadow reports.

    labels_by_inspection(label_events)   inspection id -> CoreLabel (the labels in force)
    candidates(reports, labels)          one CandidateFigures per candidate version, in the
                                         order they first reported

A defect type is "found" by a model when its grade is above 0 (grade 0 is "none" on every
ISO 4628 table); a core is "defect-free" for a model when no defect type is graded above 0.
A core counts as labelled good when every view labelled is labelled good, and as carrying a
defect type when any labelled view's mask marks it. The latest label of a view is in force.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from edge.contract import DefectResult, Disposition, ShadowReport

DECISION_CODES = (
    Disposition.REUSE,
    Disposition.REMANUFACTURE,
    Disposition.RECYCLE,
    Disposition.REVIEW,
)
"""Rows and columns of the decision table; NONE (0) is added only where a report has it."""


@dataclass(frozen=True)
class CoreLabel:
    """What the engineers' labels in force say of one inspection."""

    good: bool
    defect_types: frozenset[str]


@dataclass
class DefectAgreement:
    """Both models' grades of one defect type, on the cores both graded it."""

    defect: str
    cores: int = 0
    same: int = 0
    difference_sum: int = 0  # candidate grade minus active grade, summed
    confusion: Counter[tuple[int, int]] = field(default_factory=Counter)  # (active, candidate)

    @property
    def same_share(self) -> float | None:
        """Share of cores both models gave the same grade."""
        return self.same / self.cores if self.cores else None

    @property
    def mean_difference(self) -> float | None:
        """Mean of the candidate's grade minus the active model's (positive: candidate harsher)."""
        return self.difference_sum / self.cores if self.cores else None

    @property
    def grades(self) -> list[int]:
        """Every grade either model gave, ascending (the confusion table's rows and columns)."""
        return sorted({g for pair in self.confusion for g in pair})


@dataclass
class TypeFigures:
    """On labelled cores: how often each model found one defect type."""

    defect: str
    labelled: int = 0  # cores whose labels mark this type
    found_active: int = 0
    found_candidate: int = 0
    unmarked: int = 0  # labelled cores whose labels do not mark it
    false_active: int = 0  # ... on which the model found it all the same
    false_candidate: int = 0


@dataclass
class LabelFigures:
    """Both models against the labels, on the cores the candidate graded."""

    cores: int = 0  # labelled cores among the reports
    good: int = 0
    clean_active: int = 0  # good cores the active model graded defect-free
    clean_candidate: int = 0
    types: dict[str, TypeFigures] = field(default_factory=dict)


@dataclass
class CandidateFigures:
    """Everything the models page shows about one candidate version."""

    candidate: str
    actives: list[str] = field(default_factory=list)  # active versions it ran beside
    reports: int = 0
    first_ts: str | None = None
    last_ts: str | None = None
    same_decision: int = 0
    decisions: Counter[tuple[int, int]] = field(default_factory=Counter)  # (active, candidate)
    defects: dict[str, DefectAgreement] = field(default_factory=dict)
    labels: LabelFigures = field(default_factory=LabelFigures)

    @property
    def same_decision_share(self) -> float | None:
        """Share of cores on which both models' grades led to the same decision."""
        return self.same_decision / self.reports if self.reports else None

    @property
    def decision_codes(self) -> list[int]:
        """The decision table's rows and columns: REUSE..REVIEW, and NONE where it occurs."""
        codes = [int(c) for c in DECISION_CODES]
        if any(0 in pair for pair in self.decisions):
            codes.insert(0, 0)
        return codes


def labels_by_inspection(label_events: Iterable[dict[str, Any]]) -> dict[str, CoreLabel]:
    """The labels in force per inspection id, from `label_recorded` events oldest first (each a
    dict with `detail`: inspection_id, view, good, masks)."""
    views: dict[tuple[str, int], tuple[bool, frozenset[str]]] = {}
    for event in label_events:
        detail = event.get("detail") or {}
        inspection_id, view = detail.get("inspection_id"), detail.get("view", 1)
        if not isinstance(inspection_id, str) or not isinstance(view, int):
            continue  # not a label this page can read; the events page shows it
        masks = detail.get("masks") or []
        views[(inspection_id, view)] = (
            bool(detail.get("good")),
            frozenset(m for m in masks if isinstance(m, str)),
        )
    per_core: dict[str, list[tuple[bool, frozenset[str]]]] = {}
    for (inspection_id, _), label in views.items():
        per_core.setdefault(inspection_id, []).append(label)
    return {
        inspection_id: CoreLabel(
            good=all(good for good, _ in labels),
            defect_types=frozenset().union(*(types for _, types in labels)),
        )
        for inspection_id, labels in per_core.items()
    }


def candidates(
    reports: Iterable[ShadowReport], labels: dict[str, CoreLabel]
) -> list[CandidateFigures]:
    """The figures of every candidate in `reports` (oldest first), against `labels`."""
    figures: dict[str, CandidateFigures] = {}
    labelled: dict[str, list[tuple[ShadowReport, CoreLabel]]] = {}
    for report in reports:
        one = figures.get(report.candidate)
        if one is None:
            one = figures[report.candidate] = CandidateFigures(report.candidate)
        _add(one, report)
        label = labels.get(report.id)
        if label is not None:
            labelled.setdefault(report.candidate, []).append((report, label))
    for candidate, pairs in labelled.items():
        figures[candidate].labels = label_figures(pairs)
    return list(figures.values())


def _add(figures: CandidateFigures, report: ShadowReport) -> None:
    figures.reports += 1
    figures.first_ts = figures.first_ts or report.ts
    figures.last_ts = report.ts
    if report.active is not None and report.active not in figures.actives:
        figures.actives.append(report.active)
    pair = (int(report.active_code), int(report.code))
    figures.decisions[pair] += 1
    figures.same_decision += pair[0] == pair[1]
    for defect in sorted(set(report.defects) & set(report.active_defects)):
        _add_grades(figures.defects, defect, report.active_defects[defect], report.defects[defect])


def _add_grades(
    defects: dict[str, DefectAgreement], defect: str, active: DefectResult, candidate: DefectResult
) -> None:
    one = defects.setdefault(defect, DefectAgreement(defect))
    one.cores += 1
    one.same += active.grade == candidate.grade
    one.difference_sum += candidate.grade - active.grade
    one.confusion[(active.grade, candidate.grade)] += 1


def _found(defects: dict[str, DefectResult], defect: str) -> bool:
    graded = defects.get(defect)
    return graded is not None and graded.grade > 0


def _defect_free(defects: dict[str, DefectResult]) -> bool:
    return all(d.grade == 0 for d in defects.values())


def label_figures(pairs: list[tuple[ShadowReport, CoreLabel]]) -> LabelFigures:
    """Both models against the labels, over (report, its core's label) pairs."""
    figures = LabelFigures()
    masked = sorted(frozenset().union(*(label.defect_types for _, label in pairs)))
    figures.types = {defect: TypeFigures(defect) for defect in masked}
    for report, label in pairs:
        _add_label(figures, report, label)
    return figures


def _add_label(figures: LabelFigures, report: ShadowReport, label: CoreLabel) -> None:
    figures.cores += 1
    if label.good:
        figures.good += 1
        figures.clean_active += _defect_free(report.active_defects)
        figures.clean_candidate += _defect_free(report.defects)
    for defect, one in figures.types.items():
        if defect in label.defect_types:
            one.labelled += 1
            one.found_active += _found(report.active_defects, defect)
            one.found_candidate += _found(report.defects, defect)
        else:
            one.unmarked += 1
            one.false_active += _found(report.active_defects, defect)
            one.false_candidate += _found(report.defects, defect)
