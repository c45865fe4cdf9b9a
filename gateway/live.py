"""Live updates for the pages: the batch writer announces what it wrote; SSE streams relay it.

The writer runs in its own thread; `publish` hands each announcement to the web server's event
loop with `call_soon_threadsafe`. Every subscriber has a bounded queue; when a slow browser lets
it fill, the oldest announcement is dropped (the page refetches its panel on the next one).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

from gateway.store import Batch

QUEUE_SIZE = 100


@dataclass(frozen=True)
class Announcement:
    """Something new at a station: kind is inspection, health, event or snapshot."""

    kind: str
    station: str
    id: str | None = None

    def sse(self) -> str:
        """The announcement as one server-sent event."""
        data = json.dumps({"station": self.station, "id": self.id})
        return f"event: {self.kind}\ndata: {data}\n\n"


def announcements(batch: Batch) -> list[Announcement]:
    """What a written batch means for the pages."""
    out = [Announcement("inspection", r.station, r.id) for r in batch.inspections]
    out += [Announcement("health", station, None) for station, _, _ in batch.available]
    out += [Announcement("health", s.station, None) for s in batch.stats]
    out += [Announcement("event", e.station, e.id) for e in batch.events]
    out += [Announcement("snapshot", station, name) for name, station, _, _ in batch.snapshots]
    # a station's registry changed, or its shadow model graded a core: its models page
    out += [Announcement("models", state.station, None) for state, _ in batch.models]
    out += [Announcement("models", report.station, None) for report in batch.shadows]
    return out


class Broadcaster:
    """Fans announcements out to the SSE subscribers on one event loop."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: set[asyncio.Queue[Announcement | None]] = set()
        self.closed = False

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Use `loop` (the web server's) for delivery."""
        self._loop = loop
        self.closed = False

    def subscribe(self) -> asyncio.Queue[Announcement | None]:
        """A new subscriber's queue (on the loop); None in it means the server is stopping."""
        queue: asyncio.Queue[Announcement | None] = asyncio.Queue(QUEUE_SIZE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue) -> None:
        """Forget a subscriber."""
        self._subscribers.discard(queue)

    def on_written(self, batch: Batch) -> None:
        """BatchWriter hook (writer thread): announce what was written."""
        items = announcements(batch)
        if items:
            self._call(self._deliver, items)

    def close(self) -> None:
        """Tell every stream to end (any thread)."""
        self.closed = True
        self._call(self._deliver, [None])

    def _call(self, fn, arg) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(fn, arg)
            except RuntimeError:  # the loop closed between the check and the call
                pass

    def _deliver(self, items: list[Announcement | None]) -> None:
        for queue in list(self._subscribers):
            for item in items:
                if queue.full():
                    queue.get_nowait()
                queue.put_nowait(item)
