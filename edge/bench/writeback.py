"""Writing a result into the PLC over OPC UA, as one consistent set, retried without blocking.

Order of one try (docs/plc.md draws it):

1. `result_ready` := false (its own Write request), so a PLC never reads a half-written set;
2. `code`, `credit`, `err`, `revision`, `core_id`, `seq` in one Write request, in that order;
3. `result_ready` := true (its own request), the PLC's signal that the set is consistent.

Only the configured keys are written. `submit` starts the first try and waits for it (the
station bounds that wait); a try that fails is a `bench_writeback_failed` event (a warning while
the bench is unreachable, an error when it refused the write: a node, type or permission that an
integrator must fix) and is retried with doubling delays up to `writeback_attempts` tries, then
`bench_writeback_gave_up`. A retry that succeeds is `bench_writeback_recovered`. A newer result
supersedes one still being retried (the PLC wants the newest). A result written with
result_ready true is reported to the handshake (`result_written`), which starts the ack timer
when `handshake.ack` is opcua.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from asyncua import ua

from edge.config.station import BenchConfig
from edge.contract import AckCommand
from edge.errors import BenchError, BenchUnavailable
from edge.events import Events, Level

FIRST_RETRY_S = 0.5
_INT32 = ("code", "credit", "err", "revision", "seq")


class AckSink(Protocol):
    """The handshake as the bench client sees it."""

    def ack(self, command: AckCommand, source: Any = "mqtt") -> bool: ...

    def result_written(self, seq: int) -> None: ...


@dataclass(frozen=True)
class ResultWrite:
    """One result as the PLC reads it over OPC UA."""

    code: int
    credit: int
    seq: int
    err: int = 0
    core_id: str | None = None
    revision: int = 1  # the record's: 1 for the inspection, 2, 3, ... after each override

    def variants(self, keys: set[str]) -> dict[str, ua.Variant]:
        """The set's values for the configured keys, typed as the PLC's tags are, in order."""
        out: dict[str, ua.Variant] = {}
        for key in ("code", "credit", "err", "revision", "core_id", "seq"):
            if key not in keys:
                continue
            if key in _INT32:
                out[key] = ua.Variant(int(getattr(self, key)), ua.VariantType.Int32)
            else:
                out[key] = ua.Variant(self.core_id or "", ua.VariantType.String)
        return out


WriteFn = Callable[[dict[str, ua.Variant]], Awaitable[None]]


class Writer:
    """Writes result sets through `write`, retrying failed ones in the background."""

    def __init__(
        self,
        config: BenchConfig,
        events: Events,
        write: WriteFn,
        handshake: AckSink | None,
        stop: asyncio.Event,
    ):
        self.config = config
        self.events = events
        self.write = write
        self.handshake = handshake
        self.stop_event = stop
        self._latest: ResultWrite | None = None
        self._lock = asyncio.Lock()  # one set at a time, so two sets never interleave
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, job: ResultWrite) -> bool:
        """Start writing `job`; True when its first try succeeded."""
        keys = set(self.config.writeback)
        if not keys - {"result_ready"}:
            return True
        self._latest = job
        first: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._deliver(job, first), name=f"bench-writeback-{job.seq}")
        self._tasks.add(task)  # strong reference until done
        task.add_done_callback(self._tasks.discard)
        return await asyncio.shield(first)

    async def stop(self) -> None:
        """End every retry (node shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _deliver(self, job: ResultWrite, first: asyncio.Future[bool]) -> None:
        delay_s = FIRST_RETRY_S
        try:
            for attempt in range(1, self.config.writeback_attempts + 1):
                try:
                    await self._write_set(job)
                except BenchError as exc:
                    if not first.done():
                        first.set_result(False)
                        self._failed(job, exc)
                    if not await self._retry_after(job, attempt, delay_s, exc):
                        return
                    delay_s = min(delay_s * 2, self.config.writeback_retry_max_s)
                    continue
                self._written(job, first, attempt)
                return
        finally:
            if not first.done():
                first.set_result(False)

    async def _write_set(self, job: ResultWrite) -> None:
        keys = {str(k) for k in self.config.writeback}
        ready = "result_ready" in keys
        async with self._lock:
            if ready:
                await self.write({"result_ready": ua.Variant(False, ua.VariantType.Boolean)})
            await self.write(job.variants(keys))
            if ready:
                await self.write({"result_ready": ua.Variant(True, ua.VariantType.Boolean)})

    async def _retry_after(
        self, job: ResultWrite, attempt: int, delay_s: float, exc: BenchError
    ) -> bool:
        """Wait before the next try; False when there is none (given up, superseded, stopped)."""
        superseded = self._latest is not job
        if attempt >= self.config.writeback_attempts or superseded:
            why = "a newer result superseded it" if superseded else f"{attempt} tries failed"
            self.events.warning(
                "bench_writeback_gave_up",
                f"result {job.seq} (revision {job.revision}) not written to the bench: {why}; "
                f"last error: {exc}",
                seq=job.seq,
                revision=job.revision,
                attempts=attempt,
                superseded=superseded,
            )
            return False
        try:
            await asyncio.wait_for(self.stop_event.wait(), delay_s)
        except asyncio.TimeoutError:
            return True
        return False  # the node stops

    def _failed(self, job: ResultWrite, exc: BenchError) -> None:
        # Unreachable mends itself (retried, a warning); a refusal needs an integrator (error).
        level: Level = "warning" if isinstance(exc, BenchUnavailable) else "error"
        self.events.emit(
            level,
            "bench_writeback_failed",
            f"write-back of result {job.seq} failed, retrying: {exc}",
            seq=job.seq,
            disposition=job.code,
            revision=job.revision,
        )

    def _written(self, job: ResultWrite, first: asyncio.Future[bool], attempt: int) -> None:
        if first.done():
            self.events.info(
                "bench_writeback_recovered",
                f"result {job.seq} written to the bench at try {attempt}",
                seq=job.seq,
                revision=job.revision,
                attempts=attempt,
            )
        else:
            first.set_result(True)
        if self.handshake is not None and job.revision <= 1:
            self.handshake.result_written(job.seq)
