"""The JSON API's response and request bodies, so its OpenAPI document says what each route gives.

Records are the contract's `InspectionRecord` (edge.contract), as the stations publish them;
stats and results the contract's `Stats` and `Result`. The rest is the store's rows.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edge.contract import InspectionRecord, Result, Stats


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InspectionPage(_Out):
    """A page of inspections, newest first."""

    items: list[InspectionRecord]
    next_cursor: str | None = Field(
        description="Pass as `cursor` for the next page; null at the end."
    )
    count: int = Field(description="Inspections matching the filters, up to 10,000.")
    count_capped: bool = Field(description="True when `count` stopped at 10,000.")


class AuditEntry(_Out):
    """One entry of an inspection's audit trail (confirmations, overrides, labels)."""

    seq: int
    station: str
    inspection_id: str
    ts: str
    user: str = Field(description="The account, or `token:<name>` for an API token.")
    action: str = Field(description="confirmed, override_requested, override_applied, …")
    code: int | None = None
    label: str | None = None
    reason: str | None = None
    credit: int | None = None


class InspectionDetail(_Out):
    """One inspection: its record, audit trail and snapshot file names."""

    record: InspectionRecord
    audit: list[AuditEntry]
    snapshots: list[str]


class StationState(_Out):
    """A station as the gateway last heard from it."""

    station: str
    available: str | None = Field(description="online or offline (the node's retained state).")
    available_ts: str | None
    last_seen: str | None
    stats: Stats | None
    stats_ts: str | None
    result: Result | None
    result_ts: str | None
    clock_offset_s: float | None = Field(
        default=None,
        description="Seconds the station's clock is behind the gateway's (negative: ahead), "
        "from its latest stats sent with nothing queued; null until one arrives.",
    )


class EventRow(_Out):
    """A station's event."""

    id: str
    station: str
    ts: str
    level: str
    code: str
    message: str
    detail: str | None = Field(description="The event's fields as a JSON text.")


class EventPage(_Out):
    items: list[EventRow]
    next_cursor: str | None


class Circularity(_Out):
    """Cores by disposition, rates of the decided cores, material kept and CO2e avoided."""

    station: str | None
    since: str | None
    until: str | None
    cores: int
    by_disposition: dict[str, int]
    reuse_rate: float | None
    remanufacture_rate: float | None
    decided_cores: int
    review_cores: int
    review_share: float | None
    impact_known_cores: int
    impact_unknown_cores: int
    material_kept_kg: float | None
    co2e_avoided_kg: float | None
    series: list[dict[str, Any]] = Field(description="Per day: cores, material and CO2e.")


class Trends(_Out):
    decisions_per_hour: list[dict[str, Any]] = Field(
        description="[{t: 'YYYY-MM-DDTHH', REUSE: n, REMANUFACTURE: n, RECYCLE: n, REVIEW: n}]"
    )
    grades: dict[str, list[dict[str, Any]]] = Field(
        description="Per defect type: [{t: hour, grades: {grade: count}}]"
    )


class OverrideRequest(BaseModel):
    """An override from a machine client: the new decision and why."""

    model_config = ConfigDict(extra="forbid")

    code: int = Field(
        strict=True, ge=1, le=4, description="1 REUSE, 2 REMANUFACTURE, 3 RECYCLE, 4 REVIEW."
    )
    reason: str = Field(min_length=1, max_length=500, description="Why; kept in the audit trail.")


class OverrideSent(_Out):
    """The override went to the station (`override/set`); the node journals and republishes."""

    sent: bool
    station: str
    id: str
    command_id: str


class Confirmed(_Out):
    """The confirmation is in the audit trail."""

    confirmed: bool
    station: str
    id: str
