"""The edge node: every part of a station built from its config, started in order, stopped in reverse.

    await run_node(load_station("station.yaml"))     # until SIGTERM or SIGINT

`Node.start()` is one flat list: families, journal, model registry, model, camera, broker, bench,
then the station loop and its helpers (trigger sources, stats, housekeeping, the systemd
watchdog). The retained `models` state goes out at start; `model/set` changes the active and
shadow models while the node runs (edge.station.models), without a restart. Each
start-up check prints one line; a check that fails raises StartupError naming the part and the
problem. A broker or bench that is not reachable yet is a warning, not a failure: results are
kept in the journal and published once the broker is back, and inspections meanwhile get REVIEW
for missing bench values.

One stop event. SIGTERM (systemd stop) and SIGINT set it: the station finishes the inspection
in hand, triggers still waiting are reported, the outbox drains to the broker (up to
`DRAIN_TIMEOUT_S`; what is left goes out after the next start), then every part stops in
reverse order.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from edge.bench.client import BenchClient
from edge.config.station import StationConfig
from edge.contract import Event, Topics, systemd
from edge.decision.families import FamilySet, load_families
from edge.errors import (
    BenchError,
    BrokerError,
    CameraError,
    JournalError,
    NodeFailed,
    RegistryError,
    StartupError,
)
from edge.events import Events
from edge.journal import republish
from edge.journal.journal import Journal
from edge.journal.lock import ProcessLock
from edge.journal.outbox import OutboxMessage
from edge.mqtt.client import MqttClient
from edge.mqtt.commands import CommandRouter
from edge.mqtt.handshake import Handshake
from edge.mqtt.publisher import Publisher
from edge.mqtt.sparkplug.node import SparkplugPart, build_sparkplug
from edge.registry import ModelRegistry, registry_folder
from edge.station.camera import Camera, VideoCamera, open_camera
from edge.station.health import Health
from edge.station.loop import Station
from edge.station.models import ModelSwitch
from edge.station.shadow import Shadow

log = logging.getLogger("reman.node")

BROKER_WAIT_S = 5.0
DRAIN_TIMEOUT_S = 10.0
FINISH_TIMEOUT_S = 20.0
HOUSEKEEPING_INTERVAL_S = 600.0
DELIVERED_KEPT_S = 24 * 3600.0
STUCK_INSPECTION_S = 60.0


@dataclass
class Node:
    """A station's parts; build with `Node(config)`, then `await start()` and `await shutdown()`."""

    config: StationConfig
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    events: Events | None = None
    health: Health | None = None
    executor: ThreadPoolExecutor | None = None
    families: FamilySet | None = None
    journal: Journal | None = None
    registry: ModelRegistry | None = None
    grader: Any = None  # the model loaded at start; `station.grader` is the one grading now
    shadow: Shadow | None = None  # the shadow at start; `station.shadow` is the one running now
    models: ModelSwitch | None = None
    camera: Camera | None = None
    mqtt: MqttClient | None = None
    publisher: Publisher | None = None
    sparkplug: SparkplugPart | None = None  # Sparkplug B beside the JSON contract, when enabled
    handshake: Handshake | None = None
    commands: CommandRouter | None = None
    bench: BenchClient | None = None
    station: Station | None = None
    tasks: dict[str, asyncio.Task] = field(default_factory=dict)
    _loop: asyncio.AbstractEventLoop | None = None
    _loop_thread: int | None = None
    _stopped: bool = False
    _journal_lock: ProcessLock | None = None  # one node per journal (edge.journal.lock)
    failure: str | None = None  # why the node stopped on its own, if it did

    # ------------------------------------------------------------ start

    async def start(self) -> None:
        """Build, check and start every part in order; StartupError when one cannot start."""
        cfg = self.config
        self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        events = self.events = self.events or Events(cfg.station_id)
        self.health = self.health or Health(cfg.station_id)
        self.executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="station")
        try:
            await self._start_parts(events)
        except BaseException:
            await self.shutdown()
            raise

    async def _start_parts(self, events: Events) -> None:
        self.families = self._check_families()
        self.journal = journal = self._check_journal()
        events.add_sink(self._journal_event)
        self.registry = ModelRegistry(registry_folder(self.config.journal.path), events)
        self.grader = await self._check_model()
        _model_warnings(events, self.grader.card)
        self.shadow = await self._load_shadow(events, journal)
        self.camera = camera = await self._check_camera(events)
        self._wire(events, journal)  # every part exists before any command or trigger can arrive
        assert self.models is not None  # built by _wire()
        self.models.publish_state()
        await self._start_broker(events)
        if self.sparkplug is not None:
            await self.sparkplug.start()
        await self._start_bench()
        self._start_tasks()
        systemd.ready(f"station {self.config.station_id} ready")
        events.info(
            "node_started",
            f"station {self.config.station_id} is running",
            model=self.grader.card.name,
            camera=camera.description,
        )

    def _wire(self, events: Events, journal: Journal) -> None:
        """Build the MQTT client, publisher, handshake, bench client and station, connected to
        each other but not yet started."""
        cfg = self.config
        try:
            self.mqtt = mqtt = MqttClient(cfg.station_id, cfg.mqtt, events)
        except (BrokerError, OSError) as exc:
            raise StartupError(f"broker: {exc}") from exc
        self.handshake = handshake = Handshake(
            events, cfg.handshake.ack_timeout_s, cfg.handshake.ack
        )
        self.publisher = publisher = Publisher.from_config(
            journal.outbox,
            mqtt,
            events,
            cfg.retention,
            on_delivered=handshake.on_delivered,
            sync=journal.sync,  # what reaches the PLC survives a power cut
            exclude=("sparkplug",),  # Sparkplug DDATA rows leave through their own connection
        )
        self.sparkplug = build_sparkplug(cfg, events, journal)
        self.bench = (
            BenchClient(cfg.bench, events, handshake=handshake) if cfg.bench.enabled else None
        )
        self.station = station = self._build_station(events, journal)
        assert self.registry is not None  # _start_parts opened it before the model
        self.models = models = ModelSwitch(
            station,
            self.registry,
            events,
            load_active=self._load_grader,
            load_shadow=_load_shadow_grader,
            make_shadow=lambda grader: _shadow_of(grader, journal, events),
            configured=Path(self.config.model.path),
        )
        self.commands = commands = CommandRouter(
            events,
            mqtt.topics,
            on_trigger=station.on_trigger_command,
            on_ack=handshake.ack,
            on_override=station.on_override_command,
            on_label=station.on_label_command,
            on_frame_request=station.on_frame_request,
            on_model=models.on_model_command,
            on_records_request=partial(
                republish.answer, journal, mqtt.topics, events, notify=publisher.notify
            ),
            override_users=cfg.commands.override_users,
            records_per_minute=cfg.commands.records_per_minute,
        )
        mqtt.on_command = commands.handle

    def _build_station(self, events: Events, journal: Journal) -> Station:
        camera, families, executor = self.camera, self.families, self.executor
        # start() made the executor, _start_parts the families and camera, before wiring
        assert camera is not None and families is not None and executor is not None
        return Station(
            self.config,
            grader=self.grader,
            camera=camera,
            bench=self.bench,
            families=families,
            journal=journal,
            events=events,
            executor=executor,
            publisher=self.publisher,
            health=self.health,
            shadow=self.shadow,
        )

    def _check_families(self) -> FamilySet:
        families = load_families(self.config.families_dir)  # ConfigError lists every problem
        if not len(families):
            raise StartupError(
                f"families: {self.config.families_dir} holds no product family (*.yaml)"
            )
        _ok(f"families: {', '.join(f.id for f in families)}")
        return families

    def _check_journal(self) -> Journal:
        path = Path(self.config.journal.path)
        lock = ProcessLock(path.with_name(path.name + ".node.lock"))
        try:
            holder = lock.acquire()
        except OSError as exc:
            raise StartupError(f"journal: cannot lock {lock.path}: {exc.strerror}") from exc
        if holder is not None:
            pid = f" (pid {holder})" if holder else ""
            raise StartupError(
                f"journal: {path} is in use by another node{pid}; one node per journal: stop "
                "that one, or give this station its own journal.path"
            )
        self._journal_lock = lock
        try:
            journal = Journal.open(self.config.journal.path, self.events, families=self.families)
        except JournalError as exc:
            raise StartupError(str(exc)) from exc
        _ok(
            f"journal: {self.config.journal.path} (schema {journal.schema_version}, {journal.count()} inspections)"
        )
        return journal

    async def _check_model(self) -> Any:
        from vision.errors import VisionError

        path = self._registry_model() or self.config.model.path
        try:
            grader = await asyncio.get_running_loop().run_in_executor(
                self.executor, self._load_grader, path
            )
        except VisionError as exc:
            raise StartupError(f"model: {exc}") from exc
        _ok(f"model: {grader.card.name} {grader.card.version} on {', '.join(grader.providers)}")
        return grader

    def _load_grader(self, path: str | Path) -> Any:
        """The model at `path` loaded as the config says the active model runs (blocking)."""
        from vision.grader import Grader

        model = self.config.model
        return Grader.load(
            path,
            model.providers,
            model.threads,
            model.corrosion_table,
            model.min_confidence,
            tensorrt_cache_dir=model.tensorrt_cache_dir,
            tensorrt_fp16=model.tensorrt_fp16,
        )

    async def _load_shadow(self, events: Events, journal: Journal) -> Shadow | None:
        """The registry's shadow candidate on one thread of its own, or None. A candidate that
        does not load is a warning: the node runs without a shadow rather than not at all."""
        from vision.errors import VisionError

        assert self.registry is not None  # _start_parts opened it before the model
        try:
            path = self.registry.shadow_path()
        except RegistryError as exc:
            events.warning("shadow_not_loaded", f"no shadow model: {exc}")
            return None
        if path is None:
            return None
        try:
            grader = await asyncio.get_running_loop().run_in_executor(
                self.executor, _load_shadow_grader, path
            )
        except VisionError as exc:
            events.warning("shadow_not_loaded", f"shadow model {path.name} not loaded: {exc}")
            return None
        _ok(f"shadow: {grader.card.name} {grader.card.version} beside the active model")
        return _shadow_of(grader, journal, events)

    def _registry_model(self) -> str | None:
        """The registry's active model (`reman model promote`), which wins over model.path."""
        assert self.registry is not None  # _start_parts opened it before the model
        try:
            active = self.registry.active_path()
        except RegistryError as exc:
            raise StartupError(f"model: {exc}") from exc
        if active is None:
            return None
        _ok(f"model: the registry's active model {active.name} (not model.path)")
        return str(active)

    async def _check_camera(self, events: Events) -> Camera:
        camera = open_camera(self.config.camera, events)
        try:
            await camera.open()
        except CameraError as exc:
            if not isinstance(camera, VideoCamera):
                await camera.close()
                raise StartupError(f"camera: {exc}") from exc
            log.warning("camera: %s; it is reopened on the next trigger", exc)
        else:
            _ok(f"camera: {camera.description}")
        return camera

    async def _start_broker(self, events: Events) -> None:
        # `ready`: the broker acknowledged `online`, sent after the command subscriptions, so
        # from then on no trigger/set can be missed. READY=1 to systemd waits for it.
        mqtt, publisher = self.mqtt, self.publisher
        assert mqtt is not None and publisher is not None  # built by _wire()
        subscribed = asyncio.Event()
        mqtt.on_ready.append(subscribed.set)
        refused: list[Event] = []
        events.add_sink(lambda e: refused.append(e) if e.code == "broker_refused" else None)
        publisher.start()
        try:
            await mqtt.start()
        except (BrokerError, OSError) as exc:
            raise StartupError(f"broker: {exc}") from exc
        try:
            await asyncio.wait_for(subscribed.wait(), BROKER_WAIT_S)
        except asyncio.TimeoutError:
            if refused:
                raise StartupError(f"broker: {refused[-1].message}") from None
            log.warning(
                "broker: %s:%s did not answer within %s s; results wait in the journal until it does",
                self.config.mqtt.host,
                self.config.mqtt.port,
                BROKER_WAIT_S,
            )
            return
        _ok(f"broker: {self.config.mqtt.host}:{self.config.mqtt.port} as {mqtt.client_id}")

    async def _start_bench(self) -> None:
        cfg = self.config.bench
        if self.bench is None:
            _ok("bench: disabled")
            return
        await self.bench.start()
        try:
            await self.bench.wait_connected()
        except BenchError as exc:
            log.warning("bench: %s; inspections get REVIEW for its values until it is back", exc)
            return
        unknown = (
            f"; unknown nodes: {', '.join(sorted(self.bench.unknown))}"
            if self.bench.unknown
            else ""
        )
        _ok(f"bench: {cfg.endpoint} ({self.bench.mode}){unknown}")

    def _start_tasks(self) -> None:
        station, cfg = self.station, self.config
        assert station is not None  # built by _wire()
        self._spawn("station", station.run(self.stop))
        if self.bench is not None and cfg.bench.trigger_node:
            self._spawn("bench-triggers", station.pump_bench_triggers(self.stop))
        if cfg.trigger.interval_s:
            self._spawn(
                "interval-triggers", station.interval_triggers(self.stop, cfg.trigger.interval_s)
            )
        self._spawn("stats", self._every(cfg.stats.interval_s, self.publish_stats))
        if self.models is not None:
            self._spawn("models", self.models.follow_registry(self.stop))
        self._spawn(
            "housekeeping", self._every(HOUSEKEEPING_INTERVAL_S, self.housekeeping, first=True)
        )
        interval = systemd.watchdog_interval_s()
        if interval:
            self._spawn("watchdog", systemd.watchdog_loop(self.stop, interval, self.healthy))

    def _spawn(self, name: str, coro: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.create_task(coro, name=name)
        self.tasks[name] = task  # strong reference for the node's lifetime
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        if task.cancelled() or task.exception() is None:
            return
        exc, events = task.exception(), self.events
        assert events is not None  # start() sets events before any task is spawned
        log.error("task %s failed", task.get_name(), exc_info=exc)
        events.error(
            "task_failed", f"{task.get_name()} stopped: {exc}", task=task.get_name(), error=exc
        )
        self.failure = f"{task.get_name()} stopped: {type(exc).__name__}: {exc}"
        self.stop.set()  # a node without its loop must not pretend to run; systemd restarts it

    # ------------------------------------------------------------ running

    def healthy(self) -> bool:
        """The station loop runs and no inspection has hung (the systemd watchdog asks)."""
        task = self.tasks.get("station")
        if task is None or task.done():
            return False
        station = self.station
        assert station is not None  # the station task runs, so _wire() built the station
        since = station.busy_since
        return since is None or station.clock() - since < STUCK_INSPECTION_S

    async def _every(self, interval_s: float, job: Callable[[], None], first: bool = False) -> None:
        if first:
            job()
        while not self.stop.is_set():
            try:
                await asyncio.wait_for(self.stop.wait(), interval_s)
            except asyncio.TimeoutError:
                job()

    def publish_stats(self) -> None:
        """Put the health figures in the outbox for the `stats` topic."""
        health, mqtt, journal, publisher = self.health, self.mqtt, self.journal, self.publisher
        # called while running: start() built every part, shutdown() cancels this job first
        assert health is not None and mqtt is not None
        assert journal is not None and publisher is not None
        try:
            last_seq = journal.last_seq()
        except JournalError as exc:  # the figures go without it; the gateway asks nothing
            log.warning("stats without the last seq: %s", exc)
            last_seq = None
        stats = health.stats(
            bench=self.bench.state if self.bench else None,
            broker=mqtt.state,
            outbox=journal.outbox.depth(),
            model=self.station.model if self.station else None,
            journal_path=self.config.journal.path,
            last_seq=last_seq,
        )
        message = OutboxMessage(
            kind="stats",
            topic=mqtt.topics.stats,
            qos=0,
            payload=stats.model_dump_json().encode(),
        )
        try:
            journal.outbox.add_committed([message])
        except JournalError as exc:  # the figures are skipped this time; the next ones may go
            log.warning("stats not queued: %s", exc)
            return
        publisher.notify()
        if self.models is not None:
            self.models.publish_if_changed()  # the shadow's seen and skipped counts move on

    def housekeeping(self) -> None:
        """Prune old image files and delivered outbox rows (records are kept)."""
        retention, journal, events = self.config.retention, self.journal, self.events
        # called while running: start() built both, shutdown() cancels this job first
        assert journal is not None and events is not None
        try:
            pruned = journal.prune_images(
                retention.image_max_age_days, retention.image_disk_budget_mb
            )
            journal.outbox.prune_delivered(DELIVERED_KEPT_S)
        except (JournalError, OSError) as exc:
            events.warning("housekeeping_failed", f"pruning failed: {exc}")
            return
        if pruned:
            log.info("pruned %d image files", pruned)

    def _journal_event(self, event: Event) -> None:
        """Event sink: the event into the journal with its outbox row, on the loop's thread."""
        if threading.get_ident() != self._loop_thread:
            loop = self._loop
            assert loop is not None  # start() sets it before this sink is added
            try:
                loop.call_soon_threadsafe(self._journal_event, event)
            except RuntimeError:  # the loop has closed: the event was logged, that is all
                pass
            return
        journal = self.journal
        if journal is None:
            return
        topic = Topics(self.config.station_id, self.config.mqtt.topic_prefix).event
        journal.record_event(event, OutboxMessage.for_event(event, topic))
        if self.publisher is not None:
            self.publisher.notify()

    # ------------------------------------------------------------ stop

    async def shutdown(self) -> None:
        """Stop in reverse order: finish the inspection in hand, drain the outbox, close all."""
        if self._stopped:
            return
        self._stopped = True
        systemd.stopping()
        self.stop.set()
        await self._finish_station()
        for name in [n for n in self.tasks if n != "station"]:
            await _cancel(self.tasks[name])
        await self._stop_inputs()
        await self._drain()  # after the inputs, so their last events go out too
        await self._stop_outputs()

    async def _finish_station(self) -> None:
        task = self.tasks.get("station")
        if task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(task), FINISH_TIMEOUT_S)
        except asyncio.TimeoutError:
            log.error("the inspection in hand did not finish within %s s", FINISH_TIMEOUT_S)
            await _cancel(task)
        except Exception:  # noqa: BLE001 - reported by _task_done
            pass

    async def _drain(self) -> None:
        if self.sparkplug is not None:
            await self.sparkplug.drain(DRAIN_TIMEOUT_S)
        if self.publisher is None or self.mqtt is None or not self.mqtt.connected:
            return
        try:
            await self.publisher.wait_drained(DRAIN_TIMEOUT_S)
        except BrokerError as exc:
            log.warning("%s; the rest goes out after the next start", exc)

    async def _stop_inputs(self) -> None:
        if self.bench is not None:
            await self.bench.stop()
        if self.camera is not None:
            await self.camera.close()
        if self.executor is not None:
            self.executor.shutdown(wait=True, cancel_futures=True)
        if self.models is not None:
            self.models.close()

    async def _stop_outputs(self) -> None:
        if self.publisher is not None:
            await self.publisher.stop()
        if self.handshake is not None:
            self.handshake.close()
        if self.sparkplug is not None:
            await self.sparkplug.stop()
        if self.mqtt is not None:
            await self.mqtt.stop()
        journal, self.journal = self.journal, None  # later events are only logged
        if journal is not None:
            journal.close()
        if self._journal_lock is not None:
            self._journal_lock.release()


async def run_node(config: StationConfig, stop: asyncio.Event | None = None) -> None:
    """Run a station until SIGTERM or SIGINT (or `stop`), then shut it down cleanly.

    Raises StartupError when a part cannot start, NodeFailed when one stopped while running.
    """
    node = Node(config, stop=stop or asyncio.Event())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, node.stop.set)
    try:
        await node.start()
        await node.stop.wait()
        log.info("stopping: finishing the inspection in hand and draining the outbox")
    finally:
        await node.shutdown()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    if node.failure:
        raise NodeFailed(node.failure)  # a non-zero exit, so systemd restarts the node
    log.info("stopped")


def _ok(text: str) -> None:
    log.info("check ok: %s", text)


def _load_shadow_grader(path: str | Path) -> Any:
    """A shadow model on one CPU thread: it must never compete with the active one (blocking)."""
    from vision.grader import Grader

    return Grader.load(path, ["CPUExecutionProvider"], 1)


def _shadow_of(grader: Any, journal: Journal, events: Events) -> Shadow:
    return Shadow(grader, journal, events, sha256=getattr(grader, "sha256", ""))


def _model_warnings(events: Events, card: Any) -> None:
    """Say once at start what the model's card warns of: synthetic training, no guard."""
    if getattr(card, "training_source", None) == "synthetic":
        events.warning(
            "model_synthetic_only",
            f"model {card.name} {card.version} was trained on generated images only: "
            "retrain or fine-tune it on the site's photographs before trusting its grades",
            model=card.name,
            version=card.version,
        )
    if getattr(card, "input_summary", None) is None:
        events.info(
            "model_without_input_summary",
            f"model {card.name} {card.version} has no input summary in its card: "
            "images unlike its training images are not recognised (no out-of-distribution guard)",
            model=card.name,
            version=card.version,
        )


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    try:
        await task
    except (asyncio.CancelledError, Exception):  # noqa: BLE001 - reported by _task_done
        pass
