"""Commands to the node over MQTT: validate, authorise, dispatch; reject anything else with an event.

`CommandRouter.handle(kind, payload)` is the MqttClient's `on_command`. Each payload is checked
against the contract (`contract.parse_command`); the user of an override, a label or a model
change must be in `CommandsConfig.override_users` when that list is set. A refused command becomes a
`command_rejected` event saying which topic, why, and the first bytes of the payload; the node
carries on. A handler that raises becomes a `command_failed` event; the node carries on.

Repeats (QoS 1 may deliver a command twice, and people press buttons twice):

- `override/set` goes to the journal's `apply_override`, which is idempotent: the same override
  again changes nothing more, and a repeated `command_id` (pass `command.command_id`) is ignored
  even after a newer override.
- `ack/set` is idempotent: acknowledging a seq again is only noted (see `edge.mqtt.handshake`).
- `label/set` is idempotent with a `command_id`; without one a repeat keeps a second, equal label
  (the latest label of a view is the one in force).
- `model/set` is idempotent with a `command_id`: the journal keeps the change (or refusal) made
  for it, and the same id again changes nothing. Without one, a repeated promote of the active
  model is refused, but a repeated rollback rolls back once more: send a `command_id`.
- `frame/get` changes nothing and is answered each time it is delivered.
- `records/get` changes nothing: each one delivered queues the asked records again, and
  consumers keep each record once by its id. The records asked for draw on a budget of
  `records_per_minute` (a bucket that refills evenly): a request beyond it is refused, and of
  such refusals one a minute becomes a `command_rejected` event (saying how many more were
  refused since), so a requester that loops, or one forging requests, cannot flood the broker
  or the journal; the gateway's gap finder asks again after its `retry_s`.
- `trigger/set` is a request to inspect now and is not deduplicated: each one delivered starts an
  inspection (the trigger queue's bound and overflow policy apply). A PLC sends one per core.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Callable
from typing import Any

from edge.contract import (
    AckCommand,
    ContractViolation,
    FrameRequest,
    LabelCommand,
    ModelCommand,
    OverrideCommand,
    RecordsRequest,
    Topics,
    TriggerCommand,
    parse_command,
)
from edge.events import Events

log = logging.getLogger("reman.commands")

PREVIEW_BYTES = 64
BUDGET_EVENT_S = 60.0  # of records/get refused over budget, one event in this long

Handler = Callable[[Any], Any]  # may return an awaitable; it is run as a task


class CommandRouter:
    """Validates command payloads and calls the node's handlers."""

    def __init__(
        self,
        events: Events,
        topics: Topics,
        *,
        on_trigger: Callable[[TriggerCommand], Any] | None = None,
        on_ack: Callable[[AckCommand], Any] | None = None,
        on_override: Callable[[OverrideCommand], Any] | None = None,
        on_label: Callable[[LabelCommand], Any] | None = None,
        on_frame_request: Callable[[FrameRequest], Any] | None = None,
        on_model: Callable[[ModelCommand], Any] | None = None,
        on_records_request: Callable[[RecordsRequest], Any] | None = None,
        override_users: list[str] | None = None,
        records_per_minute: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.events = events
        self.topics = topics
        self.handlers: dict[str, Handler | None] = {
            "trigger/set": on_trigger,
            "ack/set": on_ack,
            "override/set": on_override,
            "label/set": on_label,
            "frame/get": on_frame_request,
            "model/set": on_model,
            "records/get": on_records_request,
        }
        self.override_users = None if override_users is None else set(override_users)
        self.records = Budget(records_per_minute, clock)
        self.accepted = 0
        self.rejected = 0
        self._over_budget = 0  # refusals counted since the last such event
        self._over_budget_event: float | None = None  # when that event was
        self._tasks: set[asyncio.Task] = set()

    def handle(self, kind: str, payload: bytes) -> bool:
        """Validate and dispatch one command; True when a handler took it."""
        try:
            command = parse_command(kind, payload)
            self._authorise(command)
        except ContractViolation as exc:
            self._reject(kind, payload, str(exc))
            return False
        handler = self.handlers.get(kind)
        if handler is None:
            self._reject(kind, payload, "this node does not handle the command")
            return False
        if isinstance(command, RecordsRequest) and not self._within_budget(command, payload):
            return False
        self.accepted += 1
        return self._dispatch(kind, handler, command)

    def _authorise(self, command: object) -> None:
        guarded = OverrideCommand | LabelCommand | ModelCommand
        if not isinstance(command, guarded) or self.override_users is None:
            return
        if command.user not in self.override_users:
            raise ContractViolation(f"user {command.user!r} may not {_what(command)}")

    def _within_budget(self, command: RecordsRequest, payload: bytes) -> bool:
        asked = command.to_seq - command.from_seq + 1
        if self.records.take(asked):
            return True
        self.rejected += 1
        now = self.records.clock()
        last = self._over_budget_event
        if last is not None and now - last < BUDGET_EVENT_S:
            self._over_budget += 1
            return False
        since, self._over_budget, self._over_budget_event = self._over_budget, 0, now
        reason = (
            f"{command.user} asked for {asked} inspections, over the budget of "
            f"{self.records.per_minute} a minute (commands.records_per_minute); ask again later"
        )
        self._reject_event("records/get", payload, reason, refused_since_last=since)
        return False

    def _reject(self, kind: str, payload: bytes, reason: str) -> None:
        self.rejected += 1
        self._reject_event(kind, payload, reason)

    def _reject_event(self, kind: str, payload: bytes, reason: str, **detail: Any) -> None:
        self.events.warning(
            "command_rejected",
            f"refused {kind}: {reason}",
            topic=self._topic(kind),
            reason=reason,
            size=len(payload),
            payload_start=payload[:PREVIEW_BYTES].decode("ascii", errors="backslashreplace"),
            **detail,
        )

    def _dispatch(self, kind: str, handler: Handler, command: object) -> bool:
        try:
            outcome = handler(command)
        except Exception as exc:  # root of a command: report it, keep the node running
            self._failed(kind, exc)
            return False
        if inspect.isawaitable(outcome):
            task = asyncio.ensure_future(outcome)
            self._tasks.add(task)
            task.add_done_callback(lambda t: self._task_done(kind, t))
        return True

    def _task_done(self, kind: str, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            self._failed(kind, exc)

    def _failed(self, kind: str, exc: BaseException) -> None:
        log.error("command handler for %s failed", kind, exc_info=exc)
        self.events.error(
            "command_failed",
            f"{kind} could not be carried out: {exc}",
            topic=self._topic(kind),
            error=exc,
        )

    def _topic(self, kind: str) -> str:
        try:
            return self.topics.topic(kind)
        except ContractViolation:
            return kind


class Budget:
    """A bucket of `per_minute` units that refills evenly; `take(n)` spends n when it holds n."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._held = float(per_minute)
        self._at = clock()

    def take(self, units: int) -> bool:
        now = self.clock()
        self._held = min(self.per_minute, self._held + (now - self._at) * self.per_minute / 60)
        self._at = now
        if units > self._held:
            return False
        self._held -= units
        return True


def _what(command: OverrideCommand | LabelCommand | ModelCommand) -> str:
    if isinstance(command, OverrideCommand):
        return "override"
    return "label" if isinstance(command, LabelCommand) else "change models"
