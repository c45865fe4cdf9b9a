"""Gaps in a station's seqs: the inspections that never arrived, asked for again with `records/get`.

Every inspection a node journals takes the next seq of its station, with none skipped (a node
killed mid-record burns no seq). A seq that is missing from what the gateway stored while later
ones arrived is a record lost on the way: a plant broker killed before it saved what it had
acknowledged, a bridge or a broker restarted without persistence. The node still holds it in its
journal, so the gateway asks for it:

    SeqGaps(baseline, request, warn)   one per gateway; `observe(batch)` after each commit (the
                                       writer's listener), `tick()` once a second (a thread)

- Tracking of a station starts with the first inspection the gateway stores from it: the
  highest seq already in the store below that one is the baseline (none: the station's records
  before it are not asked for; `reman journal republish` fills a new gateway from scratch).
- A run of missing seqs is asked for once it has been missing for `grace_s` (QoS 1 redelivery
  may reorder a little), at most MAX_RECORDS_PER_REQUEST seqs a request, again every `retry_s`
  while any of it is missing, at most `tries` times; then a `records_missing` warning says which
  ones never came, and they are no longer waited for.
- The node answers from its journal and then says what it sent in a `records_resent` event,
  which reaches the gateway after the records it sent (one outbox, in order): seqs of the run
  still missing then are not in the journal (pruned by retention), so they get the warning at
  once instead of being asked for again.
- A seq at or below what is already complete is a repeat or a `reman journal republish` of old
  records: stored, not tracked. A node whose journal was replaced starts again at seq 1; its
  gaps are found once its seqs pass the old journal's (noted in docs/plant.md).
- The latest seqs too: each `stats` message carries the node's `last_seq`, so a record lost
  after the station's last one (the end of a shift, a station gone quiet) is asked for like any
  other run once it has been missing for `grace_s`, without waiting for a later record. A
  `last_seq` more than MAX_GAP ahead is left to the record-based check.
- The tracker's state is in memory: after a gateway restart, tracking starts again from the
  store as above, so a gap left open across the restart is found again when the station's next
  record arrives.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from edge.contract import Event
from edge.contract.messages import MAX_RECORDS_PER_REQUEST
from edge.contract.timefmt import utc_now
from gateway.errors import GatewayError
from gateway.store import Batch

log = logging.getLogger("reman.gateway.gaps")

MAX_RUNS = 10
"""Runs of one station asked for at once; the next ones once these have come."""
MAX_GAP = 100_000
"""A jump wider than this is not records lost on the way (a journal restored from an old copy,
or another node under the same station id): it is reported, not asked for."""

Baseline = Callable[[str, int], int | None]
"""(station, first seq seen) -> the highest stored seq below it, or None."""
Request = Callable[[str, int, int], None]
"""(station, from_seq, to_seq): publish `records/get`; raises GatewayError when not sent."""
Warn = Callable[[Event], None]
"""Store a gateway event (through the writer)."""


@dataclass
class _Ask:
    """One missing run being asked for: when it was first seen missing, tries, next ask."""

    seen: float
    next_at: float
    tries: int = 0


@dataclass
class _Station:
    upto: int  # every seq at or below is stored (or given up on)
    ahead: list[int] = field(default_factory=list)  # sorted seqs stored beyond upto + 1
    asks: dict[int, _Ask] = field(default_factory=dict)  # by the run's first seq
    horizon: int = 0  # the highest seq the node said it journaled (stats.last_seq)

    def heard(self, last_seq: int) -> None:
        """The node's journal reaches `last_seq`: anything above what is stored is missing."""
        if last_seq - self.upto <= MAX_GAP:  # a wider jump waits for a record (see jump)
            self.horizon = max(self.horizon, last_seq)

    def add(self, seq: int) -> None:
        if seq <= self.upto:
            return
        i = bisect.bisect_left(self.ahead, seq)
        if i == len(self.ahead) or self.ahead[i] != seq:
            self.ahead.insert(i, seq)
        self._advance()

    def _advance(self) -> None:
        n = 0
        while n < len(self.ahead) and self.ahead[n] == self.upto + 1:
            self.upto += 1
            n += 1
        if n:
            del self.ahead[:n]
            for first in [f for f in self.asks if f <= self.upto]:
                del self.asks[first]

    def missing(self, most: int = MAX_RUNS) -> list[tuple[int, int]]:
        """The first `most` runs of missing seqs (first, last), oldest first, each at most one
        request; up to the horizon when the node said its journal goes further."""
        runs: list[tuple[int, int]] = []
        expect = self.upto + 1
        top = self.ahead[-1] if self.ahead else self.upto
        ends = [*self.ahead, self.horizon + 1] if self.horizon > top else self.ahead
        for seq in ends:
            for first in range(expect, seq, MAX_RECORDS_PER_REQUEST):
                runs.append((first, min(seq - 1, first + MAX_RECORDS_PER_REQUEST - 1)))
                if len(runs) == most:
                    return runs
            expect = seq + 1
        return runs

    def jump(self) -> tuple[int, int] | None:
        """The gap before the first seq ahead when it is wider than MAX_GAP, else None."""
        if self.ahead and self.ahead[0] - self.upto - 1 > MAX_GAP:
            return self.upto + 1, self.ahead[0] - 1
        return None

    def give_up(self, first: int, last: int) -> None:
        for seq in range(first, last + 1):
            self.add(seq)
        self.asks.pop(first, None)


class SeqGaps:
    """The gateway's gap finder; see the module docstring."""

    def __init__(
        self,
        baseline: Baseline,
        request: Request,
        warn: Warn,
        *,
        grace_s: float = 5.0,
        retry_s: float = 30.0,
        tries: int = 4,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.baseline = baseline
        self.request = request
        self.warn = warn
        self.grace_s = grace_s
        self.retry_s = retry_s
        self.tries = tries
        self.clock = clock
        self.asked = 0
        self._lock = threading.Lock()
        self._stations: dict[str, _Station] = {}
        self._resent: list[tuple[str, int, int]] = []  # node said: run sent, check what is left

    def observe(self, batch: Batch) -> None:
        """After a commit: note the stored inspections' seqs and the nodes' `records_resent`."""
        firsts: dict[str, int] = {}
        for rec in batch.inspections:
            firsts[rec.station] = min(rec.seq, firsts.get(rec.station, rec.seq))
        starts = {
            station: self.baseline(station, seq)
            for station, seq in firsts.items()
            if station not in self._stations
        }
        with self._lock:
            for station, base in starts.items():
                if station not in self._stations:
                    self._stations[station] = _Station(
                        upto=base if base is not None else firsts[station] - 1
                    )
            for rec in batch.inspections:
                self._stations[rec.station].add(rec.seq)
            now = self.clock()
            for station in firsts:  # a run's grace counts from when it was seen missing
                known = self._stations[station]
                for first, _ in known.missing() if known.ahead else []:
                    known.asks.setdefault(first, _Ask(now, now + self.grace_s))
        heard = [(s.station, s.last_seq) for s in batch.stats if s.last_seq is not None]
        if heard:
            now = self.clock()
            with self._lock:
                for station, last_seq in heard:
                    tracked = self._stations.get(station)  # tracked stations only (see above)
                    if tracked is None:
                        continue
                    tracked.heard(last_seq)
                    for first, _ in tracked.missing():
                        tracked.asks.setdefault(first, _Ask(now, now + self.grace_s))
        for event in batch.events:
            if event.code == "records_resent":
                detail = event.detail or {}
                run = detail.get("from_seq"), detail.get("to_seq")
                if isinstance(run[0], int) and isinstance(run[1], int):
                    with self._lock:
                        self._resent.append((event.station, run[0], run[1]))

    def pending(self, station: str) -> list[tuple[int, int]]:
        """The runs of `station` still missing (for tests and the health page)."""
        with self._lock:
            known = self._stations.get(station)
            return known.missing() if known else []

    def tick(self) -> None:
        """Ask for the runs that are due; give up on those asked for `tries` times or that the
        node said it does not hold."""
        now = self.clock()
        due: list[tuple[str, int, int]] = []
        lost: list[tuple[str, int, int, str]] = []
        with self._lock:
            resent, self._resent = self._resent, []
            for station, first, last in resent:
                known = self._stations.get(station)
                if known is None:
                    continue
                for a, b in known.missing():
                    lo, hi = max(a, first), min(b, last)
                    if lo <= hi:
                        lost.append((station, lo, hi, "not in the station's journal"))
                        known.give_up(lo, hi)
            for station, known in self._stations.items():
                jump = known.jump()
                if jump is not None:
                    lost.append((station, *jump, f"the seqs jumped by more than {MAX_GAP}"))
                    known.upto = jump[1]
                    known.asks.clear()
                    known.add(jump[1] + 1)
                for first, last in known.missing():
                    ask = known.asks.setdefault(first, _Ask(now, now + self.grace_s))
                    if now < ask.next_at:
                        continue
                    if ask.tries >= self.tries:
                        lost.append((station, first, last, f"asked {ask.tries} times"))
                        known.give_up(first, last)
                        continue
                    ask.tries += 1
                    ask.next_at = now + self.retry_s
                    due.append((station, first, last))
        for station, first, last in due:
            try:
                self.request(station, first, last)
                self.asked += 1
                log.info("asked %s for inspections %d..%d again", station, first, last)
            except GatewayError as exc:  # broker away: the next try asks again
                log.warning(
                    "could not ask %s for inspections %d..%d: %s", station, first, last, exc
                )
        for station, first, last, why in lost:
            self.warn(missing_event(station, first, last, why))

    def run(self, stop: threading.Event, every_s: float = 1.0) -> None:
        """tick() every `every_s` until `stop` is set (the gateway's gap thread)."""
        while not stop.wait(every_s):
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the thread's root: log, keep ticking
                log.exception("finding missing inspections failed")


def missing_event(station: str, first: int, last: int, why: str) -> Event:
    """The `records_missing` warning of `station` for seqs `first`..`last`."""
    run = str(first) if first == last else f"{first}..{last}"
    return Event(
        id=uuid.uuid4().hex,
        ts=utc_now(),
        station=station,
        level="warning",
        code="records_missing",
        message=f"inspections {run} of {station} never reached the gateway ({why})",
        detail={"from_seq": first, "to_seq": last, "why": why},
    )
