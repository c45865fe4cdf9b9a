"""A core's product-passport record, built from its inspection records.

Part of the published contract: it imports nothing from `edge` but `edge.contract`, so the gateway
serves the same passport at `/api/cores/{core_id}/passport` that `reman passport` writes.

`build_passport` follows the data categories of the EU digital product passport (ESPR): unique
identifier, operator and facility, dates, status, predecessor; then the core's circularity
figures and every inspection in time order (grades, measurements, the rules' decision, the
override in force and earlier ones with who and why, model and rules versions, the images with
their sha256 where the caller knows them), and for a battery family its battery passport facts
(`battery`, from `edge.contract.battery`; the predecessor is then the original battery's passport
id where the family says where it comes from). `edge.contract.aas` writes the same values as an Asset
Administration Shell V3 environment (JSON and AASX).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from edge.contract import Disposition, InspectionRecord, OverrideInfo
from edge.contract.battery import battery_facts
from edge.contract.errors import NoInspections

PASSPORT_SCHEMA = "reman-edge/passport/1"

R_LADDER = {
    Disposition.REUSE: "reuse",
    Disposition.REMANUFACTURE: "remanufacture",
    Disposition.RECYCLE: "recycle",
    Disposition.REVIEW: "review",
    Disposition.NONE: "unknown",
}


# ---------------------------------------------------------------- the passport


def build_passport(
    records: Sequence[InspectionRecord],
    core_id: str | None = None,
    *,
    operator: str | None = None,
    facility: str | None = None,
    overrides: Mapping[str, Sequence[OverrideInfo]] | None = None,
    image_sha256: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The passport of one core from its inspection records (any order; others' are ignored).

    `overrides` adds the audit history per inspection id (oldest first); without it, only the
    override in force is listed. `image_sha256` gives the hash of each image file name that is
    known (the node's own files); others are listed by name only. Raises NoInspections when no
    record is of the core.
    """
    core_id = core_id or (records[0].core_id if records else None)
    mine = sorted((r for r in records if r.core_id == core_id), key=lambda r: (r.ts, r.seq))
    if not mine:
        raise NoInspections(f"no inspection of core {core_id}")
    latest = mine[-1]
    battery = battery_facts(mine, facility)
    return {
        "passport_schema": PASSPORT_SCHEMA,
        "unique_identifier": _identity(mine),
        "operator": {
            "operator": operator,
            "facility": facility,
            "stations": sorted({r.station for r in mine}),
        },
        "dates": _dates(mine),
        "status": _status(latest),
        "predecessor": {
            "part_number": _part_number(mine),
            "passport": battery["original_passport_id"] if battery else None,
        },
        "circularity": _impact(latest),
        "inspections": [
            _inspection(r, prev, (overrides or {}).get(r.id), image_sha256 or {})
            for r, prev in zip(mine, [None, *mine[:-1]], strict=True)
        ],
        **({"battery": battery} if battery is not None else {}),
    }


def _identity(records: list[InspectionRecord]) -> dict[str, Any]:
    latest = records[-1]
    return {
        "core_id": latest.core_id,
        "family": latest.family,
        "part_number": _part_number(records),
    }


def _part_number(records: list[InspectionRecord]) -> str | None:
    return next((r.part_number for r in reversed(records) if r.part_number), None)


def _dates(records: list[InspectionRecord]) -> dict[str, Any]:
    changes = [r.ts for r in records] + [r.override.ts for r in records if r.override]
    return {
        "first_inspected": records[0].ts,
        "last_inspected": records[-1].ts,
        "last_changed": max(changes),
    }


def _status(record: InspectionRecord) -> dict[str, Any]:
    code = record.effective_code()
    return {
        "r_strategy": R_LADDER[code],
        "code": int(code),
        "label": code.name,
        "credit": int(record.effective_credit()),
        "decided_by": "override" if record.override else "rules",
        "since": record.override.ts if record.override else record.ts,
        "inspection_id": record.id,
    }


def _impact(record: InspectionRecord) -> dict[str, Any]:
    impact = record.impact
    if impact is None:
        return {"known": False, "material_kept_kg": None, "co2e_avoided_kg": None}
    return impact.model_dump(mode="json")


def _inspection(
    record: InspectionRecord,
    previous: InspectionRecord | None,
    history: Sequence[OverrideInfo] | None,
    image_sha256: Mapping[str, str],
) -> dict[str, Any]:
    return {
        "id": record.id,
        "seq": record.seq,
        "time": record.ts,
        "station": record.station,
        "predecessor": previous.id if previous else None,
        "grades": {k: v.model_dump(mode="json") for k, v in record.defects.items()},
        "measurements": {k: v.model_dump(mode="json") for k, v in record.measurements.items()},
        "decision": record.decision.model_dump(mode="json"),
        "override": record.override.model_dump(mode="json") if record.override else None,
        "overrides": [o.model_dump(mode="json") for o in (history or _current(record))],
        "effective": {
            "code": int(record.effective_code()),
            "label": record.effective_code().name,
            "credit": int(record.effective_credit()),
        },
        "model": record.model.model_dump(mode="json") if record.model else None,
        "rules": record.rules.model_dump(mode="json") if record.rules else None,
        "images": [{"name": n, "sha256": image_sha256.get(n)} for n in record.images],
    }


def _current(record: InspectionRecord) -> list[OverrideInfo]:
    return [record.override] if record.override else []


# ---------------------------------------------------------------- Asset Administration Shell names


_ID_SHORT = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]*[a-zA-Z0-9_]$|^[a-zA-Z]$")


def id_short(key: str) -> str:
    """A key as a valid idShort (letters, digits, _ and -, starting with a letter)."""
    if _ID_SHORT.match(key):
        return key
    cleaned = re.sub(r"[^a-zA-Z0-9_-]", "_", key)
    return cleaned if _ID_SHORT.match(cleaned) else f"x_{cleaned.rstrip('-')}"


# ---------------------------------------------------------------- circularity figures


def circularity(records: Sequence[InspectionRecord]) -> dict[str, Any]:
    """Circularity figures of a set of inspections, by their effective decisions.

    Cores by disposition label, reuse and remanufacture rate, and the sums of material kept in
    use and CO2e avoided over the records whose impact is known; `unknown` counts the others.
    A sum over no known record is None (unknown), never zero.
    """
    by_label: dict[str, int] = {}
    known = [r.impact for r in records if r.impact is not None and r.impact.known]
    for record in records:
        label = record.effective_code().name
        by_label[label] = by_label.get(label, 0) + 1
    kept = by_label.get("REUSE", 0) + by_label.get("REMANUFACTURE", 0)
    return {
        "inspections": len(records),
        "by_disposition": by_label,
        "reuse_remanufacture_rate": round(kept / len(records), 6) if records else None,
        "material_kept_kg": round(sum(i.material_kept_kg or 0.0 for i in known), 6)
        if known
        else None,
        "co2e_avoided_kg": round(sum(i.co2e_avoided_kg or 0.0 for i in known), 6)
        if known
        else None,
        "known": len(known),
        "unknown": len(records) - len(known),
    }
