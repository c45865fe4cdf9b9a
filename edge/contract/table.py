"""The flat form of an inspection record: one CSV row per inspection, the same from every export.

`reman journal export --csv` (from the node's journal) and the dashboard's History export (from
the gateway's store) both write CSV_COLUMNS with `csv_row`, so a quality engineer's spreadsheet
reads either.

Text cells are what people and stations typed (an override's reason, a core id, a family), and a
spreadsheet runs a cell that begins with `=`, `+`, `-` or `@` as a formula (CSV injection). So a
text cell that begins with one of those, a tab or a carriage return gets a leading `'`, as OWASP
advises: the spreadsheet shows the text and runs nothing. Number columns (NUMBER_COLUMNS) are
written by us from numbers and stay numbers, a negative one included.
"""

from __future__ import annotations

from edge.contract.messages import InspectionRecord

CSV_COLUMNS = (
    "id",
    "seq",
    "ts",
    "station",
    "core_id",
    "family",
    "part_number",
    "code",
    "label",
    "credit",
    "effective_code",
    "effective_label",
    "effective_credit",
    "override_user",
    "override_reason",
    "override_ts",
    "reasons",
    "impact_known",
    "material_kept_kg",
    "co2e_avoided_kg",
    "rules_version",
    "model_name",
    "model_version",
)
"""Columns of every CSV export of records: `reman journal export --csv` and the dashboard's."""

NUMBER_COLUMNS = frozenset(
    {
        "seq",
        "code",
        "credit",
        "effective_code",
        "effective_credit",
        "material_kept_kg",
        "co2e_avoided_kg",
    }
)
"""Columns that hold a number (or are empty); every other column is text."""

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""What a text cell may not begin with unquoted: a spreadsheet would take it for a formula."""


def spreadsheet_text(text: str) -> str:
    """`text` as a cell a spreadsheet shows and never runs: a leading `'` before FORMULA_STARTS."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_row(record: InspectionRecord) -> dict[str, object]:
    """One CSV row of a record; impact columns are empty when unknown (never a made-up zero).

    Text cells are safe to open in a spreadsheet (`spreadsheet_text`); numbers stay numbers.
    """
    return {
        column: value if column in NUMBER_COLUMNS else spreadsheet_text(str(value))
        for column, value in _cells(record).items()
    }


def _cells(record: InspectionRecord) -> dict[str, object]:
    override, impact = record.override, record.impact
    known_impact = impact if impact is not None and impact.known else None
    known = known_impact is not None
    return {
        "id": record.id,
        "seq": record.seq,
        "ts": record.ts,
        "station": record.station,
        "core_id": record.core_id,
        "family": record.family or "",
        "part_number": record.part_number or "",
        "code": int(record.decision.code),
        "label": record.decision.label,
        "credit": int(record.decision.credit),
        "effective_code": int(record.effective_code()),
        "effective_label": record.effective_code().name,
        "effective_credit": int(record.effective_credit()),
        "override_user": override.user if override else "",
        "override_reason": override.reason if override else "",
        "override_ts": override.ts if override else "",
        "reasons": "; ".join(r.text for r in record.decision.reasons),
        "impact_known": "yes" if known else "no",
        "material_kept_kg": known_impact.material_kept_kg if known_impact is not None else "",
        "co2e_avoided_kg": known_impact.co2e_avoided_kg if known_impact is not None else "",
        "rules_version": record.rules.version if record.rules else "",
        "model_name": record.model.name if record.model else "",
        "model_version": record.model.version if record.model else "",
    }
