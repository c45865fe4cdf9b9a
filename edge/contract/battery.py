"""A remanufactured battery's passport facts (DIN DKE SPEC 99100).

The Battery Pass data model v1.2 fields a remanufacturing station knows or measures: the battery
status after its decision, the state of health from the bench's capacity and internal resistance
against the family's rated values, when they were measured, the date and facility of the
operation and the original battery's passport id. Every other product-condition field is listed
as unknown, never guessed.

`battery_facts` reads them from a core's records (the family's `BatterySpec` travels in each
record); `edge.contract.dbp` places them in the Digital Battery Passport submodels (IDTA 02035)
for `aas.build_environment(..., extra=...)`. State of health (docs/passport.md):

    capacity SoH       = capacity_pct, or capacity_ah / rated_capacity_ah x 100
    resistance SoH     = (R_eol - R) / (R_eol - R_rated) x 100, clamped to 0..100
    state of health    = the lower of the two known ones
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from edge.contract.messages import BatterySpec, InspectionRecord, Measurement

# The Product Condition elements (IDTA 02035-5, DIN DKE SPEC 99100 names) that a station does
# not see, as it does not see the battery's use: listed with no value, marked unknown.
UNKNOWN_FIELDS = (
    "energyThroughput",
    "capacityThroughput",
    "numberOfFullCycles",
    "stateOfCertifiedEnergy",
    "remainingEnergy",
    "negativeEvents",
    "informationOnAccidents",
    "temperatureInformation",
    "remainingPowerCapability",
    "evolutionOfSelfDischarge",
    "currentSelfDischargingRate",
    "remainingRoundTripEnergyEfficiency",
    "stateOfCharge",
)
_GOOD = "Good"


# ---------------------------------------------------------------- the facts


def battery_facts(
    records: Sequence[InspectionRecord], facility: str | None
) -> dict[str, Any] | None:
    """The battery passport facts of a core from its records (time order); None for no battery.

    The latest record decides; a value the bench did not give as Good is None (unknown).
    """
    latest = records[-1]
    spec = latest.battery
    if spec is None:
        return None
    health = state_of_health(spec, latest.measurements)
    return {
        "battery_status": _status(spec, latest.effective_code().name),
        "operation": {
            "date": latest.override.ts if latest.override else latest.ts,
            "facility": facility,
            "station": latest.station,
        },
        "original_passport_id": original_id(spec, latest),
        "measured_at": _measured_at(spec, latest),
        **health,
        "unknown": list(UNKNOWN_FIELDS),
    }


def _measured_at(spec: BatterySpec, record: InspectionRecord) -> str:
    """When the bench measured the capacity (its source time), else the inspection's time."""
    capacity = record.measurements.get(spec.capacity_measurement)
    return (capacity.source_ts if capacity is not None else None) or record.ts


def _status(spec: BatterySpec, decision: str) -> str | None:
    """The battery status the family gives the decision; None (unknown) for REVIEW and NONE."""
    return next((v for k, v in spec.status_by_decision.items() if k == decision), None)


def state_of_health(spec: BatterySpec, measurements: Mapping[str, Measurement]) -> dict[str, Any]:
    """Capacity, resistance and overall state of health in %, with the values they came from."""
    capacity = _good(measurements.get(spec.capacity_measurement))
    unit = measurements[spec.capacity_measurement].unit if capacity is not None else None
    capacity_soh, remaining_ah = _capacity(spec, capacity, unit)
    resistance = (
        _good(measurements.get(spec.resistance_measurement))
        if spec.resistance_measurement
        else None
    )
    resistance_soh = _resistance_soh(spec, resistance)
    known = [v for v in (capacity_soh, resistance_soh) if v is not None]
    return {
        "state_of_health_pct": round(min(known), 3) if known else None,
        "capacity_soh_pct": _round(capacity_soh),
        "remaining_capacity_ah": _round(remaining_ah),
        "rated_capacity_ah": spec.rated_capacity_ah,
        "resistance_soh_pct": _round(resistance_soh),
        "internal_resistance_mohm": resistance,
        "internal_resistance_increase_pct": _round(
            (resistance / spec.rated_resistance_mohm - 1) * 100
            if resistance is not None and spec.rated_resistance_mohm
            else None
        ),
        "rated_resistance_mohm": spec.rated_resistance_mohm,
    }


def _good(measurement: Measurement | None) -> float | None:
    if measurement is None or measurement.status != _GOOD:
        return None
    value = measurement.value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _capacity(
    spec: BatterySpec, value: float | None, unit: str | None
) -> tuple[float | None, float | None]:
    """(capacity SoH %, remaining capacity Ah) from a capacity in % of rated or in Ah."""
    rated = spec.rated_capacity_ah
    if value is None:
        return None, None
    if unit == "%":
        return value, value / 100 * rated if rated else None
    if unit == "Ah" and rated:
        return value / rated * 100, value
    return None, None


def _resistance_soh(spec: BatterySpec, resistance: float | None) -> float | None:
    rated, end = spec.rated_resistance_mohm, spec.end_of_life_resistance_mohm
    if resistance is None or rated is None or end is None:
        return None
    return min(100.0, max(0.0, (end - resistance) / (end - rated) * 100))


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


ORIGINAL_ID_PLACEHOLDERS = ("core_id", "part_number")
_TRUSTED_CORE_ID_SOURCES = ("label", "bench", "trigger")


def original_id_template_problem(template: str) -> str | None:
    """What is wrong with an `original_id_template`, or None when it can make ids."""
    if not template.startswith(("https://", "http://", "urn:")):
        return "an original passport id template is an https:// URI or a urn:"
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        return f"unbalanced braces: {exc}"
    unknown = sorted(names - set(ORIGINAL_ID_PLACEHOLDERS))
    if unknown:
        return f"unknown placeholder(s) {unknown}; known: {list(ORIGINAL_ID_PLACEHOLDERS)}"
    if "core_id" not in names:
        return "the template needs {core_id}, or every battery would link to one passport"
    return None


def original_id(spec: BatterySpec, record: InspectionRecord) -> str | None:
    """The original battery's passport id from where the family says; None when unknown.

    core_id and template rest on the core's id, so a station-generated id (which is the
    station's own, not the battery maker's) gives None; measurement takes a bench string node
    with status Good.
    """
    trusted = record.core_id_source in _TRUSTED_CORE_ID_SOURCES
    if spec.original_id_from == "core_id":
        return record.core_id if trusted else None
    if spec.original_id_from == "measurement" and spec.original_id_measurement:
        return _bench_string(record.measurements.get(spec.original_id_measurement))
    if spec.original_id_from == "template" and spec.original_id_template and trusted:
        return _from_template(spec.original_id_template, record)
    return None


def _bench_string(found: Measurement | None) -> str | None:
    if found is None or found.status != _GOOD or not isinstance(found.value, str):
        return None
    return found.value.strip() or None


def _from_template(template: str, record: InspectionRecord) -> str | None:
    """The template filled with the core's percent-encoded values; None when one is unknown
    (a part number never read) or the template is unusable (the family loader reports it)."""
    if original_id_template_problem(template):
        return None
    values = {"core_id": record.core_id, "part_number": record.part_number}
    names = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    if any(not values[n] for n in names):
        return None
    return template.format(**{k: quote(v, safe="") for k, v in values.items() if v})
