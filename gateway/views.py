"""Shared helpers for pages and API: filters from query parameters, rows for display, CSV rows."""

from __future__ import annotations

import json
from datetime import tzinfo
from typing import Any

from fastapi import HTTPException

from edge.contract import Disposition, InspectionRecord, table
from edge.contract.timefmt import UTC, normalize_ts
from gateway.i18n import Message
from gateway.store import InspectionFilter

DECISION_CLASSES = {0: "none", 1: "reuse", 2: "reman", 3: "recycle", 4: "review"}
LABELS = {int(d): d.name for d in Disposition}
CSV_COLUMNS = table.CSV_COLUMNS


def parse_code(value: str | None) -> int | None:
    """A decision filter as a code: accepts 1..4, 0 or a label such as REUSE."""
    if value is None or value == "":
        return None
    if value.isdigit() and int(value) in LABELS:
        return int(value)
    try:
        return int(Disposition[value.upper()])
    except KeyError:
        raise HTTPException(
            status_code=400, detail=Message("unknown decision {value!r}", value=value)
        ) from None


def parse_time(value: str | None, name: str, zone: tzinfo = UTC) -> str | None:
    """A time filter in the store's form (a naive time is in `zone`: UTC for the API, the
    display zone for a page's form); 400 when it is not a time."""
    if not value:
        return None
    try:
        return normalize_ts(value, zone)
    except ValueError:
        raise HTTPException(
            status_code=400, detail=Message("{name}: not a time: {value!r}", name=name, value=value)
        ) from None


def make_filter(
    station: str | None = None,
    since: str | None = None,
    until: str | None = None,
    code: str | None = None,
    family: str | None = None,
    q: str | None = None,
    zone: tzinfo = UTC,
) -> InspectionFilter:
    """History filters from query parameters (empty strings mean no filter; a naive time is
    in `zone`)."""
    return InspectionFilter(
        station=station or None,
        since=parse_time(since, "since", zone),
        until=parse_time(until, "until", zone),
        code=parse_code(code),
        family=family or None,
        q=(q or "").strip() or None,
    )


def record_of(row: dict[str, Any]) -> dict[str, Any]:
    """The stored record of a row as a dict."""
    return json.loads(row["record"])


def display_row(row: dict[str, Any]) -> dict[str, Any]:
    """A store row with its record parsed and the display fields a template needs."""
    rec = record_of(row)
    return {
        **row,
        "rec": rec,
        "label": LABELS.get(row["code"], "?"),
        "css": DECISION_CLASSES.get(row["code"], "none"),
        "rules_label": LABELS.get(row["rules_code"], "?"),
    }


def csv_row(row: dict[str, Any]) -> dict[str, object]:
    """One CSV line of the export, in the shared columns (`edge.contract.table`)."""
    return table.csv_row(InspectionRecord.model_validate_json(row["record"]))


def query_string(flt: InspectionFilter, **extra: Any) -> str:
    """The filter (and extra parameters) as a URL query string."""
    from urllib.parse import urlencode

    params = {
        "station": flt.station,
        "since": flt.since,
        "until": flt.until,
        "code": LABELS.get(flt.code) if flt.code is not None else None,
        "family": flt.family,
        "q": flt.q,
        **extra,
    }
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})
