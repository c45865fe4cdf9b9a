"""A remanufactured battery's passport facts (DIN DKE SPEC 99100) and their AAS submodel.

The Battery Pass data model v1.2 fields a remanufacturing station knows or measures: the battery
status after its decision, the state of health from the bench's capacity and internal resistance
against the family's rated values, the date and facility of the operation and the original
battery's passport id. Every other field of the model is listed as unknown, never guessed.

`battery_facts` reads them from a core's records (the family's `BatterySpec` travels in each
record); `battery_submodels` writes them as the IDTA 02035-5 Product Condition submodel for
`aas.build_environment(..., extra=...)`. State of health (docs/passport.md):

    capacity SoH       = capacity_pct, or capacity_ah / rated_capacity_ah x 100
    resistance SoH     = (R_eol - R) / (R_eol - R_rated) x 100, clamped to 0..100
    state of health    = the lower of the two known ones
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any
from urllib.parse import quote

from basyx.aas import model

from edge.contract.messages import BatterySpec, InspectionRecord, Measurement

PRODUCT_CONDITION_SEMANTIC_ID = (
    "urn:samm:io.admin-shell.idta.batterypass.product_condition:1.0.0#ProductCondition"
)
_PERFORMANCE = "urn:samm:io.BatteryPass.Performance:1.2.0#"
_OURS = "urn:reman-edge:concept:battery:"
UNKNOWN_QUALIFIER = "urn:reman-edge:qualifier:unknown:1"

# Battery Pass v1.2 fields the station does not measure: listed with no value, marked unknown.
UNKNOWN_FIELDS = (
    "numberOfFullCycles",
    "energyThroughput",
    "capacityThroughput",
    "stateOfCertifiedEnergy",
    "remainingEnergy",
    "negativeEvents",
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
        **health,
        "unknown": list(UNKNOWN_FIELDS),
    }


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


# ---------------------------------------------------------------- the AAS submodel


def battery_submodels(passport: Mapping[str, Any], asset_id: str) -> list[model.Submodel]:
    """The battery passport's Product Condition submodel of a core (`asset_id` its persistent
    id); none when the passport has no battery facts (a pump)."""
    facts = passport.get("battery")
    if not facts:
        return []
    sep = ":" if asset_id.startswith("urn:") else "/"
    name = "BatteryProductCondition"
    return [
        model.Submodel(
            f"{asset_id}{sep}sm{sep}{name}",
            submodel_element=_elements(facts),
            id_short=name,
            semantic_id=_ref(PRODUCT_CONDITION_SEMANTIC_ID),
            administration=model.AdministrativeInformation(version="1", revision="0"),
        )
    ]


_STRINGS = (
    ("batteryStatus", "battery_status", _OURS + "battery-status:1"),
    ("originalBatteryPassportId", "original_passport_id", _OURS + "original-passport-id:1"),
)
_NUMBERS = (
    ("stateOfHealth", "state_of_health_pct", _OURS + "state-of-health-pct:1"),
    ("remainingCapacity", "remaining_capacity_ah", _PERFORMANCE + "remainingCapacity"),
    ("capacityStateOfHealth", "capacity_soh_pct", _OURS + "capacity-soh-pct:1"),
    ("internalResistance", "internal_resistance_mohm", _OURS + "internal-resistance-mohm:1"),
    (
        "internalResistanceIncrease",
        "internal_resistance_increase_pct",
        _OURS + "internal-resistance-increase-pct:1",
    ),
    ("resistanceStateOfHealth", "resistance_soh_pct", _OURS + "resistance-soh-pct:1"),
    ("ratedCapacity", "rated_capacity_ah", _OURS + "rated-capacity-ah:1"),
    ("ratedInternalResistance", "rated_resistance_mohm", _OURS + "rated-resistance-mohm:1"),
)


def _elements(facts: Mapping[str, Any]) -> list[model.SubmodelElement]:
    """The facts as properties: a None value is marked unknown; a key the caller's access tier
    withholds (absent) is left out, since it is known, only not shown."""
    operation = facts.get("operation") or {}
    return [
        *(_string(n, facts[k], sid) for n, k, sid in _STRINGS if k in facts),
        *(
            _string(n, operation[k], _OURS + sid)
            for n, k, sid in (
                ("operationDate", "date", "operation-date:1"),
                ("operationFacility", "facility", "operation-facility:1"),
            )
            if k in operation
        ),
        *(_number(n, facts[k], sid) for n, k, sid in _NUMBERS if k in facts),
        *(_unknown_field(f) for f in facts.get("unknown", ())),
    ]


def _ref(value: str) -> model.ExternalReference:
    return model.ExternalReference((model.Key(model.KeyTypes.GLOBAL_REFERENCE, value),))


def _unknown() -> model.Qualifier:
    """The mark of a value the station does not know: the property has no value."""
    return model.Qualifier(
        "unknown", model.datatypes.Boolean, value=True, semantic_id=_ref(UNKNOWN_QUALIFIER)
    )


def _string(name: str, value: str | None, semantic_id: str) -> model.Property:
    return model.Property(
        name,
        model.datatypes.String,
        value=value,
        semantic_id=_ref(semantic_id),
        qualifier=() if value is not None else (_unknown(),),
    )


def _number(name: str, value: float | None, semantic_id: str) -> model.Property:
    return model.Property(
        name,
        model.datatypes.Decimal,
        value=None if value is None else Decimal(repr(value)),
        semantic_id=_ref(semantic_id),
        qualifier=() if value is not None else (_unknown(),),
    )


def _unknown_field(name: str) -> model.Property:
    return _string(name, None, _PERFORMANCE + name)
