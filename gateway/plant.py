"""The plant overview: every station grouped by site and line, each line's trend.

    GET /plant      stations by site and line (config `plant.lines`; the rest under "Other"),
                    each with its state, last seen, inspections per hour, REVIEW share and outbox
                    depth over the last 24 h, and its last decision; per line the decisions per
                    hour of its stations together. Every station links to its pages.

The figures come from two grouped queries over the last 24 hours, whatever the number of
stations (an index on (station, ts) serves both), and from each station's latest stats.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from edge.contract import Disposition
from edge.contract.timefmt import UTC, rfc3339
from gateway.auth import require
from gateway.config import User
from gateway.views import DECISION_CLASSES

router = APIRouter(include_in_schema=False)
Viewer = Annotated[User, Depends(require("view"))]

HOURS = 24
OTHER = ("", "")
"""The (site, line) of stations no configured line lists."""


@dataclass
class StationFigures:
    """One station's row on the overview."""

    station: str
    available: str | None
    last_seen: str | None
    cores: int = 0  # in the last 24 h
    review: int = 0
    outbox_depth: int | None = None
    last_code: int | None = None
    last_core: str | None = None
    last_ts: str | None = None

    @property
    def per_hour(self) -> float:
        return self.cores / HOURS

    @property
    def review_share(self) -> float | None:
        return self.review / self.cores if self.cores else None

    @property
    def last_label(self) -> str | None:
        return Disposition(self.last_code).name if self.last_code is not None else None

    @property
    def last_css(self) -> str:
        return DECISION_CLASSES.get(self.last_code or 0, "none")


@dataclass
class Line:
    """A line of a site: its stations and their decisions per hour together."""

    site: str
    line: str
    stations: list[StationFigures] = field(default_factory=list)
    trend: list[dict[str, Any]] = field(default_factory=list)

    @property
    def cores(self) -> int:
        return sum(s.cores for s in self.stations)

    @property
    def online(self) -> int:
        return sum(1 for s in self.stations if s.available == "online")


@router.get("/plant")
def plant_page(request: Request, user: Viewer):
    """Stations by site and line with their last day's figures."""
    lines = overview(request.app.state.store, request.app.state.config, datetime.now(UTC))
    return request.app.state.templates.TemplateResponse(
        request, "plant.html", {"lines": lines, "hours": HOURS}
    )


def overview(store, config, now: datetime) -> list[Line]:
    """The configured lines in their order, then any other station seen, with figures."""
    since = rfc3339(now - timedelta(hours=HOURS))
    hours = [(now - timedelta(hours=h)).strftime("%Y-%m-%dT%H") for h in range(HOURS - 1, -1, -1)]
    seen = {s["station"]: s for s in store.stations()}
    counts = _counts(store, since)
    place: dict[str, tuple[str, str]] = {}
    lines: dict[tuple[str, str], Line] = {}
    for entry in config.plant.lines:
        key = (entry.site, entry.line)
        lines.setdefault(key, Line(entry.site, entry.line))
        for station in entry.stations:
            place.setdefault(station, key)
    for station in sorted(set(seen) - set(place)):
        place[station] = OTHER
    if any(key == OTHER for key in place.values()):
        lines.setdefault(OTHER, Line(*OTHER))
    latest = _latest(store, place)
    for station, key in place.items():
        state = seen.get(station, {})
        stats = state.get("stats") or {}
        figures = StationFigures(
            station,
            state.get("available"),
            state.get("last_seen"),
            outbox_depth=stats.get("outbox_depth"),
        )
        per_code = counts["total"].get(station, {})
        figures.cores = sum(per_code.values())
        figures.review = per_code.get(int(Disposition.REVIEW), 0)
        if station in latest:
            figures.last_code, figures.last_core, figures.last_ts = latest[station]
        lines[key].stations.append(figures)
    for line in lines.values():
        names = {s.station for s in line.stations}
        line.trend = [
            {
                "t": hour,
                **{
                    d.name: sum(counts["hourly"].get((st, hour, int(d)), 0) for st in names)
                    for d in Disposition
                    if d != Disposition.NONE
                },
            }
            for hour in hours
        ]
    return list(lines.values())


def _counts(store, since: str) -> dict[str, Any]:
    """Inspections since `since` per station, hour and effective code, and per station and code."""
    rows = store.select(
        "SELECT station, substr(ts, 1, 13) AS hour, code, count(*) AS n FROM inspections "
        "WHERE ts >= ? GROUP BY station, substr(ts, 1, 13), code",
        [since],
    )
    hourly: dict[tuple[str, str, int], int] = {}
    total: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for r in rows:
        hourly[(r["station"], r["hour"], int(r["code"]))] = int(r["n"])
        total[r["station"]][int(r["code"])] += int(r["n"])
    return {"hourly": hourly, "total": total}


def _latest(store, stations) -> dict[str, tuple[int, str, str]]:
    """Each station's newest inspection (any time): its effective code, core id and time (one
    indexed lookup per station)."""
    found = {}
    for station in stations:
        rows = store.select(
            "SELECT code, core_id, ts FROM inspections WHERE station = ? "
            "ORDER BY ts DESC, id DESC LIMIT 1",
            [station],
        )
        if rows:
            found[station] = (int(rows[0]["code"]), rows[0]["core_id"], rows[0]["ts"])
    return found
