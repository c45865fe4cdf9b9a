"""The station loop: trigger → capture → core id → grade → bench snapshot → decide → journal → publish.

    station = Station(config, grader=..., camera=..., bench=..., families=..., journal=...,
                      events=..., publisher=..., health=..., executor=...)
    station.trigger(core_id="HGP-000123")          # or MQTT trigger/set, a bench edge, an interval
    await station.run(stop)                         # until stop is set; finishes the inspection in hand

One inspection at a time. Triggers wait in a bounded `TriggerQueue`; one that finds it full is
handled by the configured overflow policy (`drop_new`: the new one is refused; `drop_oldest`:
the oldest waiting one makes room) and is always an event. Triggers still waiting at shutdown
are reported the same way.

Every inspection ends in exactly one journal transaction holding the record and its outbox
messages (result, inspection), and the publisher is woken. The image files (each view as taken,
its annotated overlay) and the snapshot message come after, off the path to the PLC: encoded and
written on the executor while the result goes out, then registered in a second transaction,
always before the next record is committed, so the outbox keeps each record's messages together
and in order. A node stopped in between leaves the record without those files; at the next start
the station registers whichever reached the disk and raises `images_not_written` for the others
(see edge.journal.journal). Whatever goes wrong (camera,
unreadable image, model, bench) becomes a REVIEW reason; only an unexpected failure gives a
result with code 0 and err INSPECTION_FAILED, which is journaled and published like any other.
OpenCV, zxing and onnxruntime work runs on the executor (they release the GIL); the journal is
written on the event loop's thread, which owns it.

Each inspection grades with the model that was active when it started: `use_grader` swaps the
model between inspections (a promote or rollback over `model/set`), and the record names the
model that decided. `frame/get` is answered on `frame` with the raw frame and the active model's
masks (edge.station.frames), drawn on the executor, never holding up an inspection for long.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config.station import StationConfig
from edge.contract import (
    MAX_FRAME_BYTES,
    Credit,
    DecisionInfo,
    DefectResult,
    Disposition,
    FrameReply,
    FrameRequest,
    InspectionRecord,
    LabelCommand,
    Measurement,
    ModelInfo,
    OverrideCommand,
    Reason,
    Result,
    ResultError,
    RulesInfo,
    ShadowReport,
    Topics,
    TriggerCommand,
)
from edge.contract.timefmt import UTC, utc_now
from edge.decision.families import FamilySet
from edge.decision.limits import limits_of
from edge.decision.rules import OUT_OF_DISTRIBUTION, UNREADABLE, decide, impact, rules_version
from edge.errors import CameraError, ImageUnreadable, JournalError
from edge.events import Events
from edge.ids import new_id
from edge.journal.journal import (
    OVERLAY_SUFFIX,
    Drafted,
    ImageFile,
    Journal,
    PendingTrigger,
    image_file,
    write_image,
)
from edge.journal.labels import Label, add_label
from edge.journal.outbox import OutboxMessage
from edge.station import quality
from edge.station.camera import Camera, Frame
from edge.station.coreid import CoreIdOutcome, resolve_core_id
from edge.station.frames import draw_frame, frame_reply, raw_frame_path, refused_reply
from edge.station.grades import defects_of
from edge.station.health import Health
from edge.station.shadow import Shadow, ShadowInput
from vision.errors import VisionError

log = logging.getLogger("reman.station")

JPEG_QUALITY = 90
BENCH_WRITEBACK_TIMEOUT_S = 5.0


# ---------------------------------------------------------------- triggers


@dataclass(frozen=True)
class Trigger:
    """A request to inspect the core at the station now."""

    source: str  # mqtt, bench, interval or api
    core_id: str | None = None
    part_number: str | None = None
    received: float = field(default_factory=time.monotonic)  # for trigger-to-result latency
    ts: str = field(default_factory=utc_now)
    id: str = field(default_factory=new_id)  # journaled while it is inspected

    def pending(self) -> PendingTrigger:
        """The trigger as the journal keeps it while it is inspected."""
        return PendingTrigger(self.id, self.source, self.core_id, self.part_number, self.ts)


class TriggerQueue:
    """Triggers waiting while an inspection runs: bounded, with a named overflow policy."""

    def __init__(self, size: int, overflow: str, events: Events):
        if overflow not in ("drop_new", "drop_oldest"):
            raise ValueError(f"unknown overflow policy {overflow!r}")
        self.size = size
        self.overflow = overflow
        self.events = events
        self.dropped = 0
        self.closed_because: str | None = None  # set once the station takes no more triggers
        self._items: deque[Trigger] = deque()
        self._ready = asyncio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def put(self, trigger: Trigger) -> bool:
        """Queue a trigger; False when the policy refused this one (an event says so)."""
        if self.closed_because is not None:
            self._dropped(trigger, self.closed_because)
            return False
        if len(self._items) < self.size:
            self._items.append(trigger)
            self._ready.set()
            return True
        if self.overflow == "drop_new":
            self._dropped(trigger, "the trigger queue is full")
            return False
        self._dropped(self._items.popleft(), "a newer trigger took its place in the full queue")
        self._items.append(trigger)
        return True

    async def get(self) -> Trigger:
        """The oldest waiting trigger, waiting for one if none is there."""
        while not self._items:
            self._ready.clear()
            await self._ready.wait()
        return self._items.popleft()

    def close(self, why: str) -> int:
        """Take no more triggers; drop the waiting ones. Each gets an event saying `why`."""
        self.closed_because = why
        return self.drain(why)

    def drain(self, why: str) -> int:
        """Drop every waiting trigger with an event each; how many."""
        count = 0
        while self._items:
            self._dropped(self._items.popleft(), why)
            count += 1
        return count

    def _dropped(self, trigger: Trigger, why: str) -> None:
        self.dropped += 1
        self.events.warning(
            "trigger_dropped",
            f"{trigger.source} trigger not inspected: {why}",
            source=trigger.source,
            core_id=trigger.core_id,
            received_ts=trigger.ts,
            policy=self.overflow,
            queue_size=self.size,
        )


# ---------------------------------------------------------------- what one inspection gathers


@dataclass
class _Work:
    """What one inspection has gathered so far."""

    trigger: Trigger
    started: float
    ts: str
    grader: Any  # the model active when the inspection started grades all of it
    model: ModelInfo | None
    timings: dict[str, float] = field(default_factory=dict)
    frames: list[Frame] = field(default_factory=list)
    image_problems: list[str] = field(default_factory=list)
    core: CoreIdOutcome | None = None
    graded: Any = None  # vision.grader.CoreGrade
    measurements: dict[str, Measurement] = field(default_factory=dict)
    bench_core_id: str | None = None
    bench_link: str | None = None  # the link's state and since when, when it was not connected
    bench_part_number: str | None = None

    def lap(self, stage: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[stage] = round((now - since) * 1000, 3)
        return now


@dataclass(frozen=True)
class _Outcome:
    """A decided inspection waiting for its seq, which the journal gives it as it records it.

    `draft` has seq 0 and no image names; `numbered(seq)` gives the record (its image files
    named by day and seq under `images_dir`) and the result.
    """

    draft: InspectionRecord
    err: ResultError
    views: list[tuple[np.ndarray, Any]] = field(default_factory=list)  # (frame, graded view)
    images_dir: Path = Path(".")
    shadow: ShadowInput | None = None  # what the decision was made on, for a shadow model

    def numbered(self, seq: int) -> tuple[InspectionRecord, Result]:
        names = [f"{self.draft.ts[:10]}/{seq:08d}-{name}" for name in _view_files(len(self.views))]
        record = self.draft.model_copy(update={"seq": seq, "images": names})
        return record, _result(record, self.err)


def _remove_partial(path: Path) -> None:
    """Remove what a stopped write of `path` left (it never became `path`: writes are atomic)."""
    try:
        path.with_name(path.name + ".tmp").unlink(missing_ok=True)
    except OSError as exc:  # in the way of nothing: the next write of that name replaces it
        log.warning("cannot remove the partial image %s.tmp: %s", path, exc)


def _view_files(views: int) -> list[str]:
    """The file names of each view as taken and its overlay, in the order they are written."""
    return [
        name for v in range(1, views + 1) for name in (f"v{v}.jpg", f"v{v}{OVERLAY_SUFFIX}.jpg")
    ]


def _encode_and_write(
    views: list[tuple[np.ndarray, Any]], paths: list[Path], written: list[ImageFile]
) -> bytes | None:
    """Encode and write each view as taken and its overlay (executor), adding each file to
    `written` as it lands; the snapshot JPEG (the first overlay). JournalError when a file
    cannot be written."""
    from vision.overlay import render_overlay

    snapshot = None
    files = iter(paths)
    for frame, graded in views:
        ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        raw_path = next(files)
        if ok:
            written.append(write_image(raw_path, data.tobytes()))
        overlay = render_overlay(frame, graded)
        written.append(write_image(next(files), overlay))
        snapshot = overlay if snapshot is None else snapshot
    return snapshot


@dataclass(frozen=True)
class Inspected:
    """A finished inspection: the record as journaled and its trigger-to-commit latency."""

    record: InspectionRecord
    result: Result
    latency_ms: float


# ---------------------------------------------------------------- the station


class Station:
    """Runs inspections one at a time for one station; collaborators come in from outside."""

    def __init__(
        self,
        config: StationConfig,
        *,
        grader: Any,
        camera: Camera,
        families: FamilySet,
        journal: Journal,
        events: Events,
        executor: Executor,
        bench: Any = None,
        publisher: Any = None,
        health: Health | None = None,
        shadow: Shadow | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.config = config
        self.grader = grader
        self.camera = camera
        self.bench = bench
        self.families = families
        self.journal = journal
        self.events = events
        self.executor = executor
        self.publisher = publisher
        self.shadow: Shadow | None = None
        self.use_shadow(shadow)
        self.health = health or Health(config.station_id)
        self.clock = clock
        self.topics = Topics(config.station_id, config.mqtt.topic_prefix)
        self.triggers = TriggerQueue(config.trigger.queue_size, config.trigger.overflow, events)
        self.busy = False
        self.busy_since: float | None = None
        self.listeners: list[Callable[[Inspected], None]] = []
        self.model = _model_info(grader)
        self._images_job: asyncio.Task | None = None  # the last record's image files
        self._labels_waiting: asyncio.Future | None = None  # the last label waiting for them

    # ------------------------------------------------------------ models

    def use_grader(self, grader: Any) -> None:
        """Grade with `grader` from the next inspection; the one in hand keeps its model."""
        self.grader, self.model = grader, _model_info(grader)
        log.info(
            "model %s grades from the next inspection", self.model.version if self.model else "?"
        )

    def use_shadow(self, shadow: Shadow | None) -> Shadow | None:
        """Run `shadow` (or none) beside the active model from the next inspection; returns the
        one it replaces, for the caller to drain. The station publishes the shadow's reports on
        `shadow` unless it reports elsewhere already."""
        previous, self.shadow = self.shadow, shadow
        if shadow is not None and shadow.report is None:
            shadow.report = self.publish_shadow
        return previous

    def publish_shadow(self, report: ShadowReport) -> None:
        """Queue a shadow report for the `shadow` topic."""
        payload = report.model_dump_json(by_alias=True).encode()
        message = OutboxMessage(
            kind="shadow", topic=self.topics.shadow, payload=payload, msg_id=report.id
        )
        self.send(message)

    def send(self, *messages: OutboxMessage) -> bool:
        """Queue messages that belong to no record (a transaction of their own) and wake the
        publisher; False when the journal could not take them (logged)."""
        try:
            self.journal.outbox.add_committed(list(messages))
        except JournalError as exc:  # the journal reports its own failures; nothing to resend
            log.warning("%s not queued: %s", ", ".join(m.kind for m in messages), exc)
            return False
        if self.publisher is not None:
            self.publisher.notify()
        return True

    # ------------------------------------------------------------ triggers in

    def trigger(
        self, core_id: str | None = None, part_number: str | None = None, source: str = "api"
    ) -> bool:
        """Ask for an inspection; False when the overflow policy refused it (with an event)."""
        log.info("%s trigger received (core %s)", source, core_id or "?")
        return self.triggers.put(Trigger(source=source, core_id=core_id, part_number=part_number))

    def on_trigger_command(self, command: TriggerCommand) -> bool:
        """`trigger/set` from the PLC or the dashboard."""
        return self.trigger(core_id=command.core, source="mqtt")

    async def pump_bench_triggers(self, stop: asyncio.Event) -> None:
        """Move the bench's trigger edges into the station's queue until `stop` is set."""
        while not stop.is_set():
            bench_trigger = await _until(stop, self.bench.triggers.get())
            if bench_trigger is None:
                return
            self.trigger(
                core_id=bench_trigger.core_id, part_number=bench_trigger.part_number, source="bench"
            )

    async def interval_triggers(self, stop: asyncio.Event, interval_s: float) -> None:
        """A trigger every `interval_s` (demos) until `stop` is set."""
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), interval_s)
            except asyncio.TimeoutError:
                self.trigger(source="interval")

    # ------------------------------------------------------------ the loop

    async def run(self, stop: asyncio.Event) -> None:
        """Inspect triggers one at a time until `stop`; the inspection in hand always finishes.

        First, each trigger a killed node left half inspected is recorded as interrupted, and
        the image files of records it committed without them are sorted out.
        """
        self.recover_images()
        await self.record_interrupted()
        while not stop.is_set():
            trigger = await _until(stop, self.triggers.get())
            if trigger is None:
                break
            await self.inspect(trigger)
        await self.images_written()
        self.triggers.close("the node is shutting down")
        if self.shadow is not None:
            await self.shadow.drain()

    async def record_interrupted(self) -> int:
        """Record every trigger the journal holds unfinished as an interrupted inspection.

        Such a trigger was taken while a node that was then killed (or lost power) inspected
        it: it gets a record with code 0 (result err 1), and a warning event, so the PLC and
        the dashboard learn what happened to that core. How many there were.
        """
        try:
            pending = self.journal.interrupted_triggers()
        except JournalError as exc:
            self.events.error("journal_unreadable", f"interrupted triggers: {exc}")
            return 0
        for left in pending:
            trigger = Trigger(
                source=left.source,
                core_id=left.core_id,
                part_number=left.part_number,
                ts=left.ts,
                id=left.id,
            )
            why = f"the node stopped during this inspection (trigger at {left.ts})"
            self.events.warning(
                "inspection_interrupted",
                f"{left.source} trigger for core {left.core_id or '?'} was not inspected: {why}",
                trigger_ts=left.ts,
                source=left.source,
                core_id=left.core_id,
            )
            outcome = self._failed(trigger, why, code="inspection_interrupted")
            await self._commit(trigger, outcome, write_back=False)  # that core has gone
        return len(pending)

    def recover_images(self) -> int:
        """Register the image files of records committed before them that reached the disk;
        an `images_not_written` warning per record missing some. How many records there were."""
        try:
            records = self.journal.unwritten_images()
        except JournalError as exc:
            self.events.error("journal_unreadable", f"records without their images: {exc}")
            return 0
        folder = Path(self.config.journal.images_dir)
        for record in records:
            paths = [folder / name for name in record.images]
            for path in paths:
                _remove_partial(path)
            try:
                found = [image_file(path) for path in paths if path.is_file()]
                overlays = [p for p in paths if p.stem.endswith(OVERLAY_SUFFIX) and p.is_file()]
                snapshot = overlays[0].read_bytes() if overlays else None
            except (JournalError, OSError) as exc:  # unreadable now: a later start tries again
                self.events.error("journal_unreadable", f"images of inspection {record.seq}: {exc}")
                continue
            self._journal_images(record, found, snapshot, "the node stopped before writing them")
        if records and self.publisher is not None:
            self.publisher.notify()
        return len(records)

    def _images_not_written(self, record: InspectionRecord, missing: list[str], why: str) -> None:
        self.events.warning(
            "images_not_written",
            f"inspection {record.seq} (core {record.core_id}): {len(missing)} of its "
            f"{len(record.images)} image files were not written: {why}; the decision stands",
            inspection_id=record.id,
            seq=record.seq,
            core_id=record.core_id,
            missing=missing,
        )

    async def images_written(self) -> None:
        """Return once the image files of the last committed record are written and journaled."""
        job = self._images_job
        if job is None:
            return
        try:
            await asyncio.shield(job)
        except asyncio.CancelledError:
            raise
        except Exception:  # the task is a root and reports its own failures; nothing to add
            log.debug("the image task of the last record failed", exc_info=True)

    async def _write_images(self, record: InspectionRecord, outcome: _Outcome) -> None:
        """Encode and write the record's image files on the executor, then journal them with the
        snapshot message (task root: every failure becomes an event, the record stands)."""
        paths = [outcome.images_dir / name for name in record.images]
        loop = asyncio.get_running_loop()
        snapshot, why, written = None, "the encoder refused them", list[ImageFile]()
        try:
            snapshot = await loop.run_in_executor(
                self.executor, _encode_and_write, outcome.views, paths, written
            )
        except Exception as exc:  # root of the image task: the record stands, say what is missing
            log.warning("images of inspection %d not written: %s", record.seq, exc)
            why = str(exc)
        self._journal_images(record, written, snapshot, why)
        if self.publisher is not None:
            self.publisher.notify()

    def _journal_images(
        self, record: InspectionRecord, found: list[ImageFile], snapshot: bytes | None, why: str
    ) -> None:
        """Register the files `found` of the record's, and the snapshot; an event for the rest."""
        try:
            self.journal.record_images(record.id, found, self._snapshot_messages(record, snapshot))
        except JournalError as exc:  # left for the next start, which registers what is there
            self.events.error(
                "journal_unreadable", f"images of inspection {record.seq} not journaled: {exc}"
            )
            return
        there = {path for path, _, _ in found}
        folder = Path(self.config.journal.images_dir)
        missing = [name for name in record.images if str(folder / name) not in there]
        if missing:
            self._images_not_written(record, missing, why)

    def _snapshot_messages(
        self, record: InspectionRecord, snapshot: bytes | None
    ) -> list[OutboxMessage]:
        if not snapshot:
            return []
        return [
            OutboxMessage(
                kind="snapshot",
                topic=self.topics.snapshot,
                payload=snapshot,
                qos=1,
                msg_id=record.id,
            )
        ]

    async def inspect(self, trigger: Trigger) -> Inspected | None:
        """One inspection, journaled and handed to the publisher; None when it could not be
        journaled (an event says why). The trigger is journaled as the camera starts, before
        anything is decided, so that a node killed meanwhile records it as interrupted when it
        starts again."""
        self.busy, self.busy_since = True, self.clock()
        try:
            try:
                outcome = await self._inspect(trigger)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # root of one inspection: report, still answer the PLC
                log.exception("inspection failed")
                self.events.error(
                    "inspection_failed",
                    f"inspection failed: {type(exc).__name__}: {exc}",
                    error=exc,
                )
                outcome = self._failed(trigger, f"inspection failed: {type(exc).__name__}: {exc}")
            return await self._commit(trigger, outcome)
        finally:
            self.busy, self.busy_since = False, None

    async def _inspect(self, trigger: Trigger) -> _Outcome:
        work = _Work(
            trigger=trigger,
            started=time.perf_counter(),
            ts=utc_now(),
            grader=self.grader,
            model=self.model,
        )
        # The camera works while the trigger is journaled; nothing is decided before both.
        capturing = asyncio.ensure_future(self._capture(work))
        try:
            self.journal.accept_trigger(trigger.pending())
        except JournalError as exc:  # the record will fail the same way, with its own event
            log.warning("trigger not journaled: %s", exc)
        log.info("inspection started (%s trigger, core %s)", trigger.source, trigger.core_id or "?")
        await capturing
        await self._bench_identity(work)
        await self._analyse(work)
        await self._bench_snapshot(work)
        return self._decide(work)

    # ------------------------------------------------------------ stages

    async def _capture(self, work: _Work) -> None:
        since = time.perf_counter()
        try:
            work.frames = await self.camera.capture_views(self.config.camera.views)
        except ImageUnreadable as exc:  # the camera reported an event already
            work.image_problems.append(f"{UNREADABLE}{exc}")
        except CameraError as exc:  # the camera reported an event already
            work.image_problems.append(f"no image: {exc}")
        work.lap("capture", since)

    async def _bench_identity(self, work: _Work) -> None:
        if work.trigger.source == "bench":
            work.bench_core_id, work.bench_part_number = (
                work.trigger.core_id,
                work.trigger.part_number,
            )
        elif self.bench is not None:
            work.bench_core_id, work.bench_part_number = await self.bench.identity()

    async def _analyse(self, work: _Work) -> None:
        """Core id with the frame checks, and grading, side by side on the executor (the frame
        checks need not wait for the model, nor the model for them)."""
        loop = asyncio.get_running_loop()
        images = [f.image for f in work.frames]
        trigger_id = work.trigger.core_id if work.trigger.source != "bench" else None
        core_job = loop.run_in_executor(
            self.executor, self._core_id, trigger_id, work.bench_core_id, images
        )
        grade_job = loop.run_in_executor(self.executor, self._grade, work, images)
        (work.core, core_ms, quality_ms, checked), graded = await asyncio.gather(
            core_job, grade_job
        )
        work.timings["core_id"], work.timings["quality"] = core_ms, quality_ms
        work.image_problems += checked + graded  # in this order: the frame, then the model

    def _core_id(
        self, trigger_id: str | None, bench_id: str | None, images: list[np.ndarray]
    ) -> tuple[CoreIdOutcome, float, float, list[str]]:
        """The core id, the milliseconds it took (labels are read only when needed), the
        milliseconds of the frame checks and their problems."""
        since = time.perf_counter()
        outcome = resolve_core_id(
            self.config.core_id, trigger=trigger_id, bench=bench_id, images=images
        )
        checked = time.perf_counter()
        problems = [quality.check_frame(image, self.config.camera) for image in images]
        texts = [r.text.removeprefix("image quality: ") for r in quality.quality_reasons(problems)]
        done = time.perf_counter()
        return outcome, _ms(checked - since), _ms(done - checked), texts

    def _grade(self, work: _Work, images: list[np.ndarray]) -> list[str]:
        """Grading (the only code that writes `work` meanwhile); the image problems it found."""
        since = time.perf_counter()
        if not images:
            return []
        try:
            work.graded = work.grader.grade_views(images)
        except VisionError as exc:
            self.events.error(
                "grading_failed", f"the model could not grade the image: {exc}", error=exc
            )
            return [f"not graded: {exc}"]
        work.lap("grade", since)
        return self._out_of_distribution(work)

    def _out_of_distribution(self, work: _Work) -> list[str]:
        """An image problem and a warning for each view unlike the model's training images."""
        problems = []
        for view, graded in enumerate(work.graded.views, start=1):
            verdict = graded.ood
            if verdict is None or not verdict.out_of_distribution:
                continue
            text = f"view {view}: {verdict.describe()}"
            problems.append(f"{OUT_OF_DISTRIBUTION}{text}")
            self.events.warning(
                "image_out_of_distribution",
                f"the image is unlike the model's training images, {text}",
                view=view,
                distance=round(verdict.distance, 3),
                threshold=verdict.threshold,
                core_id=work.trigger.core_id,
            )
        return problems

    async def _bench_snapshot(self, work: _Work) -> None:
        since = time.perf_counter()
        if self.bench is not None:
            snapshot = await self.bench.snapshot(
                wait_ready=bool(self.config.bench.result_ready_node)
            )
            work.measurements = snapshot.measurements()
            if snapshot.link != "connected":
                work.bench_link = f"{snapshot.link} since {self.bench.state.since}"
        work.lap("bench", since)

    # ------------------------------------------------------------ the decision and the record

    def _decide(self, work: _Work) -> _Outcome:
        since = time.perf_counter()
        core = work.core
        assert core is not None  # _analyse resolved it
        part_number = work.bench_part_number or work.trigger.part_number
        family = self.families.match(core.core_id, part_number)
        defects = defects_of(work.graded)
        decision = decide(
            family,
            {k: v.model_dump() for k, v in defects.items()},
            {k: v.model_dump() for k, v in work.measurements.items()},
            work.image_problems,
            now=datetime.now(UTC),
        )
        decision = _with_core_id_reasons(_with_bench_reason(decision, work.bench_link), core)
        work.lap("decide", since)
        work.timings["total"] = round((time.monotonic() - work.trigger.received) * 1000, 3)
        draft = self._draft(work, core, family, part_number, defects, decision)
        err = ResultError.REJECTED_NO_CORE_ID if core.rejected else ResultError.OK
        shadow = ShadowInput(
            draft.id,
            [frame.image for frame in work.frames],
            family,
            {k: v.model_dump() for k, v in work.measurements.items()},
            list(work.image_problems),
            active_version=work.model.version if work.model is not None else None,
            active_defects=defects,
            active_code=decision.code,
        )
        views = (
            []
            if work.graded is None
            else [(f.image, g) for f, g in zip(work.frames, work.graded.views, strict=True)]
        )
        return _Outcome(
            draft,
            err,
            views,
            Path(self.config.journal.images_dir),
            shadow if work.frames else None,
        )

    def _draft(
        self,
        work: _Work,
        core: CoreIdOutcome,
        family: Any,
        part_number: str | None,
        defects: dict[str, DefectResult],
        decision: DecisionInfo,
    ) -> InspectionRecord:
        """The full record but its seq and image names, which come as it is journaled."""
        rules, limits = None, None
        if family is not None:
            version, sha256 = rules_version(family)
            rules = RulesInfo(version=version, sha256=sha256)
            limits = limits_of(family, decision)
        return InspectionRecord(
            id=new_id(),
            seq=0,
            ts=work.ts,
            station=self.config.station_id,
            core_id=core.core_id,
            core_id_source=core.source,
            family=family.id if family else None,
            part_number=part_number,
            defects=defects,
            measurements=work.measurements,
            decision=decision,
            impact=impact(family, decision.code),
            model=work.model if work.graded is not None else None,
            rules=rules,
            limits=limits,
            battery=family.passport.battery if family and family.passport else None,
            timings_ms=work.timings,
        )

    def _failed(self, trigger: Trigger, why: str, code: str = "inspection_failed") -> _Outcome:
        core_id = trigger.core_id or _generated_id()
        reason = Reason(code=code, text=why)
        decision = DecisionInfo(
            code=Disposition.NONE,
            label=Disposition.NONE.name,
            credit=Credit.UNKNOWN,
            reasons=[reason],
        )
        record = InspectionRecord(
            id=new_id(),
            seq=0,
            ts=utc_now(),
            station=self.config.station_id,
            core_id=core_id,
            core_id_source="trigger" if trigger.core_id else "generated",
            decision=decision,
        )
        return _Outcome(record, ResultError.INSPECTION_FAILED)

    async def _commit(
        self, trigger: Trigger, outcome: _Outcome, write_back: bool = True
    ) -> Inspected | None:
        def build(seq: int) -> Drafted:
            record, result = outcome.numbered(seq)
            return record, self.messages(record, result), []

        await self.images_written()  # the last record's messages before this one's
        try:
            record = self.journal.record_next(
                build, trigger_id=trigger.id, images_later=bool(outcome.views)
            )
        except JournalError as exc:
            self.events.error(
                "inspection_not_recorded",
                f"inspection of core {outcome.draft.core_id} could not be journaled: {exc}",
                core_id=outcome.draft.core_id,
                trigger_ts=trigger.ts,
            )
            return None
        result = _result(record, outcome.err)
        if self.publisher is not None:
            self.publisher.notify()
        if outcome.views:
            self._images_job = asyncio.create_task(
                self._write_images(record, outcome), name=f"images-{record.seq}"
            )
        latency_ms = (time.monotonic() - trigger.received) * 1000
        self.health.record(record, latency_ms)
        log.info(
            "inspection %d: core %s %s (%.0f ms)",
            record.seq,
            record.core_id,
            record.decision.label,
            latency_ms,
        )
        done = Inspected(record, result, latency_ms)
        for listener in self.listeners:
            listener(done)
        if write_back:
            await self._write_back(result, record.revision)
        if self.shadow is not None and outcome.shadow is not None:
            self.shadow.offer(outcome.shadow)  # after the result: the PLC never waits for it
        return done

    def messages(
        self, record: InspectionRecord, result: Result, snapshot: bytes | None = None
    ) -> list[OutboxMessage]:
        """The outbox messages of one record: result first (the PLC waits for it), then the full
        record, then the snapshot JPEG."""
        out = [
            OutboxMessage(
                kind="result",
                topic=self.topics.result,
                payload=result.to_payload(),
                qos=1,
                retain=True,
                msg_id=record.id,
            ),
            OutboxMessage(
                kind="inspection",
                topic=self.topics.inspection,
                payload=record.to_json().encode(),
                qos=1,
                msg_id=record.id,
            ),
        ]
        if snapshot:
            out.append(
                OutboxMessage(
                    kind="snapshot",
                    topic=self.topics.snapshot,
                    payload=snapshot,
                    qos=1,
                    msg_id=record.id,
                )
            )
        return out

    async def _write_back(self, result: Result, revision: int = 1) -> None:
        """Write the result to the PLC over OPC UA, waiting at most BENCH_WRITEBACK_TIMEOUT_S
        for the first try (the bench client retries a failed one in the background)."""
        if self.bench is None or not self.config.bench.writeback:
            return
        try:
            await asyncio.wait_for(
                self.bench.write_back(
                    int(result.code),
                    int(result.credit),
                    result.seq,
                    err=int(result.err),
                    core_id=result.core,
                    revision=revision,
                ),
                BENCH_WRITEBACK_TIMEOUT_S,
            )
        except asyncio.TimeoutError:
            self.events.warning(
                "bench_writeback_timeout",
                f"write-back of result {result.seq} timed out",
                seq=result.seq,
            )

    # ------------------------------------------------------------ overrides

    async def on_override_command(self, command: OverrideCommand) -> InspectionRecord | None:
        """`override/set`: journal the override and republish the record and its result."""

        def republish(updated: InspectionRecord) -> list[OutboxMessage]:
            return self.messages(updated, _result(updated, ResultError.OK))

        try:
            updated = self.journal.apply_override(
                command.id,
                command.code,
                command.reason,
                command.user,
                credit=command.credit,
                command_id=command.command_id,
                make_messages=republish,
            )
        except JournalError as exc:
            self.events.warning(
                "override_rejected",
                f"override of {command.id} refused: {exc}",
                inspection_id=command.id,
                user=command.user,
            )
            return None
        if updated is None:
            log.info("override of %s repeated; nothing changed", command.id)
            return None
        self.events.info(
            "override_applied",
            f"{command.user} set inspection {updated.seq} to "
            f"{updated.effective_code().name}: {command.reason}",
            inspection_id=command.id,
            code=command.code,
            user=command.user,
        )
        if self.publisher is not None:
            self.publisher.notify()
        # The PLC sees the override too: same seq, the record's new revision, result_ready.
        await self._write_back(_result(updated, ResultError.OK), updated.revision)
        return updated

    # ------------------------------------------------------------ frames for labelling

    async def on_frame_request(self, command: FrameRequest) -> FrameReply:
        """`frame/get`: answer once on `frame` with the raw frame and the active model's masks,
        or with `error` and a `frame_refused` event when there is no frame to give."""
        grader, model = self.grader, self.model
        loop = asyncio.get_running_loop()
        await self.images_written()  # a frame asked for as soon as its record came out
        try:
            path = raw_frame_path(self.journal, command.id, command.view)
            drawn = await loop.run_in_executor(self.executor, draw_frame, grader, path)
            reply = frame_reply(
                command, self.config.station_id, drawn, model.version if model else None
            )
        except (JournalError, VisionError) as exc:
            reply = self._frame_refused(command, str(exc))
        payload = reply.model_dump_json(by_alias=True).encode()
        if len(payload) > MAX_FRAME_BYTES:
            reply = self._frame_refused(
                command,
                f"the frame and its masks are {len(payload)} bytes, "
                f"more than the {MAX_FRAME_BYTES} a frame message may be",
            )
            payload = reply.model_dump_json(by_alias=True).encode()
        msg_id = command.command_id or new_id()
        self.send(
            OutboxMessage(kind="frame", topic=self.topics.frame, payload=payload, msg_id=msg_id)
        )
        return reply

    def _frame_refused(self, command: FrameRequest, why: str) -> FrameReply:
        self.events.warning(
            "frame_refused",
            f"frame of inspection {command.id} view {command.view} not sent: {why}",
            inspection_id=command.id,
            view=command.view,
            user=command.user,
            command_id=command.command_id,
        )
        return refused_reply(command, self.config.station_id, why)

    # ------------------------------------------------------------ labels

    def on_label_command(self, command: LabelCommand) -> Label | None | Awaitable[Label | None]:
        """`label/set`: keep a person's label of one view beside its raw frame (the journal).

        While the last record's images are being written, labels wait for them (a label may
        come as soon as its record did), in the order they came.
        """
        job, previous = self._images_job, self._labels_waiting
        if previous is None and (job is None or job.done()):
            return self._label(command)
        turn = asyncio.get_running_loop().create_future()
        self._labels_waiting = turn
        return self._label_later(command, previous, turn)

    async def _label_later(
        self, command: LabelCommand, previous: asyncio.Future | None, turn: asyncio.Future
    ) -> Label | None:
        try:
            if previous is not None:
                await previous
            await self.images_written()
            return self._label(command)
        finally:
            turn.set_result(None)
            if self._labels_waiting is turn:
                self._labels_waiting = None

    def _label(self, command: LabelCommand) -> Label | None:
        labels_dir = Path(self.config.journal.images_dir) / "labels"
        try:
            label = add_label(self.journal, command, labels_dir)
        except JournalError as exc:
            self.events.warning(
                "label_rejected",
                f"label of inspection {command.id} view {command.view} refused: {exc}",
                inspection_id=command.id,
                view=command.view,
                user=command.user,
            )
            return None
        if label is None:
            log.info("label of %s repeated; nothing changed", command.id)
            return None
        what = "good" if label.good else "masks " + ", ".join(sorted(label.masks))
        self.events.info(
            "label_recorded",
            f"{label.user} labelled inspection {label.inspection_id} view {label.view}: {what}",
            inspection_id=label.inspection_id,
            view=label.view,
            good=label.good,
            masks=sorted(label.masks),
            user=label.user,
        )
        return label


# ---------------------------------------------------------------- helpers


def _model_info(grader: Any) -> ModelInfo | None:
    card = getattr(grader, "card", None)
    if card is None:
        return None
    source = getattr(card, "training_source", None)
    return ModelInfo(
        name=card.name,
        version=card.version,
        sha256=getattr(grader, "sha256", ""),
        synthetic_only=None if source is None else source == "synthetic",
    )


def _with_bench_reason(decision: DecisionInfo, bench_link: str | None) -> DecisionInfo:
    """Say why measurements are missing or stale when the bench link was down."""
    if bench_link is None or not any(r.code.startswith("measurement_") for r in decision.reasons):
        return decision
    reason = Reason(
        code="bench_unavailable", text=f"bench {bench_link}: no current measurements", rule="bench"
    )
    return decision.model_copy(update={"reasons": [*decision.reasons, reason]})


def _with_core_id_reasons(decision: DecisionInfo, core: CoreIdOutcome) -> DecisionInfo:
    """Core-id findings added to the decision: a missing id sends the core to REVIEW (RECYCLE
    stands), the reject policy gives code 0."""
    if not core.reasons:
        return decision
    reasons = decision.reasons + core.reasons
    if core.rejected:
        return DecisionInfo(
            code=Disposition.NONE,
            label=Disposition.NONE.name,
            credit=Credit.UNKNOWN,
            reasons=reasons,
        )
    needs_review = core.source == "generated" or any(
        r.code == "core_id_ambiguous" for r in core.reasons
    )
    if needs_review and decision.code != Disposition.RECYCLE:
        return DecisionInfo(
            code=Disposition.REVIEW,
            label=Disposition.REVIEW.name,
            credit=Credit.UNKNOWN,
            reasons=reasons,
        )
    return decision.model_copy(update={"reasons": reasons})


def _result(record: InspectionRecord, err: ResultError) -> Result:
    return Result(
        seq=record.seq,
        core=record.core_id,
        code=record.effective_code(),
        credit=record.effective_credit(),
        err=err,
    )


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _generated_id() -> str:
    from edge.station.coreid import generated_core_id

    return generated_core_id()


async def _until(stop: asyncio.Event, awaitable: Any) -> Any:
    """The awaitable's result, or None when `stop` is set first (the awaitable is cancelled)."""
    job = asyncio.ensure_future(awaitable)
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({job, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopper.cancel()
    if job.done():
        return job.result()
    job.cancel()
    try:
        await job
    except asyncio.CancelledError:
        pass
    return None
