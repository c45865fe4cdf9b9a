"""What a shadow model made of each inspection, and how often it agreed with the active model.

The station's shadow runner (edge.station.shadow) grades every inspection it can with the
candidate model and decides with the same family rules, deciding nothing itself; each outcome
is a row here beside the inspection.

    record_shadow(journal, inspection_id, version, sha256, defects, decision)
    shadow_rows(journal, version)      -> [ShadowRow]
    shadow_count(journal, version)     -> how many inspections it graded
    agreement(journal, version)        -> {"cores", "decisions": {active: {shadow: n}},
                                           "decision_agreement", "grades": {type: share equal}}
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass

from edge.contract import DecisionInfo, DefectResult
from edge.contract.timefmt import utc_now
from edge.errors import JournalError
from edge.journal.journal import Journal


@dataclass(frozen=True)
class ShadowRow:
    """One inspection as the shadow model saw it."""

    inspection_id: str
    version: str
    sha256: str
    defects: dict[str, dict]
    code: int
    label: str
    ts: str


def record_shadow(
    journal: Journal,
    inspection_id: str,
    version: str,
    sha256: str,
    defects: dict[str, DefectResult],
    decision: DecisionInfo,
) -> None:
    """Keep the shadow model's grades and the decision it would have made."""
    grades = {name: d.model_dump() for name, d in defects.items()}
    try:
        with journal.db.conn as conn:
            conn.execute(
                "INSERT INTO shadow (inspection_id, version, sha256, defects, code, label, ts)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (inspection_id, version, sha256, json.dumps(grades), int(decision.code),
                 decision.label, utc_now()),
            )  # fmt: skip
    except sqlite3.Error as exc:
        raise JournalError(f"journal: shadow result of {inspection_id} not kept: {exc}") from exc


def shadow_rows(journal: Journal, version: str) -> list[ShadowRow]:
    """Every inspection the shadow model `version` saw, oldest first."""
    try:
        rows = journal.db.conn.execute(
            "SELECT inspection_id, version, sha256, defects, code, label, ts FROM shadow"
            " WHERE version = ? ORDER BY id",
            (version,),
        ).fetchall()
    except sqlite3.Error as exc:
        raise JournalError(f"journal: cannot read shadow results: {exc}") from exc
    return [ShadowRow(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6]) for r in rows]


def shadow_count(journal: Journal, version: str) -> int:
    """How many inspections the shadow model `version` graded (over every run of the node)."""
    try:
        row = journal.db.conn.execute(
            "SELECT count(*) FROM shadow WHERE version = ?", (version,)
        ).fetchone()
    except sqlite3.Error as exc:
        raise JournalError(f"journal: cannot count shadow results: {exc}") from exc
    return int(row[0])


def agreement(journal: Journal, version: str) -> dict:
    """How the shadow model `version` compares with the model that decided, core by core."""
    decisions: dict[str, dict[str, int]] = {}
    same_grade: dict[str, list[bool]] = {}
    agreed = 0
    rows = shadow_rows(journal, version)
    for row in rows:
        record = journal.get(row.inspection_id)
        if record is None:
            continue
        active = record.decision.label
        decisions.setdefault(active, {}).setdefault(row.label, 0)
        decisions[active][row.label] += 1
        agreed += active == row.label
        for name, defect in record.defects.items():
            shadow = row.defects.get(name)
            same_grade.setdefault(name, []).append(
                shadow is not None and shadow["grade"] == defect.grade
            )
    return {
        "version": version,
        "cores": len(rows),
        "decisions": decisions,
        "decision_agreement": round(agreed / len(rows), 4) if rows else None,
        "grades": {k: round(sum(v) / len(v), 4) for k, v in sorted(same_grade.items())},
    }
