"""Events: warnings and errors worth an engineer's look.

Every part of the node reports through an `Events` object handed to it. An event is logged at
once and passed to every sink (the journal writes it with an outbox row for the `event` topic;
tests add a list). A sink that fails is logged and never stops the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from edge.contract import Event
from edge.contract.timefmt import utc_now
from edge.ids import new_id

log = logging.getLogger("reman.events")

Level = Literal["info", "warning", "error"]
Sink = Callable[[Event], None]

_LOG_LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class Events:
    """Creates, logs and fans out events for one station."""

    def __init__(self, station: str, sinks: list[Sink] | None = None):
        self.station = station
        self._sinks: list[Sink] = list(sinks or [])

    def add_sink(self, sink: Sink) -> None:
        """Also deliver every later event to `sink`."""
        self._sinks.append(sink)

    def emit(self, level: Level, code: str, message: str, /, **detail: Any) -> Event:
        """Record one event; returns it. `detail` may use any key, `code` and `message` too."""
        event = Event(
            id=new_id(),
            ts=utc_now(),
            station=self.station,
            level=level,
            code=code,
            message=message,
            detail=_plain(detail),
        )
        log.log(_LOG_LEVELS[level], "%s: %s %s", code, message, detail or "")
        for sink in self._sinks:
            try:
                sink(event)
            except Exception:  # a broken sink must not break the part that reported
                log.exception("event sink %r failed", sink)
        return event

    def info(self, code: str, message: str, /, **detail: Any) -> Event:
        return self.emit("info", code, message, **detail)

    def warning(self, code: str, message: str, /, **detail: Any) -> Event:
        return self.emit("warning", code, message, **detail)

    def error(self, code: str, message: str, /, **detail: Any) -> Event:
        return self.emit("error", code, message, **detail)


def _plain(detail: dict[str, Any]) -> dict[str, Any]:
    """Detail values as JSON-friendly types (repr for anything else)."""
    out: dict[str, Any] = {}
    for key, value in detail.items():
        if value is None or isinstance(value, bool | int | float | str):
            out[key] = value
        elif isinstance(value, list | tuple):
            out[key] = [
                v if isinstance(v, bool | int | float | str) or v is None else repr(v)
                for v in value
            ]
        elif isinstance(value, dict):
            out[key] = {
                str(k): v if isinstance(v, bool | int | float | str) or v is None else repr(v)
                for k, v in value.items()
            }
        else:
            out[key] = (
                repr(value)
                if not isinstance(value, BaseException)
                else f"{type(value).__name__}: {value}"
            )
    return out
