"""Labelling an inspection's photograph on the dashboard, and flagging a core for labelling.

    GET  /inspections/{station}/{id}/label?view=N     the editor (role label: engineer, admin)
    POST /inspections/{station}/{id}/frame-request    publish `frame/get`; {command_id, after}
    GET  /inspections/{station}/{id}/frame?view&command_id&after
                                                      the answer so far: waiting, ready or error
    GET  /inspections/{station}/{id}/frame/{view}/image.jpg, .../masks/{type}.png
    POST /inspections/{station}/{id}/label            check the masks, publish `label/set`
    POST /inspections/{station}/{id}/flag             an operator asks for a label (role flag)
    GET  /labels                                      cores flagged and not labelled since

The node answers `frame/get` once on `frame`; the ingest keeps the answer in the FrameCache
and the editor polls for it by its command id. A label's masks are checked here against the
frame the node sent (PNG, its size, a known defect type) before `label/set` goes out; the node
checks again. Flags and labels sent are rows of the store's audit trail (`label_flagged`,
`label_sent`), so the detail page shows who did what and when.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.contract import (
    MAX_LABEL_BYTES,
    NAMED_DEFECT_TYPES,
    STATION_ID_PATTERN,
    ContractViolation,
    FrameRequest,
    LabelCommand,
)
from edge.contract.timefmt import utc_now
from gateway.auth import check_csrf, require
from gateway.config import User
from gateway.errors import GatewayError
from gateway.frames import Frame, FrameCache, Held, decode_base64, png_painted, png_size
from gateway.i18n import Message
from gateway.views import display_row

log = logging.getLogger("reman.gateway.labels")
router = APIRouter(include_in_schema=False)
Labeller = Annotated[User, Depends(require("label"))]
Flagger = Annotated[User, Depends(require("flag"))]

FLAGGED = "label_flagged"
LABEL_SENT = "label_sent"
MAX_VIEWS = 16
OVERLAY_SUFFIX = "-overlay"  # the node's name for an annotated copy, not a raw frame


class CommandPublisher(Protocol):
    """What labelling needs of the app's publisher (MqttIngest)."""

    def publish_command(self, station: str, kind: str, command: BaseModel) -> None: ...


class LabelSubmission(BaseModel):
    """The editor's POST: good, or a base64 PNG per defect type (the raw frame's size)."""

    view: int = Field(default=1, ge=1, le=MAX_VIEWS)
    good: bool = False
    masks: dict[str, str] = Field(default_factory=dict, max_length=len(NAMED_DEFECT_TYPES))

    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- pages


@router.get("/inspections/{station}/{inspection_id}/label")
def label_page(request: Request, user: Labeller, station: str, inspection_id: str, view: int = 1):
    """The label editor for one view of an inspection; it asks the station for the frame."""
    row = _row(request, station, inspection_id)
    _check_view(view)
    return request.app.state.templates.TemplateResponse(
        request,
        "label.html",
        {
            "row": display_row(row),
            "view": view,
            "defect_types": list(NAMED_DEFECT_TYPES),
            "can_send": request.app.state.publisher is not None,
        },
    )


@router.get("/labels")
def flagged_page(request: Request, user: Labeller):
    """Cores an operator flagged for labelling and nobody has labelled since."""
    return request.app.state.templates.TemplateResponse(
        request, "labels.html", {"rows": flagged(request.app.state.store)}
    )


# ---------------------------------------------------------------- the frame


@router.post(
    "/inspections/{station}/{inspection_id}/frame-request", dependencies=[Depends(check_csrf)]
)
def request_frame(
    request: Request, user: Labeller, station: str, inspection_id: str, view: int = 1
) -> dict[str, Any]:
    """Publish `frame/get` for one view; the answer is polled at /frame with the command id."""
    row = _row(request, station, inspection_id)
    _check_view(view)
    command = FrameRequest(id=row["id"], view=view, user=user.username, command_id=uuid.uuid4().hex)
    after = _frames(request).seq  # an answer without a command id counts once it is later
    _publish(request, station, "frame/get", command)
    return {"command_id": command.command_id, "after": after}


@router.get("/inspections/{station}/{inspection_id}/frame")
def frame_status(
    request: Request,
    user: Labeller,
    station: str,
    inspection_id: str,
    command_id: str,
    view: int = 1,
    after: int = 0,
) -> dict[str, Any]:
    """The answer to one `frame/get`: waiting (with why a station's answer was refused, if one
    was), error (the node's reason) or ready (the frame's size, model and image URLs)."""
    _check_station(station)
    held = _frames(request).get((station, inspection_id, view))
    if held is None or not _answers(held, command_id, after):
        refused = _frames(request).refusal_after(station, after)
        return {"state": "waiting", "refused": refused}
    frame = held.frame
    if frame.error is not None:
        return {"state": "error", "error": frame.error}
    return _ready(frame, held.seq)


def _answers(held: Held, command_id: str, after: int) -> bool:
    if held.frame.command_id is None:
        return held.seq > after
    return held.frame.command_id == command_id


def _ready(frame: Frame, seq: int) -> dict[str, Any]:
    base = f"/inspections/{frame.station}/{frame.id}/frame/{frame.view}"
    return {
        "state": "ready",
        "width": frame.width,
        "height": frame.height,
        "model": frame.model,
        "image_url": f"{base}/image.jpg?seq={seq}",
        "masks": {  # an anomaly map is no label: a person paints the defect types
            name: f"{base}/masks/{name}.png?seq={seq}"
            for name in frame.masks
            if name in NAMED_DEFECT_TYPES
        },
        "defect_types": list(NAMED_DEFECT_TYPES),
    }


@router.get("/inspections/{station}/{inspection_id}/frame/{view}/image.jpg")
def frame_image(request: Request, user: Labeller, station: str, inspection_id: str, view: int):
    """The raw JPEG of a held frame."""
    frame = _held_frame(request, station, inspection_id, view)
    return Response(frame.image, media_type="image/jpeg", headers={"Cache-Control": "no-store"})


@router.get("/inspections/{station}/{inspection_id}/frame/{view}/masks/{name}.png")
def frame_mask(
    request: Request, user: Labeller, station: str, inspection_id: str, view: int, name: str
):
    """The model's mask of one defect type in a held frame."""
    frame = _held_frame(request, station, inspection_id, view)
    if name not in frame.masks:
        raise HTTPException(
            status_code=404, detail=Message("the frame has no {name} mask", name=name)
        )
    return Response(
        frame.masks[name], media_type="image/png", headers={"Cache-Control": "no-store"}
    )


def _held_frame(request: Request, station: str, inspection_id: str, view: int) -> Frame:
    """The frame held for this view, with its image; 409 when the gateway no longer holds it."""
    _check_station(station)
    held = _frames(request).get((station, inspection_id, view))
    if held is None or held.frame.image is None:
        raise HTTPException(
            status_code=409,
            detail=Message("the gateway no longer holds this frame; ask the station for it again"),
        )
    return held.frame


# ---------------------------------------------------------------- labels and flags


@router.post("/inspections/{station}/{inspection_id}/label", dependencies=[Depends(check_csrf)])
def submit_label(
    request: Request, user: Labeller, station: str, inspection_id: str, body: LabelSubmission
) -> dict[str, Any]:
    """Check the label against the frame the node sent, then publish `label/set`."""
    row = _row(request, station, inspection_id)
    frame = _held_frame(request, station, row["id"], body.view)
    painted = sorted(name for name, text in body.masks.items() if _check_mask(name, text, frame))
    if body.masks and not painted and not body.good:
        raise HTTPException(
            status_code=400,
            detail=Message("every mask is empty: mark the photograph as good instead"),
        )
    command = _label_command(row["id"], body, user)
    size = len(command.model_dump_json(exclude_none=True))
    if size > MAX_LABEL_BYTES:
        raise HTTPException(
            status_code=413,
            detail=Message(
                "the label is {size} bytes; at most {limit}", size=size, limit=MAX_LABEL_BYTES
            ),
        )
    _publish(request, station, "label/set", command)
    empty = sorted(set(body.masks) - set(painted))
    what = "good" if body.good else "defects: " + ", ".join(painted)
    if empty:
        what += "; none of " + ", ".join(empty)
    request.app.state.store.add_audit(
        station, row["id"], utc_now(), user.username, LABEL_SENT, reason=f"view {body.view}, {what}"
    )
    return {"sent": True, "command_id": command.command_id, "summary": what}


def _check_mask(name: str, text: str, frame: Frame) -> bool:
    """Whether the mask marks any pixel; 400 unless `text` is a readable base64 PNG of the
    frame's size for a known defect type."""
    if name not in NAMED_DEFECT_TYPES:
        raise HTTPException(
            status_code=400, detail=Message("{name!r} is not a defect type to label", name=name)
        )
    try:
        data = decode_base64(text, f"masks.{name}")
        found = png_size(data)
        if found != (frame.width, frame.height):
            raise HTTPException(
                status_code=400,
                detail=Message(
                    "masks.{name} is {width}x{height}; the frame is {frame_width}x{frame_height}",
                    name=name,
                    width=found[0],
                    height=found[1],
                    frame_width=frame.width,
                    frame_height=frame.height,
                ),
            )
        return png_painted(data)
    except ContractViolation as exc:
        raise HTTPException(
            status_code=400, detail=Message("masks.{name}: {problem}", name=name, problem=str(exc))
        ) from exc


def _label_command(inspection_id: str, body: LabelSubmission, user: User) -> LabelCommand:
    try:
        return LabelCommand(
            id=inspection_id,
            view=body.view,
            good=body.good,
            masks=body.masks,
            user=user.username,
            command_id=uuid.uuid4().hex,  # a redelivered label then changes nothing more
        )
    except ValidationError as exc:
        raise HTTPException(
            status_code=400, detail=exc.errors(include_url=False)[0]["msg"]
        ) from exc


@router.post("/inspections/{station}/{inspection_id}/flag", dependencies=[Depends(check_csrf)])
def flag_for_labelling(request: Request, user: Flagger, station: str, inspection_id: str):
    """Record that `user` wants this core's photograph labelled (engineers see it at /labels)."""
    row = _row(request, station, inspection_id)
    request.app.state.store.add_audit(station, row["id"], utc_now(), user.username, FLAGGED)
    return RedirectResponse(f"/inspections/{station}/{row['id']}?flagged=1", status_code=303)


def flagged(store, station: str | None = None) -> list[dict[str, Any]]:
    """Inspections flagged for labelling with no label sent since the latest flag, newest
    flag first: station, id, core_id, ts (of the inspection), flagged_by, flagged_ts."""
    return store.select(
        "SELECT i.station, i.id, i.core_id, i.ts, f.user AS flagged_by, f.ts AS flagged_ts "
        "FROM audit f JOIN inspections i ON i.station = f.station AND i.id = f.inspection_id "
        "WHERE f.action = ? AND (? IS NULL OR f.station = ?) "
        "AND f.seq = (SELECT max(seq) FROM audit g WHERE g.station = f.station "
        "AND g.inspection_id = f.inspection_id AND g.action = ?) "
        "AND NOT EXISTS (SELECT 1 FROM audit s WHERE s.station = f.station "
        "AND s.inspection_id = f.inspection_id AND s.action = ? AND s.ts >= f.ts) "
        "ORDER BY f.ts DESC LIMIT 500",
        [FLAGGED, station, station, FLAGGED, LABEL_SENT],
    )


def raw_views(images: list[str]) -> list[int]:
    """The views (1, 2, ...) of an inspection's raw frames, from its record's image names (the
    node names an annotated overlay `...-overlay.jpg`); [1] when the record lists none."""
    raw = [name for name in images if not name.rsplit(".", 1)[0].endswith(OVERLAY_SUFFIX)]
    return list(range(1, min(len(raw), MAX_VIEWS) + 1)) or [1]


def flagged_keys(store) -> set[tuple[str, str]]:
    """(station, id) of every inspection waiting for a label (for markers on History)."""
    return {(r["station"], r["id"]) for r in flagged(store)}


# ---------------------------------------------------------------- helpers


def _frames(request: Request) -> FrameCache:
    return request.app.state.frames


def _check_station(station: str) -> None:
    if not re.fullmatch(STATION_ID_PATTERN, station):
        raise HTTPException(
            status_code=404, detail=Message("no station {station!r}", station=station)
        )


def _check_view(view: int) -> None:
    if not 1 <= view <= MAX_VIEWS:
        raise HTTPException(
            status_code=400, detail=Message("view must be 1..{most}", most=MAX_VIEWS)
        )


def _row(request: Request, station: str, inspection_id: str) -> dict[str, Any]:
    _check_station(station)
    row = request.app.state.store.get(inspection_id, station)
    if row is None:
        raise HTTPException(status_code=404, detail=Message("no inspection {id}", id=inspection_id))
    return row


def _publish(request: Request, station: str, kind: str, command: BaseModel) -> None:
    publisher: CommandPublisher | None = request.app.state.publisher
    if publisher is None:
        raise HTTPException(status_code=503, detail=Message("this gateway does not send commands"))
    try:
        publisher.publish_command(station, kind, command)
    except GatewayError as exc:
        raise HTTPException(
            status_code=503, detail=Message("not sent: {problem}", problem=str(exc))
        ) from exc
