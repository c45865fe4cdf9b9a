"""What a person or a machine client does to a station's decision: override it, confirm it.

The dashboard's forms (gateway.pages) and the JSON API (gateway.api) both come here, so the
checks, the `override/set` command and the audit trail are the same whoever sends them.
"""

from __future__ import annotations

import uuid
from typing import Any, Protocol

from fastapi import HTTPException, Request
from pydantic import ValidationError

from edge.contract import Disposition, OverrideCommand
from edge.contract.timefmt import utc_now
from gateway.errors import GatewayError
from gateway.i18n import Message


class Actor(Protocol):
    """An account or an API token's user: who the audit trail names."""

    @property
    def username(self) -> str: ...


def send_override(
    request: Request, user: Actor, row: dict[str, Any], code: int | None, reason: str
) -> OverrideCommand:
    """Publish `override/set` for the stored inspection `row` and note it in the audit trail;
    400 for no or a wrong decision or reason, 503 when it cannot be sent."""
    if code is None:  # the form preselects no decision: one sent by default is nobody's choice
        raise HTTPException(status_code=400, detail=Message("Choose the new decision."))
    inspection_id = row["id"]
    try:
        command = OverrideCommand.model_validate(
            {
                "id": inspection_id,
                "code": code,  # an int from the form, checked against the contract's codes here
                "reason": reason.strip(),
                "user": user.username,
                "command_id": uuid.uuid4().hex,  # a redelivered command then changes nothing more
            }
        )
    except ValidationError as exc:
        raise HTTPException(
            status_code=400, detail=exc.errors(include_url=False)[0]["msg"]
        ) from exc
    publisher = request.app.state.publisher
    if publisher is None:
        raise HTTPException(status_code=503, detail=Message("this gateway does not send commands"))
    try:
        publisher.publish_override(row["station"], command)
    except GatewayError as exc:
        raise HTTPException(status_code=503, detail=str(exc)) from exc
    request.app.state.store.add_audit(
        row["station"],
        inspection_id,
        utc_now(),
        user.username,
        "override_requested",
        code,
        Disposition(code).name,
        command.reason,
    )
    return command


def confirm(request: Request, user: Actor, row: dict[str, Any]) -> None:
    """Record that `user` checked the station's decision and agrees."""
    request.app.state.store.add_audit(
        row["station"], row["id"], utc_now(), user.username, "confirmed", row["code"]
    )
