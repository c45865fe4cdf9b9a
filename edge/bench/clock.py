"""The bench's clock against the node's: measured, used to correct source timestamps, reported once.

The skew is the node's wall clock minus the bench's (Server_ServerStatus_CurrentTime, read in
one request; the round trip's middle is taken as the moment it was read): positive when the
bench is behind. A skew beyond `max_clock_skew_s` is one `clock_skew` warning; it is not raised
again while the clocks stay apart, except as a reminder every `REMIND_S` (6 hours). When the skew
falls below half the limit (so a skew hovering at the limit does not flap) that is one
`clock_skew_recovered` info event, and a later skew is a new `clock_skew` warning.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime
from typing import Any

from asyncua import ua

from edge.bench import connection
from edge.bench.nodeids import node_id
from edge.contract.timefmt import UTC
from edge.events import Events

log = logging.getLogger("reman.bench")

REMIND_S = 6 * 3600.0
CURRENT_TIME = node_id(ua.ObjectIds.Server_ServerStatus_CurrentTime)


def skew_of(bench_time: datetime, sent: datetime, received: datetime) -> float:
    """Seconds the node's clock is ahead of the bench's, given a read sent and answered then."""
    moment = bench_time if bench_time.tzinfo else bench_time.replace(tzinfo=UTC)
    middle = sent + (received - sent) / 2
    return (middle - moment).total_seconds()


async def read_skew(client: Any) -> float | None:
    """The skew read from a connected asyncua client; None when the bench has no CurrentTime."""
    sent = datetime.now(UTC)
    values = await client.uaclient.read_attributes([CURRENT_TIME], ua.AttributeIds.Value)
    received = datetime.now(UTC)
    value = values[0].Value.Value if values and values[0].Value is not None else None
    if not isinstance(value, datetime):
        return None
    return skew_of(value, sent, received)


class ClockWatch:
    """Keeps the latest skew and raises the clock_skew events."""

    def __init__(self, max_skew_s: float, events: Events):
        self.max_skew_s = max_skew_s
        self.events = events
        self.skew_s: float | None = None
        self._skewed = False
        self._warned_at = 0.0  # monotonic

    async def measure(self, client: Any) -> None:
        """Read the bench's clock once and take the skew (a failed read keeps the last one)."""
        try:
            skew = await read_skew(client)
        except (*connection.TRANSPORT_ERRORS, *connection.UA_ERRORS) as exc:
            log.info("cannot read the bench's clock: %s", exc)
            return
        if skew is not None:
            self.update(skew)

    async def watch(self, link: Any, interval_s: float) -> None:
        """Measure every interval_s while the link is up (a task of the link's holder; the
        first measurement is taken at connect, before any value is judged)."""
        while not link.lost.is_set():
            await asyncio.sleep(interval_s)
            await self.measure(link.client)

    def update(self, skew_s: float) -> None:
        """Take a new measurement; raise or clear the skew event."""
        self.skew_s = skew_s
        now = time.monotonic()
        if abs(skew_s) > self.max_skew_s:
            if not self._skewed or now - self._warned_at >= REMIND_S:
                self._warn(skew_s)
                self._warned_at = now
            self._skewed = True
        elif self._skewed and abs(skew_s) <= self.max_skew_s / 2:
            self._skewed = False
            self.events.info(
                "clock_skew_recovered",
                f"the bench's clock is within {abs(skew_s):.1f} s of the node's again",
                skew_s=round(skew_s, 3),
            )

    def _warn(self, skew_s: float) -> None:
        side = "behind" if skew_s > 0 else "ahead of"
        self.events.warning(
            "clock_skew",
            f"the bench's clock is {abs(skew_s):.1f} s {side} the node's (limit "
            f"{self.max_skew_s:g} s); staleness uses the node's receive time, source "
            "timestamps in records are the bench's",
            skew_s=round(skew_s, 3),
            max_clock_skew_s=self.max_skew_s,
        )
