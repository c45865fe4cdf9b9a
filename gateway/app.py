"""The dashboard's FastAPI application.

    create_app(config, store, publisher=None, counters=None, broadcaster=None, frames=None)

Collaborators come in as arguments: the store to read, the publisher of commands (MqttIngest,
or None where the gateway may not send commands), the ingest's counters for /metrics, the
broadcaster that feeds server-sent events, and the cache of raw frames for the label editor.
"""

from __future__ import annotations

import asyncio
import gettext
from collections.abc import Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import jinja2
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape
from pydantic import BaseModel
from starlette.middleware.sessions import SessionMiddleware

from edge.contract import OverrideCommand
from gateway import api, labels, models_page, pages, plant
from gateway.auth import (
    LoginRequired,
    LoginThrottle,
    can,
    csrf_token,
    current_user,
    session_secret,
)
from gateway.clock import ClockWatch, amount
from gateway.config import GatewayConfig, User
from gateway.errors import AmbiguousInspection, StoreError
from gateway.formats import count, decimal, local_time, number, percent
from gateway.frames import FrameCache
from gateway.headers import SecurityHeaders
from gateway.i18n import (
    DEFECT_NAMES,
    EVENT_TEXT,
    LANGUAGE_NAMES,
    LANGUAGES,
    N_,
    Catalogues,
    Message,
    choose_language,
    reason_title,
    translate,
)
from gateway.ingest import IngestCounters
from gateway.live import Broadcaster
from gateway.store import Store
from gateway.views import DECISION_CLASSES, LABELS

HERE = Path(__file__).resolve().parent


class Publisher(Protocol):
    """What the app needs to send commands to a station."""

    def publish_override(self, station: str, command: OverrideCommand) -> None: ...

    def publish_command(self, station: str, kind: str, command: BaseModel) -> None: ...


def create_app(
    config: GatewayConfig,
    store: Store,
    publisher: Publisher | None = None,
    counters: IngestCounters | None = None,
    broadcaster: Broadcaster | None = None,
    frames: FrameCache | None = None,
    clocks: ClockWatch | None = None,
) -> FastAPI:
    """The dashboard app over `store`; see the module docstring."""
    broadcaster = broadcaster or Broadcaster()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        broadcaster.attach(asyncio.get_running_loop())
        yield
        broadcaster.close()

    app = FastAPI(
        title="reman-edge station dashboard",
        version="1",
        lifespan=lifespan,
        description="Inspections, stations, events and circularity figures of reman-edge stations.",
        # served by gateway.api behind a login instead
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.config = config
    app.state.store = store
    app.state.publisher = publisher
    app.state.counters = counters or IngestCounters()
    app.state.broadcaster = broadcaster
    app.state.frames = frames or FrameCache()
    app.state.clocks = clocks or ClockWatch(config.clock.max_offset_s)
    app.state.snapshots_dir = Path(config.store.snapshots_dir)
    app.state.login_throttle = LoginThrottle(
        config.http.login_max_failures, config.http.login_lockout_s
    )
    app.state.catalogues = Catalogues.load()
    app.state.zone = ZoneInfo(config.display.zone_name())
    app.state.templates = _templates(app.state.catalogues)
    app.add_middleware(
        SessionMiddleware,
        secret_key=session_secret(config.http),
        session_cookie="reman_session",
        max_age=config.http.session_max_age_s,
        https_only=config.http.secure_cookies,
        same_site="lax",
    )
    # added last, so outermost: it also sees the session cookie
    app.add_middleware(SecurityHeaders, secure_cookies=config.http.secure_cookies)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(labels.router)
    app.include_router(models_page.router)
    app.include_router(plant.router)
    _add_handlers(app)
    return app


def _templates(catalogues: Catalogues) -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates", context_processors=[_context])
    env = templates.env
    env.add_extension("jinja2.ext.i18n")
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_callables(  # type: ignore[attr-defined]  # added by the i18n extension
        gettext=_gettext, ngettext=_ngettext, newstyle=True
    )
    env.globals.update(
        LABELS=LABELS,
        CLASSES=DECISION_CLASSES,
        CLASS_OF={LABELS[c]: css for c, css in DECISION_CLASSES.items()},
        LANGUAGES=LANGUAGES,
        LANGUAGE_NAMES=LANGUAGE_NAMES,
    )
    env.filters["hm"] = _hm
    env.filters["day_hm"] = _day_hm
    env.filters["num"] = _num
    env.filters["count"] = _count
    env.filters["dec"] = _dec
    env.filters["raw_views"] = labels.raw_views
    env.filters["pct"] = _pct
    env.filters["tr"] = _tr
    env.filters["defect"] = _defect
    env.filters["event_text"] = _event_text
    env.filters["clock_offset"] = _clock_offset
    env.filters["reason"] = _reason
    return templates


@jinja2.pass_context
def _clock_offset(ctx: jinja2.runtime.Context, offset_s: float) -> str:
    """A station's clock offset in the page's language: `2 h 05 min behind`, `40 s ahead`."""
    text = N_("%(amount)s behind") if offset_s > 0 else N_("%(amount)s ahead")
    return _gettext(ctx, text) % {"amount": amount(offset_s)}


@jinja2.pass_context
def _gettext(ctx: jinja2.runtime.Context, message: str) -> str:
    return _translations(ctx).gettext(message)


@jinja2.pass_context
def _ngettext(ctx: jinja2.runtime.Context, singular: str, plural: str, n: int) -> str:
    return _translations(ctx).ngettext(singular, plural, n)


def _translations(ctx: jinja2.runtime.Context):
    request = ctx.get("request")
    if request is None:
        return gettext.NullTranslations()
    return request.app.state.catalogues.get(ctx.get("language"))


def _language(ctx: jinja2.runtime.Context) -> str:
    return ctx.get("language") or "en"


@jinja2.pass_context
def _hm(ctx: jinja2.runtime.Context, ts: str | None):
    return local_time(ts, ctx["request"].app.state.zone, _language(ctx), with_date=False)


@jinja2.pass_context
def _day_hm(ctx: jinja2.runtime.Context, ts: str | None):
    return local_time(ts, ctx["request"].app.state.zone, _language(ctx))


@jinja2.pass_context
def _tr(ctx: jinja2.runtime.Context, detail: object) -> object:
    """A Message (an error text from the Python side) in the page's language."""
    return translate(detail, _translations(ctx))


@jinja2.pass_context
def _defect(ctx: jinja2.runtime.Context, name: str) -> str:
    """A defect type's name in the page's language (coating_damage: coating damage)."""
    return _gettext(ctx, DEFECT_NAMES.get(name, name.replace("_", " ")))


@jinja2.pass_context
def _event_text(ctx: jinja2.runtime.Context, code: str, message: str):
    """An event's meaning in the page's language (known codes), then the station's own text."""
    if code not in EVENT_TEXT:
        return message
    title = escape(_gettext(ctx, EVENT_TEXT[code]))
    return Markup(
        f'<strong class="event-text">{title}</strong> <span class="muted">{escape(message)}</span>'
    )


@jinja2.pass_context
def _reason(ctx: jinja2.runtime.Context, reason: Mapping[str, Any], plain: bool = False):
    """A decision reason as the reader reads it: the node's text in English; in another
    language the known reason's meaning first, then the node's text (which has the figures)."""
    text = str(reason.get("text") or "")
    title = reason_title(str(reason.get("code") or ""), reason.get("rule"))
    if _language(ctx) == "en" or title is None:
        return text
    shown = _gettext(ctx, title)
    if plain:
        return f"{shown} ({text})"
    return Markup(f'{escape(shown)} <span class="muted">({escape(text)})</span>')


def _missing(value) -> bool:
    return value is None or isinstance(value, jinja2.Undefined)


@jinja2.pass_context
def _num(ctx: jinja2.runtime.Context, value, digits: int = 1) -> str:
    return _gettext(ctx, "unknown") if _missing(value) else number(value, _language(ctx), digits)


@jinja2.pass_context
def _count(ctx: jinja2.runtime.Context, value) -> str:
    return count(value or 0, _language(ctx))


@jinja2.pass_context
def _dec(ctx: jinja2.runtime.Context, value) -> str:
    return decimal(value, _language(ctx))


@jinja2.pass_context
def _pct(ctx: jinja2.runtime.Context, value) -> str:
    return _gettext(ctx, "unknown") if _missing(value) else percent(value, _language(ctx))


def _request_language(request: Request, user: User | None) -> str:
    return choose_language(
        request.session.get("language"),
        user.language if user else None,
        request.headers.get("accept-language"),
    )


def _error_language(request: Request) -> str:
    """The reader's language for an error text; a store that cannot be read leaves the
    user's own setting out."""
    try:
        user = current_user(request)
    except StoreError:
        user = None
    return _request_language(request, user)


def _context(request: Request) -> dict:
    user = current_user(request)
    language = _request_language(request, user)
    return {
        "user": user,
        "csrf": csrf_token(request),
        "can": lambda p: can(user, p),
        "language": language,
        "zone": request.app.state.zone.key,
        "clock_limit": request.app.state.clocks.max_offset_s,
    }


_JSON_PATHS = ("/stream", "/openapi.json")
"""Paths outside /api/ whose clients are programs: 401 without a login, not the login page."""


def _add_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired):
        if request.url.path.startswith("/api/") or request.url.path in _JSON_PATHS:
            return JSONResponse({"detail": "log in first"}, status_code=401)
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    @app.exception_handler(AmbiguousInspection)
    async def ambiguous(request: Request, exc: AmbiguousInspection):
        base = "/api/inspections" if request.url.path.startswith("/api/") else "/inspections"
        urls = [f"{base}/{station}/{exc.inspection_id}" for station in exc.stations]
        return _error_response(request, 409, f"{exc}: {' or '.join(urls)}")

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError):
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return _error_response(request, exc.status_code, exc.detail, exc.headers)


def _error_response(
    request: Request, status: int, detail: object, headers: Mapping[str, str] | None = None
) -> Response:
    """JSON for the API and for clients that do not ask for HTML, else the error page."""
    if request.url.path.startswith("/api/"):  # machine clients read the English text
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)
    if "text/html" not in request.headers.get("accept", ""):  # the dashboard's own scripts
        if isinstance(detail, Message):
            detail = translate(detail, request.app.state.catalogues.get(_error_language(request)))
        return JSONResponse({"detail": detail}, status_code=status, headers=headers)
    return request.app.state.templates.TemplateResponse(
        request, "error.html", {"status": status, "detail": detail}, status_code=status
    )
