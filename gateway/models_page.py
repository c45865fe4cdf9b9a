"""A station's models page: its model registry, how the shadow model agrees with the active one
and with the engineers' labels, and the admin's model commands.

    GET  /stations/{station}/models            the page (role models: engineer, admin)
    GET  /stations/{station}/models/commands   the commands panel alone (polled while pending)
    POST /stations/{station}/models/command    shadow VERSION, end_shadow, promote VERSION,
                                               rollback, with a reason (role admin)

A command is checked against the station's latest `models` message (a version its registry
lists, not the active one; a shadow to end; a model to roll back to) before `model/set` goes
out with the admin's name and a fresh command id; nothing is published when it is refused
here. It then reads "sent; the station will confirm" until the node's event for that command
id arrives (a change, or `model_refused` with the node's reason) or a `models` message received
after it shows the change.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import RedirectResponse
from pydantic import BaseModel, ValidationError

from edge.contract import STATION_ID_PATTERN, ModelCommand, ModelsState
from edge.contract.timefmt import utc_now
from gateway import agreement, models_store
from gateway.auth import check_csrf, require
from gateway.config import User
from gateway.errors import CommandRefused, GatewayError
from gateway.i18n import Message

router = APIRouter(include_in_schema=False)
Viewer = Annotated[User, Depends(require("models"))]
Admin = Annotated[User, Depends(require("admin"))]

ACTIONS = ("shadow", "end_shadow", "promote", "rollback")
PENDING_TEXT = "sent; the station will confirm"


class CommandPublisher(Protocol):
    """What the page needs of the app's publisher (MqttIngest)."""

    def publish_command(self, station: str, kind: str, command: BaseModel) -> None: ...


@dataclass(frozen=True)
class CommandStatus:
    """One model command sent from the dashboard and where it stands."""

    command: dict[str, Any]
    state: str  # pending, confirmed or refused
    text: str

    @property
    def what(self) -> str:
        """The command in words, e.g. `promote 3`."""
        version = self.command["version"]
        return self.command["action"].replace("_", " ") + (f" {version}" if version else "")


# ---------------------------------------------------------------- pages


@router.get("/stations/{station}/models")
def models_page(request: Request, user: Viewer, station: str):
    """The registry, the shadow figures per candidate and (for admins) the command forms."""
    _check_station(station)
    return _render(request, station, None)


@router.get("/stations/{station}/models/commands")
def commands_panel(request: Request, user: Viewer, station: str):
    """The commands panel alone, for the page to poll while a command is pending."""
    _check_station(station)
    store = request.app.state.store
    latest = models_store.latest_state(store, station)
    return request.app.state.templates.TemplateResponse(
        request,
        "_model_commands.html",
        {"station": station, "commands": command_statuses(store, station, latest)},
    )


@router.post("/stations/{station}/models/command", dependencies=[Depends(check_csrf)])
def send_command(
    request: Request,
    user: Admin,
    station: str,
    action: str = Form(...),
    version: str = Form(""),
    reason: str = Form(""),
):
    """Check the command against the station's registry, then publish `model/set`."""
    _check_station(station)
    store = request.app.state.store
    latest = models_store.latest_state(store, station)
    try:
        command = _command(latest[0] if latest else None, action, version, reason, user)
        _publish(request, station, command)
    except CommandRefused as exc:
        return _render(request, station, exc.message, exc.status)
    active_before = latest[0].active if latest else None
    models_store.add_command(store, station, command, utc_now(), active_before)
    return RedirectResponse(f"/stations/{station}/models#commands", status_code=303)


def _render(request: Request, station: str, error: str | None, status_code: int = 200):
    store = request.app.state.store
    latest = models_store.latest_state(store, station)
    state = latest[0] if latest else None
    labels = agreement.labels_by_inspection(models_store.label_events(store, station))
    figures = agreement.candidates(models_store.shadow_reports(store, station), labels)
    if state is not None and state.shadow and state.shadow not in {f.candidate for f in figures}:
        figures.append(agreement.CandidateFigures(state.shadow))
    shadow = state.shadow if state else None
    figures.sort(key=lambda f: f.candidate != shadow)  # the model in shadow now comes first
    return request.app.state.templates.TemplateResponse(
        request,
        "models.html",
        {
            "station": station,
            "state": state,
            "received_ts": latest[1] if latest else None,
            "figures": figures,
            "labelled_cores": len(labels),
            "commands": command_statuses(store, station, latest),
            "error": error,
            "can_send": request.app.state.publisher is not None,
        },
        status_code=status_code,
    )


# ---------------------------------------------------------------- commands


def _command(
    state: ModelsState | None, action: str, version: str, reason: str, user: User
) -> ModelCommand:
    """The `model/set` for the form, or CommandRefused saying what is wrong with it."""
    if state is None:
        raise CommandRefused(
            409, Message("The station has not published its models yet; nothing was sent.")
        )
    if action not in ACTIONS:
        raise CommandRefused(
            400, Message("Unknown model action {action!r}; nothing was sent.", action=action)
        )
    version = version.strip()
    _check_against(state, action, version)
    try:
        return ModelCommand(
            action=action,  # type: ignore[arg-type]  # checked against ACTIONS above
            version=version if action in ("shadow", "promote") else None,
            reason=reason.strip(),
            user=user.username,
            command_id=uuid.uuid4().hex,  # a redelivered command then changes nothing more
        )
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        where = ".".join(map(str, err["loc"]))
        raise CommandRefused(
            400,
            Message(
                "{where}: {problem}; nothing was sent.",
                where=where or "command",
                problem=err["msg"],
            ),
        ) from exc


def _check_against(state: ModelsState, action: str, version: str) -> None:
    """CommandRefused unless the station's registry, as last published, allows `action`."""
    if action in ("shadow", "promote"):
        listed = [m.version for m in state.models]
        if version not in listed:
            raise CommandRefused(
                400,
                Message(
                    "Model {version!r} is not in {station}'s registry (it lists {listed}); "
                    "nothing was sent.",
                    version=version,
                    station=state.station,
                    listed=", ".join(listed) or "-",
                ),
            )
        if version == state.active:
            raise CommandRefused(
                400,
                Message(
                    "Model {version} is already the active one; nothing was sent.", version=version
                ),
            )
    elif action == "end_shadow" and state.shadow is None:
        raise CommandRefused(400, Message("No model runs in shadow; nothing was sent."))
    elif action == "rollback" and not state.can_roll_back:
        raise CommandRefused(
            400,
            Message(
                "Nothing to roll back to: no model was active before this one; nothing was sent."
            ),
        )


def _publish(request: Request, station: str, command: ModelCommand) -> None:
    publisher: CommandPublisher | None = request.app.state.publisher
    if publisher is None:
        raise CommandRefused(503, Message("This gateway does not send commands; nothing was sent."))
    try:
        publisher.publish_command(station, "model/set", command)
    except GatewayError as exc:
        raise CommandRefused(503, Message("Not sent: {problem}", problem=str(exc))) from exc


def command_statuses(
    store: models_store.Reader, station: str, latest: tuple[ModelsState, str] | None
) -> list[CommandStatus]:
    """The latest model commands sent to `station`, newest first, each with where it stands."""
    return [_status(store, station, row, latest) for row in models_store.commands(store, station)]


def _status(
    store: models_store.Reader,
    station: str,
    row: dict[str, Any],
    latest: tuple[ModelsState, str] | None,
) -> CommandStatus:
    outcome = models_store.command_outcome(store, station, row["command_id"])
    if outcome is not None:
        refused = outcome["code"] == models_store.REFUSED_EVENT
        return CommandStatus(row, "refused" if refused else "confirmed", outcome["message"])
    if latest is not None and latest[1] > row["ts"] and _shows(latest[0], row):
        return CommandStatus(row, "confirmed", "the station's models show the change")
    return CommandStatus(row, "pending", PENDING_TEXT)


def _shows(state: ModelsState, row: dict[str, Any]) -> bool:
    """Whether `state` shows the change the command asked for."""
    action, version = row["action"], row["version"]
    if action == "promote":
        return state.active == version
    if action == "shadow":
        return state.shadow == version
    if action == "end_shadow":
        return state.shadow is None
    return state.active != row["active_before"]  # rollback


def _check_station(station: str) -> None:
    if not re.fullmatch(STATION_ID_PATTERN, station):
        raise HTTPException(
            status_code=404, detail=Message("no station {station!r}", station=station)
        )
