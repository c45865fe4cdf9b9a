"""Figures over a period: circularity (dispositions, material kept, CO2e avoided) and trends.

Every figure uses the effective decision (after an override) and the record's own `impact`,
which the node computes for the effective decision. A core whose family has no impact figures
counts as unknown; its material and CO2e are never taken as zero.

Series over time hold every bucket (hour or day, UTC) of the period, oldest first: a bucket
without inspections reads zero, so a chart's time axis is the period and not the data's extent.
A period open at the start begins at its first inspection; one open at the end runs to now.

Reuse and remanufacture rates are shares of the decided cores (REUSE, REMANUFACTURE, RECYCLE):
a REVIEW core still waits for a person and a NONE core (an error) was never decided, so neither
is in the denominator; both are counted apart, and `review_share` is REVIEW's share of all cores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from edge.contract import Disposition
from edge.contract.timefmt import parse_ts, rfc3339
from gateway.store import InspectionFilter, Store

LABELS = {int(d): d.name for d in Disposition}
# a bucket's key is the first characters of its RFC 3339 time: 'YYYY-MM-DDTHH' or 'YYYY-MM-DD'
BUCKETS = {"hour": (13, timedelta(hours=1)), "day": (10, timedelta(days=1))}


@dataclass(frozen=True)
class Span:
    """The buckets of a period, from the one holding its start to the one holding its end."""

    bucket: str
    first: datetime
    last: datetime

    def keys(self) -> list[str]:
        """Every bucket's key, oldest first."""
        chars, step = BUCKETS[self.bucket]
        count = int((self.last - self.first) / step) + 1
        return [rfc3339(self.first + n * step)[:chars] for n in range(count)]


def period_span(
    store: Store,
    station: str | None,
    since: str | None,
    until: str | None,
    bucket: str = "hour",
) -> Span | None:
    """The buckets of [since, until) at `station`; None when the period holds no inspection."""
    where, params = InspectionFilter(station=station, since=since, until=until).where(store.dialect)
    row = store.select(
        f"SELECT min(ts) AS first, max(ts) AS last FROM inspections WHERE {where}", params
    )[0]
    if row["first"] is None:
        return None
    start = parse_ts(since or row["first"])
    if until:  # the end is exclusive: its last bucket holds the millisecond before
        end = parse_ts(until) - timedelta(milliseconds=1)
    else:  # a node's clock may run ahead of ours: its records stay on the axis
        end = max(parse_ts(row["last"]), datetime.now(timezone.utc))
    return Span(bucket, _floor(start, bucket), _floor(end, bucket))


def _floor(moment: datetime, bucket: str) -> datetime:
    hour = moment.replace(minute=0, second=0, microsecond=0)
    return hour.replace(hour=0) if bucket == "day" else hour


@dataclass(frozen=True)
class Rates:
    """Cores by disposition over a period and the rates computed from them (see the module's
    docstring for what each rate counts)."""

    by_disposition: dict[str, int]

    @property
    def cores(self) -> int:
        """Every core, whatever its disposition."""
        return sum(self.by_disposition.values())

    @property
    def review_cores(self) -> int:
        """Cores waiting for a person (REVIEW)."""
        return self.by_disposition.get("REVIEW", 0)

    @property
    def decided_cores(self) -> int:
        """The rates' denominator: REUSE, REMANUFACTURE and RECYCLE cores."""
        return self.cores - self.review_cores - self.by_disposition.get("NONE", 0)

    @property
    def reuse_rate(self) -> float | None:
        """REUSE cores as a share of the decided cores; None when none was decided."""
        return _rate(self.by_disposition.get("REUSE", 0), self.decided_cores)

    @property
    def remanufacture_rate(self) -> float | None:
        """REMANUFACTURE cores as a share of the decided cores; None when none was decided."""
        return _rate(self.by_disposition.get("REMANUFACTURE", 0), self.decided_cores)

    @property
    def review_share(self) -> float | None:
        """REVIEW cores as a share of all cores; None when there is no core."""
        return _rate(self.review_cores, self.cores)


def rates_by_station(store: Store, since: str | None, until: str | None) -> dict[str, Rates]:
    """Each station's cores by disposition in [since, until) and its rates."""
    where, params = InspectionFilter(since=since, until=until).where(store.dialect)
    rows = store.select(
        f"SELECT station, code, count(*) AS n FROM inspections WHERE {where} "
        "GROUP BY station, code",
        params,
    )
    counts: dict[str, dict[str, int]] = {}
    for r in rows:
        per_code = counts.setdefault(r["station"], {name: 0 for name in LABELS.values()})
        per_code[LABELS.get(r["code"], str(r["code"]))] = r["n"]
    return {station: Rates(per_code) for station, per_code in counts.items()}


@dataclass
class Circularity:
    """Circularity figures for one station (or all) over one period."""

    station: str | None
    since: str | None
    until: str | None
    cores: int
    by_disposition: dict[str, int]
    reuse_rate: float | None  # of decided_cores
    remanufacture_rate: float | None  # of decided_cores
    decided_cores: int  # REUSE, REMANUFACTURE and RECYCLE: REVIEW and NONE left out
    review_cores: int
    review_share: float | None  # of all cores
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
    span = period_span(store, station, since, until, bucket)
    where, params = InspectionFilter(station=station, since=since, until=until).where(store.dialect)
    totals = store.select(
        "SELECT code, count(*) AS n, sum(CASE WHEN impact_known = 1 THEN 1 ELSE 0 END) AS known, "
        "sum(material_kept_kg) AS kept, sum(co2e_avoided_kg) AS co2e "
        f"FROM inspections WHERE {where} GROUP BY code",
        params,
    )
    by_code = {LABELS.get(r["code"], str(r["code"])): r["n"] for r in totals}
    rates = Rates({name: by_code.get(name, 0) for name in LABELS.values()})
    cores = rates.cores
    known = sum(r["known"] or 0 for r in totals)
    return Circularity(
        station=station,
        since=since,
        until=until,
        cores=cores,
        by_disposition=rates.by_disposition,
        reuse_rate=rates.reuse_rate,
        remanufacture_rate=rates.remanufacture_rate,
        decided_cores=rates.decided_cores,
        review_cores=rates.review_cores,
        review_share=rates.review_share,
        impact_known_cores=known,
        impact_unknown_cores=cores - known,
        material_kept_kg=_known_sum(totals, "kept", known),
        co2e_avoided_kg=_known_sum(totals, "co2e", known),
        series=_impact_series(store, where, params, span),
    )


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _known_sum(rows: list[dict[str, Any]], key: str, known: int) -> float | None:
    if not known:
        return None
    return round(sum(r[key] or 0.0 for r in rows), 3)


def _impact_series(
    store: Store, where: str, params: list[Any], span: Span | None
) -> list[dict[str, Any]]:
    if span is None:
        return []
    rows = store.select(
        f"SELECT substr(ts, 1, {BUCKETS[span.bucket][0]}) AS t, count(*) AS cores, "
        "sum(CASE WHEN impact_known = 1 THEN 1 ELSE 0 END) AS known, sum(material_kept_kg) AS kept, "
        f"sum(co2e_avoided_kg) AS co2e FROM inspections WHERE {where} GROUP BY t",
        params,
    )
    by_bucket = {r["t"]: r for r in rows}
    return [_impact_point(t, by_bucket.get(t)) for t in span.keys()]


def _impact_point(t: str, row: dict[str, Any] | None) -> dict[str, Any]:
    if row is None:  # no cores: nothing kept, nothing avoided
        return {
            "t": t,
            "cores": 0,
            "impact_known_cores": 0,
            "material_kept_kg": 0.0,
            "co2e_avoided_kg": 0.0,
        }
    return {
        "t": t,
        "cores": row["cores"],
        "impact_known_cores": row["known"] or 0,
        "material_kept_kg": row["kept"] if row["known"] else None,
        "co2e_avoided_kg": row["co2e"] if row["known"] else None,
    }


def decisions_per_hour(
    store: Store, station: str | None, since: str | None, until: str | None
) -> list[dict[str, Any]]:
    """[{t: 'YYYY-MM-DDTHH', REUSE: n, ...}] for every hour of the period, oldest first."""
    span = period_span(store, station, since, until)
    if span is None:
        return []
    where, params = InspectionFilter(station=station, since=since, until=until).where(store.dialect)
    rows = store.select(
        f"SELECT substr(ts, 1, 13) AS t, code, count(*) AS n FROM inspections "
        f"WHERE {where} GROUP BY t, code",
        params,
    )
    hours = {t: {"t": t, **{name: 0 for name in LABELS.values()}} for t in span.keys()}
    for r in rows:
        hours[r["t"]][LABELS.get(r["code"], str(r["code"]))] = r["n"]
    return list(hours.values())


def grade_distribution(
    store: Store, station: str | None, since: str | None, until: str | None
) -> dict[str, list[dict[str, Any]]]:
    """Per defect type: [{t: hour, grades: {grade: count}}] for every hour, oldest first."""
    span = period_span(store, station, since, until)
    if span is None:
        return {}
    where, params = InspectionFilter(station=station, since=since, until=until).where(store.dialect)
    rows = store.select(
        f"SELECT substr(ts, 1, 13) AS t, d.key AS defect, "
        f"{store.dialect.json_field('d.value', 'grade')} AS grade, count(*) AS n "
        f"FROM inspections, {store.dialect.json_each('record', 'defects')} AS d WHERE {where} "
        "GROUP BY t, defect, grade",
        params,
    )
    out: dict[str, dict[str, dict[str, int]]] = {}
    for r in rows:
        grades = out.setdefault(r["defect"], {}).setdefault(r["t"], {})
        grades[str(r["grade"])] = r["n"]
    return {
        defect: [{"t": t, "grades": per_hour.get(t, {})} for t in span.keys()]
        for defect, per_hour in sorted(out.items())
    }
