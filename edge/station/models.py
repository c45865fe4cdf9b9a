"""Model changes while the node runs (`model/set`) and the registry's state (`models`).

    switch = ModelSwitch(station, registry, events, load_active=..., load_shadow=...)
    await switch.on_model_command(command)   shadow VERSION, end_shadow, promote VERSION, rollback
    switch.publish_state()                   the retained `models` message (at start, each change)
    switch.publish_if_changed()              again when the shadow's counts moved (with `stats`)
    await switch.follow_registry(stop)       picks up `reman model ...` run beside the node

A model is loaded and checked (its card against its graph, its sha256 against the registry's) on
a thread of its own before the registry changes: only a model that loads becomes active or
shadow, and the station grades with a promoted one from the next inspection (the inspection in
hand finishes with the model it started with). A model that does not load, or a change the
registry refuses (unknown version, nothing to roll back to), is a `model_refused` warning and
changes nothing. Commands are carried out one at a time; a command whose `command_id` the journal
has seen already (carried out or refused) changes nothing. Each change is the registry's event,
journaled like every event, with the command's id.

`reman model shadow/promote/rollback` (or `reman train --candidate`) run on the node's machine
change the registry file while the node runs; `follow_registry` notices the file change and
brings the running models in line (load, check, swap), then publishes `models`, so a candidate
added from the command line runs in shadow without restarting the node.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from edge.contract import ModelCommand, ModelsState, RegistryModel
from edge.contract.timefmt import utc_now
from edge.errors import JournalError, RegistryError
from edge.events import Events
from edge.journal.outbox import OutboxMessage
from edge.journal.shadow import shadow_count
from edge.station.loop import Station
from edge.station.shadow import Shadow
from vision.errors import VisionError

log = logging.getLogger("reman.models")

REGISTRY_POLL_S = 2.0
"""How often the registry file is checked for changes made beside the node."""

Loader = Callable[[Path], Any]
"""A model file to a loaded, checked grader (blocking; ModelSwitch runs it on its thread)."""

ShadowMaker = Callable[[Any], Shadow]
"""A loaded grader to the Shadow that runs it."""

CHANGE_CODES = frozenset(
    {"model_shadowed", "model_shadow_ended", "model_promoted", "model_rolled_back", "model_refused"}
)
"""The events a `model/set` leaves in the journal, carrying its command_id."""


class Registry(Protocol):
    """What ModelSwitch needs of edge.registry.ModelRegistry."""

    @property
    def state_file(self) -> Path: ...

    def entries(self) -> list[Any]: ...
    def file_of(self, version: str) -> Path: ...
    def rollback_target(self) -> str | None: ...
    def can_roll_back(self) -> bool: ...
    def shadow(
        self, version: str, user: str, reason: str | None = ..., command_id: str | None = ...
    ) -> None: ...
    def end_shadow(
        self, user: str, reason: str | None = ..., command_id: str | None = ...
    ) -> str: ...
    def promote(
        self, version: str, user: str, reason: str, command_id: str | None = ...
    ) -> None: ...
    def rollback(self, user: str, reason: str, command_id: str | None = ...) -> str | None: ...


class ModelSwitch:
    """Applies `model/set` commands to the registry and the running station; see the module
    docstring."""

    def __init__(
        self,
        station: Station,
        registry: Registry,
        events: Events,
        *,
        load_active: Loader,
        make_shadow: ShadowMaker,
        load_shadow: Loader,
        configured: Path | None = None,
    ):
        self.station = station
        self.configured = (
            configured  # the station config's model: active when the registry names none
        )
        self.registry = registry
        self.events = events
        self.load_active = load_active
        self.load_shadow = load_shadow
        self.make_shadow = make_shadow
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="models")
        self._lock = asyncio.Lock()
        self._running = self._roles()  # what the node loaded at start: (active, shadow)
        self._published: dict | None = None  # the last `models` state queued, without its ts

    async def on_model_command(self, command: ModelCommand) -> bool:
        """Carry out one `model/set`; True when the registry changed."""
        async with self._lock:
            try:
                if command.command_id is not None and self._seen(command.command_id):
                    log.info("model/set %s repeated; nothing changed", command.command_id)
                    return False
                await self._apply(command)
            except (RegistryError, VisionError, JournalError) as exc:
                self._refused(command, str(exc))
                return False
            self._running = self._roles()
            self.publish_state()
            return True

    async def follow_registry(
        self, stop: asyncio.Event, interval_s: float = REGISTRY_POLL_S
    ) -> None:
        """Until `stop`: when the registry file changes, run what it says (see the module
        docstring)."""
        stamp = self._stamp()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), interval_s)
            except asyncio.TimeoutError:
                pass
            now = self._stamp()
            if now == stamp or stop.is_set():
                continue
            stamp = now
            async with self._lock:
                await self._follow()

    async def _follow(self) -> None:
        try:
            active, shadow = roles = self._roles()
        except RegistryError as exc:
            self.events.warning("models_unreadable", f"model registry not followed: {exc}")
            return
        if roles == self._running:
            return  # the node's own change, or one that changed no role
        was_active, was_shadow = self._running
        try:
            if active != was_active:
                self.station.use_grader(await self._load_active(active))
            if shadow != was_shadow:
                maker = self.make_shadow
                new = None if shadow is None else maker(await self._load(self.load_shadow, shadow))
                await self._replace_shadow(new)
        except (RegistryError, VisionError) as exc:
            self.events.warning(
                "model_refused",
                f"the registry names active {active}, shadow {shadow}, but the node keeps "
                f"grading with what it has: {exc}",
                active=active,
                shadow=shadow,
            )
            return
        log.info("model registry changed beside the node: active %s, shadow %s", active, shadow)
        self._running = roles
        self.publish_state()

    def _roles(self) -> tuple[str | None, str | None]:
        entries = self.registry.entries()
        return _with_role(entries, "active"), _with_role(entries, "shadow")

    def _stamp(self) -> tuple[int, int] | None:
        try:
            info = self.registry.state_file.stat()
        except OSError:
            return None
        return info.st_mtime_ns, info.st_size

    def state(self) -> ModelsState:
        """The registry as the `models` topic carries it: `shadow_seen` counts every inspection
        the shadow version graded (the journal keeps them), `shadow_skipped` those it skipped
        since it started running in this node."""
        entries = self.registry.entries()
        shadow = self.station.shadow
        shadow_version = _with_role(entries, "shadow")
        seen = shadow_count(self.station.journal, shadow_version) if shadow_version else 0
        return ModelsState(
            station=self.events.station,
            ts=utc_now(),
            active=_with_role(entries, "active"),
            shadow=shadow_version,
            can_roll_back=self.registry.can_roll_back(),
            models=[_registry_model(entry) for entry in entries],
            shadow_seen=seen,
            shadow_skipped=shadow.skipped if shadow is not None else 0,
        )

    def publish_state(self) -> bool:
        """Queue the retained `models` message; False (with a warning) when the registry cannot
        be read."""
        try:
            state = self.state()
        except (RegistryError, JournalError) as exc:
            self.events.warning("models_unreadable", f"models state not published: {exc}")
            return False
        self._published = state.model_dump(exclude={"ts"})
        payload = state.model_dump_json(by_alias=True).encode()
        message = OutboxMessage(
            kind="models", topic=self.station.topics.models, payload=payload, retain=True
        )
        return self.station.send(message)

    def publish_if_changed(self) -> bool:
        """Queue `models` when anything in it but its time differs from the last one queued
        (the shadow's seen and skipped counts grow between changes); True when queued."""
        try:
            state = self.state()
        except (RegistryError, JournalError):
            return False  # publish_state, at the next change, says why
        if state.model_dump(exclude={"ts"}) == self._published:
            return False
        return self.publish_state()

    def close(self) -> None:
        """Free the loading thread (a load in hand finishes on its own)."""
        self._executor.shutdown(wait=False)

    # ------------------------------------------------------------ the changes

    async def _apply(self, command: ModelCommand) -> None:
        if command.action == "promote":
            assert command.version is not None  # the contract requires it
            await self._promote(command, command.version)
        elif command.action == "rollback":
            await self._rollback(command)
        elif command.action == "shadow":
            assert command.version is not None  # the contract requires it
            await self._shadow(command, command.version)
        else:
            self.registry.end_shadow(command.user, command.reason, command.command_id)
            await self._replace_shadow(None)

    async def _promote(self, command: ModelCommand, version: str) -> None:
        grader = await self._load(self.load_active, version)
        self.registry.promote(version, command.user, command.reason, command.command_id)
        self.station.use_grader(grader)
        if self.station.shadow is not None and self.station.shadow.version == version:
            await self._replace_shadow(None)  # the registry ended its shadow

    async def _rollback(self, command: ModelCommand) -> None:
        grader = await self._load_active(self.registry.rollback_target())
        self.registry.rollback(command.user, command.reason, command.command_id)
        self.station.use_grader(grader)

    async def _shadow(self, command: ModelCommand, version: str) -> None:
        grader = await self._load(self.load_shadow, version)
        self.registry.shadow(version, command.user, command.reason, command.command_id)
        await self._replace_shadow(self.make_shadow(grader))

    async def _replace_shadow(self, shadow: Shadow | None) -> None:
        previous = self.station.use_shadow(shadow)
        if previous is not None:
            await previous.drain()  # its inspection in hand is still journaled

    async def _load_active(self, version: str | None) -> Any:
        """The grader for the active role: a kept version, or (None) the configured model."""
        if version is not None:
            return await self._load(self.load_active, version)
        if self.configured is None:
            raise RegistryError("no configured model to go back to")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.load_active, self.configured)

    async def _load(self, loader: Loader, version: str) -> Any:
        """The grader of a kept model, loaded on the switch's thread and checked against the
        registry; RegistryError or VisionError when it is not the model the registry kept."""
        path = self.registry.file_of(version)
        kept = {entry.version: entry for entry in self.registry.entries()}[version]
        grader = await asyncio.get_running_loop().run_in_executor(self._executor, loader, path)
        if grader.card.version != version:
            raise RegistryError(f"{path.name} holds version {grader.card.version}, not {version}")
        if getattr(grader, "sha256", kept.sha256) != kept.sha256:
            raise RegistryError(
                f"model {version}'s file {path.name} changed since it was added "
                f"(sha256 {grader.sha256[:12]}, kept {kept.sha256[:12]})"
            )
        return grader

    def _refused(self, command: ModelCommand, why: str) -> None:
        what = command.action + (f" {command.version}" if command.version else "")
        self.events.warning(
            "model_refused",
            f"{command.user}'s {what} refused, nothing changed: {why}",
            action=command.action,
            version=command.version,
            user=command.user,
            reason=command.reason,
            command_id=command.command_id,
        )

    def _seen(self, command_id: str) -> bool:
        """Whether the journal holds a change or refusal made for `command_id`; JournalError
        when it cannot tell (the command is then refused: a rollback twice is two rollbacks)."""
        codes = self.station.journal.event_codes_for_command(command_id)
        return any(code in CHANGE_CODES for code in codes)


def _with_role(entries: list[Any], role: str) -> str | None:
    return next((entry.version for entry in entries if entry.role == role), None)


def _registry_model(entry: Any) -> RegistryModel:
    return RegistryModel(
        version=entry.version,
        name=entry.name,
        task=entry.task,
        sha256=entry.sha256,
        added=entry.added,
        role=entry.role,
    )
