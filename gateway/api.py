"""JSON API under /api/, its OpenAPI document and docs pages, Prometheus /metrics and /healthz."""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response

from edge.contract import aas, label, passport, tiers
from edge.contract.errors import LabelError, PassportIdError
from edge.contract.identity import Issuer
from gateway import decisions, reports
from gateway.api_models import (
    Circularity,
    Confirmed,
    EventPage,
    InspectionDetail,
    InspectionPage,
    OverrideRequest,
    OverrideSent,
    StationState,
    Trends,
)
from gateway.auth import can, check_csrf, request_user, require
from gateway.config import SiteConfig, User
from gateway.errors import LoginRequired
from gateway.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from gateway.metrics import GatewayMetrics
from gateway.tokens import TokenUser
from gateway.views import make_filter, record_of

router = APIRouter()
view = Depends(require("view"))
FAVICON = Path(__file__).parent / "static" / "favicon.svg"
csrf = Depends(check_csrf)  # a session's POST needs its CSRF token; a token's needs none
Overrider = Annotated[User | TokenUser, Depends(require("override"))]
Confirmer = Annotated[User | TokenUser, Depends(require("confirm"))]


def _store(request: Request):
    return request.app.state.store


@router.get(
    "/api/inspections", dependencies=[view], tags=["inspections"], response_model=InspectionPage
)
def list_inspections(
    request: Request,
    station: str | None = None,
    since: str | None = None,
    until: str | None = None,
    code: str | None = None,
    family: str | None = None,
    q: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    cursor: str | None = None,
) -> JSONResponse:
    """Inspections newest first with the History filters; follow `next_cursor` for the next page.

    `count` stops at 10,000 (`count_capped` is then true). A time without an offset is UTC."""
    flt = make_filter(station, since, until, code, family, q)
    page = _store(request).page(flt, limit=limit, cursor=cursor)
    return JSONResponse(
        {
            "items": [record_of(r) for r in page.rows],
            "next_cursor": page.next_cursor,
            "count": page.count,
            "count_capped": page.count_capped,
        }
    )


@router.get(
    "/api/inspections/{station}/{inspection_id}",
    dependencies=[view],
    tags=["inspections"],
    response_model=InspectionDetail,
)
def get_station_inspection(request: Request, station: str, inspection_id: str) -> JSONResponse:
    """One station's inspection: its record, audit trail and snapshot file names."""
    return _inspection(request, inspection_id, station)


@router.get(
    "/api/inspections/{inspection_id}",
    dependencies=[view],
    tags=["inspections"],
    response_model=InspectionDetail,
)
def get_inspection(request: Request, inspection_id: str) -> JSONResponse:
    """One inspection by id alone: 409 when inspections of several stations share the id (then
    ask `/api/inspections/{station}/{inspection_id}`)."""
    return _inspection(request, inspection_id, None)


def _inspection(request: Request, inspection_id: str, station: str | None) -> JSONResponse:
    store = _store(request)
    row = _row(request, inspection_id, station)
    return JSONResponse(
        {
            "record": record_of(row),
            "audit": store.audit(inspection_id, row["station"]),
            "snapshots": store.snapshots_for(inspection_id, row["station"]),
        }
    )


def _row(request: Request, inspection_id: str, station: str | None) -> dict[str, Any]:
    row = _store(request).get(inspection_id, station)
    if row is None:
        raise HTTPException(status_code=404, detail=f"no inspection {inspection_id}")
    return row


@router.post(
    "/api/inspections/{station}/{inspection_id}/override",
    dependencies=[csrf],
    tags=["inspections"],
    response_model=OverrideSent,
    status_code=202,
)
def override_inspection(
    request: Request,
    station: str,
    inspection_id: str,
    body: OverrideRequest,
    user: Overrider,
) -> OverrideSent:
    """Override the station's decision: `override/set` goes to the node, which journals it and
    republishes the record (with a higher revision). Scope `override` or the engineer role."""
    row = _row(request, inspection_id, station)
    command = decisions.send_override(request, user, row, body.code, body.reason)
    return OverrideSent(
        sent=True, station=station, id=inspection_id, command_id=command.command_id or ""
    )


@router.post(
    "/api/inspections/{station}/{inspection_id}/confirm",
    dependencies=[csrf],
    tags=["inspections"],
    response_model=Confirmed,
)
def confirm_inspection(
    request: Request, station: str, inspection_id: str, user: Confirmer
) -> Confirmed:
    """Record that the station's decision was checked and stands (in the audit trail)."""
    decisions.confirm(request, user, _row(request, inspection_id, station))
    return Confirmed(confirmed=True, station=station, id=inspection_id)


@router.get(
    "/api/stations", dependencies=[view], tags=["stations"], response_model=list[StationState]
)
def list_stations(request: Request) -> JSONResponse:
    """Every station seen: availability, last seen, latest stats and result, clock offset."""
    clocks = request.app.state.clocks
    return JSONResponse(
        [s | {"clock_offset_s": clocks.offset(s["station"])} for s in _store(request).stations()]
    )


@router.get(
    "/api/events",
    dependencies=[Depends(require("events"))],
    tags=["events"],
    response_model=EventPage,
)
def list_events(
    request: Request,
    station: str | None = None,
    level: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
    cursor: str | None = None,
) -> JSONResponse:
    """The stations' events newest first, by station and level."""
    rows, nxt = _store(request).events(station or None, level or None, limit, cursor)
    return JSONResponse({"items": rows, "next_cursor": nxt})


@router.get(
    "/api/circularity", dependencies=[view], tags=["circularity"], response_model=Circularity
)
def get_circularity(
    request: Request, station: str | None = None, since: str | None = None, until: str | None = None
) -> JSONResponse:
    """Cores by disposition, reuse and remanufacture rates, material kept and CO2e avoided.

    The rates are shares of `decided_cores` (REUSE, REMANUFACTURE and RECYCLE): REVIEW cores
    (`review_cores`, `review_share` of all cores) and errors are not in their denominator.
    Material and CO2e are null (unknown) when no core in the period has impact figures;
    `impact_unknown_cores` says how many cores lack them."""
    flt = make_filter(station, since, until)
    return JSONResponse(
        reports.circularity(_store(request), flt.station, flt.since, flt.until).as_dict()
    )


@router.get("/api/trends", dependencies=[view], tags=["trends"], response_model=Trends)
def get_trends(
    request: Request, station: str | None = None, since: str | None = None, until: str | None = None
) -> JSONResponse:
    """Decisions per hour by code and grade distributions per defect type per hour."""
    flt = make_filter(station, since, until)
    store = _store(request)
    return JSONResponse(
        {
            "decisions_per_hour": reports.decisions_per_hour(
                store, flt.station, flt.since, flt.until
            ),
            "grades": reports.grade_distribution(store, flt.station, flt.since, flt.until),
        }
    )


def passport_tier(request: Request) -> str:
    """The highest passport tier the caller may read: authority for an admin (account or token),
    legitimate interest for any other login or token, public without one where the site
    enables `site.public_passports` (else 401)."""
    user = request_user(request)  # a bad token is a 401 here
    if user is None:
        if not _site(request).public_passports:
            raise LoginRequired("log in first")
        return "public"
    if not can(user, "view"):
        raise HTTPException(status_code=403, detail="your role may not view passports")
    return "authority" if can(user, "admin") else "legitimate_interest"


@router.get("/api/cores/{core_id:path}/passport", tags=["circularity"])
def get_passport(
    request: Request,
    core_id: str,
    allowed: Annotated[str, Depends(passport_tier)],
    format: str = Query("json", pattern="^(json|aas|aasx)$"),
    tier: str | None = Query(None, pattern="^(public|legitimate_interest|authority)$"),
) -> Response:
    """The core's product passport in the tier asked for (default: the highest the caller may
    read; 403 above it): json the record (inspections, overrides, R-ladder status); aas the
    AAS V3 environment (JSON); aasx the same as an AASX package download. Public: the id,
    operator, status, dates and environmental figures; legitimate interest: also every
    inspection, overrides without who and why; authority: everything."""
    shown = tier or allowed
    if tiers.rank(shown) > tiers.rank(allowed):
        raise HTTPException(
            status_code=403, detail=f"this access may read the {allowed} tier, not {shown}"
        )
    issuer = _site(request).issuer()
    record = tiers.restrict(_passport_record(request, core_id, issuer), shown)
    if format == "json":
        return JSONResponse(record)
    try:
        env = aas.build_environment(record, issuer, extra=aas.family_submodels(record, issuer))
    except PassportIdError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    if format == "aas":
        return JSONResponse(aas.environment_json(env))
    return _aasx_download(core_id, aas.environment_aasx(env))


@router.get(
    "/api/cores/{core_id:path}/passport/qr.{kind}", dependencies=[view], tags=["circularity"]
)
def get_passport_label(request: Request, core_id: str, kind: str) -> Response:
    """The core's QR label, png (25 mm at 300 dpi) or svg, encoding its passport id's URL;
    409 when the id is a URN and the site has no resolver_url_template."""
    if kind not in label.FORMATS:
        raise HTTPException(status_code=404, detail="a label is qr.png or qr.svg")
    issuer = _site(request).issuer()
    record = _passport_record(request, core_id, issuer)
    try:
        body = label.qr_label(label.core_url(record, issuer), kind, core_id)
    except (PassportIdError, LabelError) as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    media = "image/png" if kind == "png" else "image/svg+xml"
    return _download(body, media, f"{_file_name(core_id)}-label.{kind}")


def _site(request: Request) -> SiteConfig:
    return request.app.state.config.site


def _passport_record(request: Request, core_id: str, issuer: Issuer) -> dict[str, Any]:
    """The core's passport record from the store; 404 for a core never inspected."""
    store = _store(request)
    records = store.core_records(core_id)
    if not records:
        raise HTTPException(status_code=404, detail=f"no inspections of core {core_id}")
    return passport.build_passport(
        records,
        core_id,
        overrides=store.override_history(core_id),
        operator=issuer.operator,
        facility=issuer.facility,
    )


def _aasx_download(core_id: str, package: bytes) -> Response:
    media = "application/asset-administration-shell-package"
    return _download(package, media, f"{_file_name(core_id)}.aasx")


def _download(body: bytes, media_type: str, name: str) -> Response:
    return Response(
        body,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _file_name(core_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", core_id)


@router.get("/openapi.json", dependencies=[view], include_in_schema=False)
def openapi_document(request: Request) -> JSONResponse:
    """The OpenAPI document of the API (for any logged-in user, as the API itself is)."""
    return JSONResponse(with_security(request.app.openapi()))


SECURITY_SCHEMES = {
    "apiToken": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token from `reman gateway token create NAME --scope read|override"
        "|admin`: `Authorization: Bearer rmn_...`. Scope read: the reads; override: also "
        "confirm and override; admin: everything.",
    },
    "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "reman_session",
        "description": "A dashboard login (POSTs also need the X-CSRF-Token header).",
    },
}


def with_security(document: dict[str, Any]) -> dict[str, Any]:
    """The document declaring how /api/ routes authenticate: an API token or a login."""
    document.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in document.get("paths", {}).items():
        if path.startswith("/api/"):
            for operation in operations.values():
                operation["security"] = [{"apiToken": []}, {"session": []}]
    return document


# Swagger UI's script and style, from the fastapi-swagger wheel: FastAPI's default page loads them
# from a CDN, which a plant network without internet access never reaches (a blank page).
SWAGGER_ASSETS = {
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui.css": "text/css",
}


@router.get("/docs", dependencies=[view], include_in_schema=False)
def swagger_docs(request: Request) -> HTMLResponse:
    """The API's interactive documentation (Swagger UI), every asset served by the gateway."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title=f"{request.app.title} API",
        swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/static/favicon.svg",
    )


@router.get("/docs/assets/{name}", dependencies=[view], include_in_schema=False)
def swagger_asset(name: str) -> Response:
    """One of SWAGGER_ASSETS (nothing else is served from the package)."""
    if name not in SWAGGER_ASSETS:
        raise HTTPException(status_code=404, detail="no such asset")
    content = resources.files("fastapi_swagger.resources").joinpath(name).read_bytes()
    return Response(
        content,
        media_type=SWAGGER_ASSETS[name],
        headers={"Cache-Control": "private, max-age=86400"},
    )


@router.get("/redoc", dependencies=[view], include_in_schema=False)
def redoc_docs() -> RedirectResponse:
    """The same documentation: ReDoc's script comes only from a CDN, so /redoc shows Swagger UI."""
    return RedirectResponse("/docs", status_code=308)


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> FileResponse:
    """The dashboard's icon, for whatever asks the conventional path (the pages link it)."""
    return FileResponse(FAVICON, media_type="image/svg+xml")


@router.get("/healthz", tags=["operations"])
def healthz(request: Request) -> dict[str, Any]:
    """Liveness: the store answers."""
    request.app.state.store.select("SELECT 1 AS ok", [])
    return {"status": "ok"}


@router.get("/metrics", tags=["operations"])
def metrics(request: Request) -> Response:
    """Prometheus text format: messages ingested and malformed, inspections by code, stations
    online; per station its availability, newest inspection, inspections by code and health."""
    state = request.app.state
    if getattr(state, "metrics", None) is None:  # one per app, made at its first scrape
        state.metrics = GatewayMetrics(state.store, state.counters)
    return Response(state.metrics.render(), media_type=METRICS_CONTENT_TYPE)
