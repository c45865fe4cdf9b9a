"""The PLC handshake: result published (retained) with its seq, then `ack/set` with that seq.

1. The node commits an inspection; its `result` goes out through the outbox (QoS 1, retained).
2. When the broker acknowledged the result (the publisher's `on_delivered`), the handshake starts
   a timer of `ack_timeout_s` for that seq; `pending_seq` is the newest unacknowledged seq.
3. The PLC reads the result, diverts the core, and publishes `{"seq": N}` on `ack/set`.
4. An ack in time clears the seq. No ack in time is an `ack_timeout` event (warning). An ack
   after the timeout is an `ack_late` event; an ack for a seq never published (or already
   acknowledged) is an `ack_unknown` (or `ack_repeated`) event. Acknowledging twice changes
   nothing more.

A newer result does not cancel the timer of an older one: each seq must be acknowledged.

`source` (the config's `handshake.ack`) says where acks come from. `mqtt`: the timer starts when
the broker confirmed the result, acks come from `ack/set`. `opcua`: the timer starts when the
bench client wrote the result with result_ready true (`result_written`), acks come from the
bench's ack node; an `ack/set` is then ignored (an `ack_ignored` event). `none`: no timer and no
ack events at all. Either way the same rules (on time, late, unknown, repeated) apply.

A quick PLC can acknowledge a result before the broker's PUBACK for it has reached the node (the
broker forwards to subscribers and acknowledges the publisher at about the same time). Such an
early ack is held for `ack_timeout_s`: it clears the seq when its delivery is confirmed, and is
reported as `ack_unknown` only if no result with that seq is confirmed in that time.
"""

from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from typing import Literal

from edge.contract import AckCommand
from edge.events import Events
from edge.journal.outbox import OutboxRow

AckSource = Literal["mqtt", "opcua", "none"]

REMEMBERED = 1000  # acknowledged and timed-out seqs remembered, to tell late from unknown acks


class Handshake:
    """Tracks results awaiting the PLC's acknowledgement."""

    def __init__(self, events: Events, ack_timeout_s: float, source: AckSource = "mqtt"):
        self.events = events
        self.ack_timeout_s = ack_timeout_s
        self.source = source
        self._waiting: OrderedDict[int, asyncio.TimerHandle] = OrderedDict()
        self._acked: OrderedDict[int, None] = OrderedDict()
        self._timed_out: OrderedDict[int, None] = OrderedDict()
        self._early: OrderedDict[int, asyncio.TimerHandle] = OrderedDict()

    @property
    def pending_seq(self) -> int | None:
        """The newest published seq not yet acknowledged (None when all are)."""
        return next(reversed(self._waiting), None)

    def acknowledged(self, seq: int) -> bool:
        """True when the PLC acknowledged `seq` (on time or late), among the last REMEMBERED."""
        return seq in self._acked

    @property
    def waiting(self) -> list[int]:
        """Every published seq awaiting its ack, oldest first."""
        return list(self._waiting)

    def on_delivered(self, row: OutboxRow) -> None:
        """Publisher hook: start waiting when a `result` row was acknowledged by the broker."""
        if row.kind != "result" or self.source != "mqtt":
            return
        try:
            seq = int(json.loads(row.payload)["seq"])
        except (ValueError, KeyError, TypeError):
            self.events.error(
                "result_unreadable", "a published result has no readable seq", outbox_id=row.id
            )
            return
        self.result_published(seq)

    def result_written(self, seq: int) -> None:
        """Bench hook: the result with `seq` was written to the PLC over OPC UA (ack opcua)."""
        if self.source == "opcua":
            self.result_published(seq)

    def result_published(self, seq: int) -> None:
        """Expect `ack/set` with `seq` within `ack_timeout_s`."""
        if seq in self._waiting or seq in self._acked:
            return  # a resend of the same result
        early = self._early.pop(seq, None)
        if early is not None:
            early.cancel()
            _remember(self._acked, seq)
            return
        loop = asyncio.get_running_loop()
        self._waiting[seq] = loop.call_later(self.ack_timeout_s, self._timeout, seq)

    def ack(self, command: AckCommand, source: AckSource = "mqtt") -> bool:
        """Take the PLC's acknowledgement from `source`; True when it cleared a waiting seq.
        An ack from a source other than the configured one changes nothing (an event)."""
        if source != self.source:
            self.events.info(
                "ack_ignored",
                f"ack for seq {command.seq} over {source} ignored: handshake.ack is {self.source}",
                seq=command.seq,
                source=source,
            )
            return False
        seq = command.seq
        timer = self._waiting.pop(seq, None)
        if timer is not None:
            timer.cancel()
            _remember(self._acked, seq)
            return True
        self._odd_ack(seq)
        return False

    def close(self) -> None:
        """Cancel every timer (node shutdown)."""
        for timer in [*self._waiting.values(), *self._early.values()]:
            timer.cancel()
        self._waiting.clear()
        self._early.clear()

    def _odd_ack(self, seq: int) -> None:
        if seq in self._timed_out:
            self._timed_out.pop(seq)
            _remember(self._acked, seq)
            self.events.info(
                "ack_late",
                f"result {seq} acknowledged after the {self.ack_timeout_s:g} s timeout",
                seq=seq,
            )
        elif seq in self._acked:
            self.events.info("ack_repeated", f"result {seq} acknowledged again", seq=seq)
        elif seq not in self._early:
            loop = asyncio.get_running_loop()
            self._early[seq] = loop.call_later(self.ack_timeout_s, self._unknown, seq)
            while len(self._early) > REMEMBERED:
                self._early.popitem(last=False)[1].cancel()

    def _unknown(self, seq: int) -> None:
        if self._early.pop(seq, None) is not None:
            self.events.warning(
                "ack_unknown",
                f"ack for seq {seq}, which is not awaiting one",
                seq=seq,
                waiting=self.waiting[-10:],
            )

    def _timeout(self, seq: int) -> None:
        if self._waiting.pop(seq, None) is None:
            return
        _remember(self._timed_out, seq)
        self.events.warning(
            "ack_timeout",
            f"the PLC did not acknowledge result {seq} within {self.ack_timeout_s:g} s",
            seq=seq,
            ack_timeout_s=self.ack_timeout_s,
        )


def _remember(seqs: OrderedDict[int, None], seq: int) -> None:
    seqs[seq] = None
    while len(seqs) > REMEMBERED:
        seqs.popitem(last=False)
