"""The dashboard's pages (Jinja2 + htmx): stations, live view, kiosk, history, detail, health,
events, trends, circularity, login. Live pages refetch their panel on server-sent events."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
import math
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, StreamingResponse

from edge.contract import STATION_ID_PATTERN, Disposition
from edge.contract.timefmt import ago_ts, utc_now
from gateway import decisions, labels, reports
from gateway.auth import (
    authenticate,
    can,
    check_csrf,
    current_user,
    end_session,
    require,
    start_session,
)
from gateway.config import User
from gateway.formats import local_input
from gateway.i18n import LANGUAGES, Message
from gateway.store import InspectionFilter
from gateway.views import CSV_COLUMNS, csv_row, display_row, make_filter, query_string

log = logging.getLogger("reman.gateway.auth")
router = APIRouter(include_in_schema=False)
Viewer = Annotated[User, Depends(require("view"))]
Exporter = Annotated[User, Depends(require("export"))]
Overrider = Annotated[User, Depends(require("override"))]
Confirmer = Annotated[User, Depends(require("confirm"))]
EventReader = Annotated[User, Depends(require("events"))]
KEEPALIVE_S = 15.0
PERIODS = {"1h": {"hours": 1}, "24h": {"hours": 24}, "7d": {"days": 7}, "30d": {"days": 30}}


def _render(request: Request, name: str, status_code: int = 200, **context: Any):
    return request.app.state.templates.TemplateResponse(
        request, name, context, status_code=status_code
    )


def _store(request: Request):
    return request.app.state.store


# ---------------------------------------------------------------- login


@router.get("/login")
def login_form(request: Request, next: str = "/"):
    """The login page."""
    return _render(request, "login.html", next=_safe_next(next), error=None)


@router.post("/login", dependencies=[Depends(check_csrf)])
def login(
    request: Request, username: str = Form(...), password: str = Form(...), next: str = Form("/")
):
    """Check the password; on success start a fresh session. Repeated failures wait (429)."""
    throttle = request.app.state.login_throttle
    address = request.client.host if request.client else ""
    wait_s = math.ceil(throttle.retry_after(address, username))
    if wait_s > 0:
        log.warning("login for %r from %s refused: too many failed logins", username, address)
        response = _render(
            request,
            "login.html",
            status_code=429,
            next=_safe_next(next),
            error=Message("Too many failed logins. Try again in {wait_s} s.", wait_s=wait_s),
        )
        response.headers["Retry-After"] = str(wait_s)
        return response
    user = authenticate(request.app.state.config.users, username, password)
    if user is None:
        throttle.failed(address, username)
        log.warning("failed login for %r from %s", username, address)
        return _render(
            request,
            "login.html",
            status_code=401,
            next=_safe_next(next),
            error=Message("Wrong user name or password."),
        )
    throttle.succeeded(address, username)
    language = request.session.get("language")
    start_session(request, user)
    if language in LANGUAGES:  # a language chosen on the login page outlasts the new session
        request.session["language"] = language
    return RedirectResponse(_safe_next(next), status_code=303)


@router.post("/logout", dependencies=[Depends(check_csrf)])
def logout(request: Request):
    """End the session, here and in the store (a saved copy of the cookie stops working)."""
    end_session(request)
    return RedirectResponse("/login", status_code=303)


@router.post("/language", dependencies=[Depends(check_csrf)])
def choose_language(request: Request, language: str = Form(...), next: str = Form("/")):
    """Show the pages in `language` for the rest of the session (logged in or not)."""
    if language not in LANGUAGES:
        raise HTTPException(
            status_code=400, detail=Message("unknown language {language!r}", language=language)
        )
    request.session["language"] = language
    return RedirectResponse(_safe_next(next), status_code=303)


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/"


# ---------------------------------------------------------------- stations and live view


@router.get("/")
def stations_page(request: Request, user: Viewer):
    """Every station as a tile: availability, latest decision and the last 24 hours' REVIEW
    share and rates."""
    store = _store(request)
    rates = reports.rates_by_station(store, ago_ts(**PERIODS["24h"]), None)
    tiles = []
    for st in _stations(request):
        latest = store.latest(st["station"], 1)
        tiles.append(
            {
                **st,
                "latest": display_row(latest[0]) if latest else None,
                "rates": rates.get(st["station"]),
            }
        )
    return _render(request, "stations.html", tiles=tiles)


def _stations(request: Request) -> list[dict[str, Any]]:
    seen = {s["station"]: s for s in _store(request).stations()}
    configured = request.app.state.config.stations
    names = configured or sorted(seen)
    clocks = request.app.state.clocks
    return [
        seen.get(n, {"station": n, "available": None, "last_seen": None, "stats": None})
        | {"clock_offset_s": clocks.offset(n)}
        for n in names
    ]


def _live_context(request: Request, station: str) -> dict[str, Any]:
    store = _store(request)
    rows = [display_row(r) for r in store.latest(station, 20)]
    latest = rows[0] if rows else None
    snaps = store.snapshots_for(latest["id"], station) if latest else []
    snapshot = snaps[-1] if snaps else store.latest_snapshot(station)
    info = next((s for s in store.stations() if s["station"] == station), None)
    return {
        "station": station,
        "latest": latest,
        "recent": rows,
        "snapshot": snapshot,
        "info": info,
    }


def _check_station(station: str) -> None:
    import re

    if not re.fullmatch(STATION_ID_PATTERN, station):
        raise HTTPException(
            status_code=404, detail=Message("no station {station!r}", station=station)
        )


@router.get("/live/{station}")
def live_page(request: Request, user: Viewer, station: str):
    """The live view for the screen beside a station."""
    _check_station(station)
    return _render(
        request,
        "live.html",
        stream=f"/stream?station={station}",
        panel_url=f"/live/{station}/panel",
        **_live_context(request, station),
    )


@router.get("/live/{station}/panel")
def live_panel(request: Request, user: Viewer, station: str):
    """The live view's panel alone (refetched on each new inspection)."""
    _check_station(station)
    return _render(request, "_live_panel.html", **_live_context(request, station))


def _kiosk_allowed(request: Request, station: str) -> None:
    kiosk = request.app.state.config.kiosk
    if not kiosk.enabled or (kiosk.stations and station not in kiosk.stations):
        raise HTTPException(
            status_code=404, detail=Message("kiosk mode is not enabled for this station")
        )
    _check_station(station)


@router.get("/kiosk/{station}")
def kiosk_page(request: Request, station: str):
    """Read-only live view without a login (when kiosk mode is enabled for the station)."""
    _kiosk_allowed(request, station)
    return _render(
        request,
        "live.html",
        kiosk=True,
        stream=f"/kiosk/{station}/stream",
        panel_url=f"/kiosk/{station}/panel",
        **_live_context(request, station),
    )


@router.get("/kiosk/{station}/panel")
def kiosk_panel(request: Request, station: str):
    """The kiosk's panel alone."""
    _kiosk_allowed(request, station)
    return _render(request, "_live_panel.html", kiosk=True, **_live_context(request, station))


@router.get("/kiosk/{station}/stream")
async def kiosk_stream(request: Request, station: str):
    """Server-sent events for one kiosk station."""
    _kiosk_allowed(request, station)
    return _sse(request, station)


@router.get("/stream")
async def stream(request: Request, station: str | None = None):
    """Server-sent events: inspection, health, event, snapshot and models announcements."""
    if current_user(request) is None:
        raise HTTPException(status_code=401, detail="log in first")
    return _sse(request, station or None)


def _sse(request: Request, station: str | None) -> StreamingResponse:
    # Subscribe before the response starts: the browser refetches its panels as soon as the
    # stream opens, and anything written after that refetch must reach this queue.
    broadcaster = request.app.state.broadcaster
    if broadcaster.closed:
        raise HTTPException(status_code=503, detail="the gateway is stopping")
    queue = broadcaster.subscribe()
    return StreamingResponse(
        _announce(broadcaster, queue, station),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _announce(broadcaster, queue: asyncio.Queue, station: str | None) -> AsyncIterator[str]:
    try:
        yield "retry: 1000\n: connected\n\n"
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), timeout=KEEPALIVE_S)
            except asyncio.TimeoutError:
                yield ": keepalive\n\n"
                continue
            if item is None:
                return
            if station is None or item.station == station:
                yield item.sse()
    finally:
        broadcaster.unsubscribe(queue)


@router.get("/snapshots/{name}")
def snapshot_file(request: Request, name: str):
    """A snapshot JPEG (logged-in users, or the kiosk of its station)."""
    if "/" in name or not name.endswith(".jpg"):
        raise HTTPException(status_code=404, detail=Message("no such snapshot"))
    if current_user(request) is None:
        _kiosk_allowed(request, name.rsplit("-", 2)[0])
    path = Path(request.app.state.snapshots_dir) / name
    if not path.is_file():
        raise HTTPException(status_code=404, detail=Message("no such snapshot"))
    return FileResponse(path, media_type="image/jpeg")


# ---------------------------------------------------------------- history and detail


@router.get("/history")
def history_page(
    request: Request,
    user: Viewer,
    station: str | None = None,
    since: str | None = None,
    until: str | None = None,
    code: str | None = None,
    family: str | None = None,
    q: str | None = None,
    cursor: str | None = None,
    limit: int = Query(50, ge=10, le=500),
):
    """Filtered inspections, newest first, a page at a time."""
    flt = make_filter(station, since, until, code, family, q, zone=request.app.state.zone)
    page = _store(request).page(flt, limit=limit, cursor=cursor)
    return _render(
        request,
        "history.html",
        flt=flt,
        rows=[display_row(r) for r in page.rows],
        page=page,
        form=_form_values(flt, request.app.state.zone, code),
        next_url=f"/history?{query_string(flt, cursor=page.next_cursor)}"
        if page.next_cursor
        else None,
        csv_url=f"/history.csv?{query_string(flt)}",
        stations=_stations(request),
        first_url=f"/history?{query_string(flt)}" if cursor else None,
        flagged=labels.flagged_keys(_store(request)) if can(user, "label") else set(),
    )


def _form_values(flt: InspectionFilter, zone: ZoneInfo, code: str | None) -> dict[str, str]:
    """The filter as the history form shows it again, its times in the display zone."""
    return {
        "station": flt.station or "",
        "since": local_input(flt.since, zone),
        "until": local_input(flt.until, zone),
        "code": code or "",
        "family": flt.family or "",
        "q": flt.q or "",
    }


@router.get("/history.csv")
def history_csv(
    request: Request,
    user: Exporter,
    station: str | None = None,
    since: str | None = None,
    until: str | None = None,
    code: str | None = None,
    family: str | None = None,
    q: str | None = None,
):
    """The filtered set as CSV, impact columns included (unknown impact left empty)."""
    flt = make_filter(station, since, until, code, family, q, zone=request.app.state.zone)
    name = f"inspections-{utc_now()[:19].replace(':', '')}.csv"
    return StreamingResponse(
        _csv_lines(request, flt),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _csv_lines(request: Request, flt: InspectionFilter) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for n, row in enumerate(_store(request).iter_filtered(flt), 1):
        writer.writerow(csv_row(row))
        if n % 500 == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def _inspection(request: Request, inspection_id: str, station: str | None) -> dict[str, Any]:
    """The stored row of `station`'s inspection (404 when none); without `station` the id must
    be one station's only (AmbiguousInspection, a 409, when not)."""
    if station is not None:
        _check_station(station)
    row = _store(request).get(inspection_id, station)
    if row is None:
        raise HTTPException(status_code=404, detail=Message("no inspection {id}", id=inspection_id))
    return row


def inspection_url(row: dict[str, Any]) -> str:
    """The detail page of a stored inspection, named by its station and id."""
    return f"/inspections/{row['station']}/{row['id']}"


@router.get("/inspections/{station}/{inspection_id}")
def station_detail_page(
    request: Request, user: Viewer, station: str, inspection_id: str, sent: str | None = None
):
    """Every field of one station's inspection, its images, audit trail and the override form."""
    return _detail(request, _inspection(request, inspection_id, station), sent)


@router.get("/inspections/{inspection_id}")
def detail_page(request: Request, user: Viewer, inspection_id: str, sent: str | None = None):
    """The detail page by id alone, while only one station has an inspection with that id."""
    return _detail(request, _inspection(request, inspection_id, None), sent)


def _detail(request: Request, row: dict[str, Any], sent: str | None):
    store = _store(request)
    return _render(
        request,
        "detail.html",
        row=display_row(row),
        audit=store.audit(row["id"], row["station"]),
        snapshots=store.snapshots_for(row["id"], row["station"]),
        sent=sent,
        codes=[d for d in Disposition if d != Disposition.NONE],
        can_send=request.app.state.publisher is not None,
        labels_resolve=request.app.state.config.site.issuer().labels_resolve,
    )


@router.post("/inspections/{station}/{inspection_id}/override", dependencies=[Depends(check_csrf)])
def station_override(
    request: Request,
    user: Overrider,
    station: str,
    inspection_id: str,
    code: int | None = Form(None),  # None: none chosen, refused below with a message
    reason: str = Form(...),
):
    """Send `override/set` to the station; the node journals it and republishes the record."""
    return _override(request, user, _inspection(request, inspection_id, station), code, reason)


@router.post("/inspections/{inspection_id}/override", dependencies=[Depends(check_csrf)])
def override(
    request: Request,
    user: Overrider,
    inspection_id: str,
    code: int | None = Form(None),  # None: none chosen, refused below with a message
    reason: str = Form(...),
):
    """The override by id alone, while only one station has an inspection with that id."""
    return _override(request, user, _inspection(request, inspection_id, None), code, reason)


def _override(request: Request, user: User, row: dict[str, Any], code: int | None, reason: str):
    decisions.send_override(request, user, row, code, reason)
    return RedirectResponse(f"{inspection_url(row)}?sent=1", status_code=303)


@router.post("/inspections/{station}/{inspection_id}/confirm", dependencies=[Depends(check_csrf)])
def station_confirm(request: Request, user: Confirmer, station: str, inspection_id: str):
    """Record that a person checked the station's decision and agrees."""
    return _confirm(request, user, _inspection(request, inspection_id, station))


@router.post("/inspections/{inspection_id}/confirm", dependencies=[Depends(check_csrf)])
def confirm(request: Request, user: Confirmer, inspection_id: str):
    """The confirmation by id alone, while only one station has an inspection with that id."""
    return _confirm(request, user, _inspection(request, inspection_id, None))


def _confirm(request: Request, user: User, row: dict[str, Any]):
    decisions.confirm(request, user, row)
    return RedirectResponse(inspection_url(row), status_code=303)


# ---------------------------------------------------------------- health, events, trends, circularity


@router.get("/health")
def health_page(request: Request, user: Viewer):
    """Each station online or offline, last seen, and its latest stats."""
    return _render(request, "health.html", stations=_stations(request))


@router.get("/health/panel")
def health_panel(request: Request, user: Viewer):
    """The health table alone (refetched on health announcements)."""
    return _render(request, "_health_panel.html", stations=_stations(request))


@router.get("/events")
def events_page(
    request: Request,
    user: EventReader,
    station: str | None = None,
    level: str | None = None,
    cursor: str | None = None,
):
    """The stations' events, by station and level."""
    rows, nxt = _store(request).events(station or None, level or None, 100, cursor)
    return _render(
        request,
        "events.html",
        rows=rows,
        next_cursor=nxt,
        station=station or "",
        level=level or "",
        stations=_stations(request),
    )


def _period(period: str, since: str | None, until: str | None) -> tuple[str | None, str | None]:
    if since or until:
        return since or None, until or None
    return (ago_ts(**PERIODS[period]) if period in PERIODS else None), None


@router.get("/trends")
def trends_page(
    request: Request,
    user: Viewer,
    station: str | None = None,
    period: str = "24h",
    since: str | None = None,
    until: str | None = None,
):
    """Decisions per hour by code and grade distributions per defect type, as charts."""
    since, until = _period(period, since, until)
    flt = make_filter(station, since, until, zone=request.app.state.zone)
    store = _store(request)
    data = {
        "decisions_per_hour": reports.decisions_per_hour(store, flt.station, flt.since, flt.until),
        "grades": reports.grade_distribution(store, flt.station, flt.since, flt.until),
    }
    return _render(
        request,
        "trends.html",
        data=data,
        station=station or "",
        period=period,
        periods=list(PERIODS) + ["all"],
        stations=_stations(request),
    )


@router.get("/circularity")
def circularity_page(
    request: Request,
    user: Viewer,
    station: str | None = None,
    period: str = "24h",
    since: str | None = None,
    until: str | None = None,
):
    """Circularity panel: cores by disposition, rates, material kept, CO2e avoided, over time."""
    since, until = _period(period, since, until)
    flt = make_filter(station, since, until, zone=request.app.state.zone)
    figures = reports.circularity(
        _store(request),
        flt.station,
        flt.since,
        flt.until,
        bucket="day" if period in ("7d", "30d", "all") else "hour",
    )
    return _render(
        request,
        "circularity.html",
        c=figures,
        station=station or "",
        period=period,
        periods=list(PERIODS) + ["all"],
        stations=_stations(request),
        csv_url=f"/history.csv?{query_string(flt)}" if can(user, "export") else None,
    )
