"""Figures over a period: circularity (dispositions, material kept, CO2e avoided) and trends.

Every figure uses the effective decision (after an override) and the record's own `impact`,
which the node computes for the effective decision. A core whose family has no impact figures
counts as unknown; its material and CO2e are never taken as zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from edge.contract import Disposition
from gateway.store import InspectionFilter, Store

LABELS = {int(d): d.name for d in Disposition}


@dataclass
class Circularity:
    """Circularity figures for one station (or all) over one period."""

    station: str | None
    since: str | None
    until: str | None
    cores: int
    by_disposition: dict[str, int]
    reuse_rate: float | None
    remanufacture_rate: float | None
    impact_known_cores: int
    impact_unknown_cores: int
    material_kept_kg: float | None
    co2e_avoided_kg: float | None
    series: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return asdict(self)


def circularity(
    store: Store,
    station: str | None = None,
    since: str | None = None,
    until: str | None = None,
    bucket: str = "hour",
) -> Circularity:
    """Circularity figures for the inspections in [since, until) at `station` (None: all)."""
    where, params = InspectionFilter(station=station, since=since, until=until).where()
    totals = store.select(
        "SELECT code, count(*) AS n, sum(impact_known = 1) AS known, "
        "sum(material_kept_kg) AS kept, sum(co2e_avoided_kg) AS co2e "
        f"FROM inspections WHERE {where} GROUP BY code",
        params,
    )
    by_code = {LABELS.get(r["code"], str(r["code"])): r["n"] for r in totals}
    cores = sum(r["n"] for r in totals)
    known = sum(r["known"] or 0 for r in totals)
    decided = cores - by_code.get("REVIEW", 0) - by_code.get("NONE", 0)
    return Circularity(
        station=station,
        since=since,
        until=until,
        cores=cores,
        by_disposition={name: by_code.get(name, 0) for name in LABELS.values()},
        reuse_rate=_rate(by_code.get("REUSE", 0), decided),
        remanufacture_rate=_rate(by_code.get("REMANUFACTURE", 0), decided),
        impact_known_cores=known,
        impact_unknown_cores=cores - known,
        material_kept_kg=_known_sum(totals, "kept", known),
        co2e_avoided_kg=_known_sum(totals, "co2e", known),
        series=_impact_series(store, where, params, bucket),
    )


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _known_sum(rows: list[dict[str, Any]], key: str, known: int) -> float | None:
    if not known:
        return None
    return round(sum(r[key] or 0.0 for r in rows), 3)


def _bucket_expr(bucket: str) -> str:
    width = {"hour": 13, "day": 10}[bucket]
    return f"substr(ts, 1, {width})"


def _impact_series(
    store: Store, where: str, params: list[Any], bucket: str
) -> list[dict[str, Any]]:
    rows = store.select(
        f"SELECT {_bucket_expr(bucket)} AS t, count(*) AS cores, sum(impact_known = 1) AS known, "
        "sum(material_kept_kg) AS kept, sum(co2e_avoided_kg) AS co2e "
        f"FROM inspections WHERE {where} GROUP BY t ORDER BY t",
        params,
    )
    return [
        {
            "t": r["t"],
            "cores": r["cores"],
            "impact_known_cores": r["known"] or 0,
            "material_kept_kg": r["kept"] if r["known"] else None,
            "co2e_avoided_kg": r["co2e"] if r["known"] else None,
        }
        for r in rows
    ]


def decisions_per_hour(
    store: Store, station: str | None, since: str | None, until: str | None
) -> list[dict[str, Any]]:
    """[{t: 'YYYY-MM-DDTHH', REUSE: n, ...}] for the period, oldest first."""
    where, params = InspectionFilter(station=station, since=since, until=until).where()
    rows = store.select(
        f"SELECT substr(ts, 1, 13) AS t, code, count(*) AS n FROM inspections "
        f"WHERE {where} GROUP BY t, code ORDER BY t",
        params,
    )
    hours: dict[str, dict[str, Any]] = {}
    for r in rows:
        hour = hours.setdefault(r["t"], {"t": r["t"], **{name: 0 for name in LABELS.values()}})
        hour[LABELS.get(r["code"], str(r["code"]))] = r["n"]
    return list(hours.values())


def grade_distribution(
    store: Store, station: str | None, since: str | None, until: str | None
) -> dict[str, list[dict[str, Any]]]:
    """Per defect type: [{t: hour, grades: {grade: count}}], oldest first."""
    where, params = InspectionFilter(station=station, since=since, until=until).where()
    rows = store.select(
        "SELECT substr(ts, 1, 13) AS t, d.key AS defect, json_extract(d.value, '$.grade') AS grade, "
        f"count(*) AS n FROM inspections, json_each(record, '$.defects') AS d WHERE {where} "
        "GROUP BY t, defect, grade ORDER BY t",
        params,
    )
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in rows:
        per_hour = out.setdefault(r["defect"], {})
        point = per_hour.setdefault(r["t"], {"t": r["t"], "grades": {}})
        point["grades"][str(r["grade"])] = r["n"]
    return {defect: list(points.values()) for defect, points in out.items()}
