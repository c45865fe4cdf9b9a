"""Each station's clock against the gateway's, read from its `stats` messages.

    clocks = ClockWatch(max_offset_s=60)
    event = clocks.observe(stats, received_ts)   # an Event to store, or None
    clocks.offset("st-1")                        # seconds the node's clock is behind (+) or ahead (-)

A node stamps `stats.ts` when it takes its figures; the gateway notes when the message arrives.
With nothing waiting in the node's outbox (`outbox_depth` 0) and its broker link up, the message
goes out at once, so the gateway's receive time minus that stamp is the node's clock offset plus
a few milliseconds of delivery: positive when the node's clock is behind. Figures taken behind a
backlog, or while the broker was away, say how late the delivery was, not where the clock is,
and are not used. `stats` go at QoS 0, which no broker or bridge of ours queues for a client
that is away (deploy/plant/station-bridge.conf), so none arrive late in a burst. When every
station seems off by the same amount, it is the gateway's own clock.

A node whose clock is off dates its inspections, events and passports wrongly, and its bench
staleness checks go by that clock too: a Raspberry Pi without a battery-backed clock that booted
with no time server in reach starts where it last stopped. Past `max_offset_s` either way the
station gets a `node_clock_offset` warning event, once, until its offset is back within the
limit (then `node_clock_ok`). The Health page shows each station's offset.
"""

from __future__ import annotations

import threading
import uuid

from edge.contract import Event, Stats
from edge.contract.timefmt import parse_ts, utc_now


class ClockWatch:
    """The latest usable clock offset of every station, and the events when one goes past the
    limit or comes back (thread-safe: paho's thread observes, web threads read)."""

    def __init__(self, max_offset_s: float = 60.0):
        self.max_offset_s = max_offset_s
        self._lock = threading.Lock()
        self._offsets: dict[str, float] = {}
        self._off: set[str] = set()

    def observe(self, stats: Stats, received_ts: str) -> Event | None:
        """Note `stats`' offset when it can be read from it; the event to store, if any."""
        if stats.outbox_depth != 0 or (stats.broker and stats.broker.state != "connected"):
            return None
        offset = (parse_ts(received_ts) - parse_ts(stats.ts)).total_seconds()
        station = stats.station
        with self._lock:
            self._offsets[station] = offset
            was_off = station in self._off
            now_off = abs(offset) > self.max_offset_s
            if now_off == was_off:
                return None
            (self._off.add if now_off else self._off.discard)(station)
        return self._event(station, offset, now_off)

    def offset(self, station: str) -> float | None:
        """Seconds `station`'s clock is behind the gateway's (negative: ahead); None unknown."""
        with self._lock:
            return self._offsets.get(station)

    def _event(self, station: str, offset: float, off: bool) -> Event:
        where = describe(offset)
        if off:
            message = (
                f"the station's clock is {where} the gateway's (limit {self.max_offset_s:g} s): "
                "its inspections, events and passports carry that time; set up a time server "
                "(NTP) the node can reach"
            )
        else:
            message = (
                f"the station's clock is within {self.max_offset_s:g} s of the gateway's again"
            )
        return Event(
            id=uuid.uuid4().hex,
            ts=utc_now(),
            station=station,
            level="warning" if off else "info",
            code="node_clock_offset" if off else "node_clock_ok",
            message=message,
            detail={"offset_s": round(offset, 3), "max_offset_s": self.max_offset_s},
        )


def describe(offset_s: float) -> str:
    """`2 h 05 min behind`, `40 s ahead of`: an offset as the event's text says it (English)."""
    return f"{amount(offset_s)} {'behind' if offset_s > 0 else 'ahead of'}"


def amount(offset_s: float) -> str:
    """The size of an offset: `3 d 04 h`, `2 h 05 min`, `3 min 20 s`, `40 s`."""
    size = abs(offset_s)
    if size >= 86400:
        return f"{int(size // 86400)} d {int(size % 86400 // 3600):02d} h"
    if size >= 3600:
        return f"{int(size // 3600)} h {int(size % 3600 // 60):02d} min"
    if size >= 60:
        return f"{int(size // 60)} min {int(size % 60):02d} s"
    return f"{size:.0f} s"
