"""What the bench client hands the station: readings, snapshots and triggers, and the rules that
mark a value unusable (stale, bad status, never received, link down, wrong type).

A reading that is not `usable` carries a `reason` in words; the disposition rules turn it into a
REVIEW reason and never guess a value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from asyncua import ua

from edge.config.station import NodeMapping
from edge.contract import Measurement
from edge.contract.timefmt import UTC, rfc3339, utc_now

MISSING = "Missing"
STALE = "Stale"
GOOD = "Good"

_TYPES: dict[str, tuple[type, ...]] = {
    "float": (float, int),
    "int": (int,),
    "bool": (bool,),
    "string": (str,),
}


@dataclass(frozen=True)
class BenchReading:
    """One mapped value as the snapshot saw it."""

    value: float | int | bool | str | None
    unit: str | None
    status: str  # Good, Bad..., Uncertain..., Stale or Missing
    source_ts: str | None  # UTC RFC 3339, the bench's clock
    usable: bool
    reason: str | None = None  # why it is not usable, in words
    received_ts: str | None = None  # UTC RFC 3339, the node's clock: when this value first came

    def to_measurement(self) -> Measurement:
        """The reading as the inspection record's measurement."""
        return Measurement(
            value=self.value,
            unit=self.unit,
            status=self.status,
            source_ts=self.source_ts,
            received_ts=self.received_ts,
        )


@dataclass(frozen=True)
class BenchSnapshot:
    """The bench's mapped values for one inspection."""

    ts: str
    link: str  # connected, connecting, disconnected or disabled
    readings: dict[str, BenchReading]
    ready: bool | None = None  # result-ready seen (None when not waited for)

    @property
    def usable(self) -> bool:
        """True when every reading is usable."""
        return all(r.usable for r in self.readings.values())

    def problems(self) -> dict[str, str]:
        """Name to reason for every reading that is not usable."""
        return {n: r.reason or r.status for n, r in self.readings.items() if not r.usable}

    def measurements(self) -> dict[str, Measurement]:
        """Readings as the inspection record's measurements."""
        return {n: r.to_measurement() for n, r in self.readings.items()}


@dataclass(frozen=True)
class BenchTrigger:
    """A bench asked for an inspection (a rising edge on its trigger node)."""

    core_id: str | None
    part_number: str | None
    ts: str = field(default_factory=utc_now)


@dataclass(frozen=True)
class Sample:
    """A value as received from the server, with the connection it came on."""

    value: Any
    status: ua.StatusCode
    source_ts: datetime | None
    received: datetime
    generation: int
    # The node's monotonic clock at receipt: ages do not jump when the wall clock is stepped.
    received_mono: float = field(default_factory=time.monotonic)

    @classmethod
    def from_datavalue(cls, dv: ua.DataValue, generation: int) -> Sample:
        """A sample from a DataValue (read or notification)."""
        value = dv.Value.Value if dv.Value is not None else None
        status = dv.StatusCode if dv.StatusCode is not None else ua.StatusCode()
        return cls(
            value,
            status,
            _aware(dv.SourceTimestamp or dv.ServerTimestamp),
            datetime.now(UTC),
            generation,
        )

    @property
    def good(self) -> bool:
        """Good status."""
        return self.status.is_good()

    def first_seen(self, previous: Sample | None) -> Sample:
        """This sample, received when `previous` was if it is the same value with the same
        source timestamp (a poll, or a reconnect's read, of a value that did not change)."""
        if (
            previous is None
            or self.source_ts is None
            or (previous.value, previous.status, previous.source_ts)
            != (self.value, self.status, self.source_ts)
        ):
            return self
        return replace(self, received=previous.received, received_mono=previous.received_mono)


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def judge(
    sample: Sample | None,
    mapping: NodeMapping,
    max_age_s: float,
    live_generation: int | None,
    link_note: str,
    now: datetime | None = None,
    skew_s: float | None = None,
) -> BenchReading:
    """The reading for one mapped value: usable only when received on the live connection,
    Good, younger than max_age_s and of the expected type.

    Age is judged on the node's clock: since the value was first received, and, where the
    bench's clock skew is known, since its source timestamp moved onto the node's clock (so a
    value the bench stamped long ago is stale when first read, whatever the bench's clock says).
    """
    unit = mapping.unit
    if sample is None:
        return BenchReading(None, unit, MISSING, None, False, "never received from the bench")
    reading = _judge(sample, mapping, max_age_s, live_generation, link_note, now, skew_s)
    return replace(reading, received_ts=rfc3339(sample.received))


def age_of(sample: Sample, now: datetime | None, skew_s: float | None) -> float:
    """Seconds since the value was current, on the node's clock (monotonic since receipt,
    unless `now` is given)."""
    if now is None:
        age_s = time.monotonic() - sample.received_mono
        now = datetime.now(UTC)
    else:
        age_s = (now - sample.received).total_seconds()
    if sample.source_ts is not None and skew_s is not None:
        age_s = max(age_s, (now - sample.source_ts).total_seconds() - skew_s)
    return age_s


def _judge(
    sample: Sample,
    mapping: NodeMapping,
    max_age_s: float,
    live_generation: int | None,
    link_note: str,
    now: datetime | None,
    skew_s: float | None,
) -> BenchReading:
    unit = mapping.unit
    ts = rfc3339(sample.source_ts) if sample.source_ts else None
    if sample.generation != live_generation:
        return BenchReading(None, unit, STALE, ts, False, f"no current value: {link_note}")
    if not sample.good:
        value = sample.value if sample.status.is_uncertain() else None
        return BenchReading(
            value, unit, sample.status.name, ts, False, f"bench status {sample.status.name}"
        )
    age_s = age_of(sample, now, skew_s)
    if age_s > max_age_s:
        return BenchReading(
            sample.value,
            unit,
            STALE,
            ts,
            False,
            f"value is {age_s:.1f} s old, limit {max_age_s:g} s",
        )
    if not _type_ok(sample.value, mapping.type):
        return BenchReading(
            None,
            unit,
            "BadTypeMismatch",
            ts,
            False,
            f"expected {mapping.type}, got {type(sample.value).__name__}",
        )
    return BenchReading(sample.value, unit, GOOD, ts, True)


def _type_ok(value: Any, expected: str) -> bool:
    if isinstance(value, bool) and expected != "bool":
        return False
    return isinstance(value, _TYPES[expected])


def unknown_reading(mapping: NodeMapping, reason: str) -> BenchReading:
    """The reading for a node the server does not have."""
    return BenchReading(None, mapping.unit, "BadNodeIdUnknown", None, False, reason)
