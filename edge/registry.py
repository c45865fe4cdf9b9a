"""The node's model registry: models kept by version and sha256, one active, at most one shadow.

A site trains a candidate, adds it, runs it in shadow beside the active model, then promotes it,
and can roll back. The registry lives in a folder beside the journal (`<journal folder>/models`):
each model file copied in as `<version>-<sha256 prefix>.onnx` and `registry.json` saying which
is active, which is the shadow and which were active before (for rollback).

    registry = ModelRegistry(folder, events)
    registry.add(path)                     card checked against the graph (vision.grader)
    registry.entries()                     every model with its role: active, shadow or none
    registry.shadow(version, user) / registry.end_shadow(user)
    registry.promote(version, user, reason)
    registry.rollback(user, reason)        the model active before, again
    registry.active_path()                 what the node loads at start (None: the config's model)
    registry.file_of(version)              a kept model's file (to load it before a change)
    registry.rollback_target()             the version a rollback would make active

Every change is an `event` (model_added, model_shadowed, model_shadow_ended, model_promoted,
model_rolled_back) through the Events given, which the caller journals; a change made for a
`model/set` command carries its `command_id` in the event's detail. A refused change is a
RegistryError saying why, and changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from edge.contract.timefmt import utc_now
from edge.errors import RegistryError
from edge.events import Events

STATE = "registry.json"


@dataclass(frozen=True)
class ModelEntry:
    """One model in the registry."""

    version: str
    name: str
    task: str
    sha256: str
    file: str  # the file's name inside the registry folder
    added: str  # when, UTC RFC 3339
    role: str | None = None  # active, shadow or None


class ModelRegistry:
    """The models of one node; see the module docstring."""

    def __init__(self, folder: Path, events: Events):
        self.folder = Path(folder)
        self.events = events

    # ------------------------------------------------------------ reading

    @property
    def state_file(self) -> Path:
        """The file saying which model has which role (a running node watches it)."""
        return self.folder / STATE

    def entries(self) -> list[ModelEntry]:
        """Every model, oldest first, each with its role."""
        state = self._state()
        roles = {state["active"]: "active", state["shadow"]: "shadow"}
        return [
            ModelEntry(**{**entry, "role": roles.get(entry["version"])})
            for entry in state["models"].values()
        ]

    def active_path(self) -> Path | None:
        """The active model's file, or None when the registry has no active model."""
        return self._path_of("active")

    def shadow_path(self) -> Path | None:
        """The shadow model's file, or None."""
        return self._path_of("shadow")

    def file_of(self, version: str) -> Path:
        """The file of a kept model; RegistryError when the registry has no such version."""
        state = self._state()
        self._known(state, version)
        return self.folder / state["models"][version]["file"]

    def rollback_target(self) -> str | None:
        """The version a rollback would make active (None: the model the station config names,
        which graded before the first promotion); RegistryError when there is none."""
        history = self._state()["history"]
        if not history:
            raise RegistryError("nothing to roll back to: no model was active before this one")
        return history[-1]

    def can_roll_back(self) -> bool:
        """Whether a model (or the configured one) was active before the current one."""
        return bool(self._state()["history"])

    # ------------------------------------------------------------ changes

    def add(self, model_file: Path) -> ModelEntry:
        """Check a model (its card against its graph) and keep a copy; the same file again is a
        no-op, another file under a version already kept is refused."""
        card = _checked_card(Path(model_file))
        sha256 = _sha256(Path(model_file))
        state = self._state()
        known = state["models"].get(card.version)
        if known is not None:
            if known["sha256"] == sha256:
                return ModelEntry(**known)
            raise RegistryError(
                f"version {card.version} is already in the registry with another file "
                f"(sha256 {known['sha256'][:12]}); give the new model its own version"
            )
        name = f"{_safe(card.version)}-{sha256[:12]}.onnx"
        self.folder.mkdir(parents=True, exist_ok=True)
        _copy(Path(model_file), self.folder / name)
        beside = _card_beside(Path(model_file))
        if beside.is_file():  # a card kept beside the model travels with it
            _copy(beside, _card_beside(self.folder / name))
        entry = ModelEntry(card.version, card.name, card.task, sha256, name, utc_now())
        state["models"][card.version] = asdict(entry)
        self._save(state)
        self.events.info(
            "model_added",
            f"model {card.name} {card.version} ({card.task}) added to the registry",
            version=card.version,
            sha256=sha256,
        )
        return entry

    def shadow(
        self, version: str, user: str, reason: str | None = None, command_id: str | None = None
    ) -> None:
        """Run `version` beside the active model (one shadow at a time)."""
        state = self._state()
        self._known(state, version)
        if version == state["active"]:
            raise RegistryError(f"model {version} is the active one; shadow another version")
        state["shadow"] = version
        self._save(state)
        self.events.info(
            "model_shadowed",
            f"{user} runs model {version} in shadow" + (f": {reason}" if reason else ""),
            version=version,
            user=user,
            reason=reason,
            command_id=command_id,
        )

    def end_shadow(
        self, user: str, reason: str | None = None, command_id: str | None = None
    ) -> str:
        """Stop running the shadow model; returns its version (it stays in the registry)."""
        state = self._state()
        version = state["shadow"]
        if version is None:
            raise RegistryError("no model runs in shadow")
        state["shadow"] = None
        self._save(state)
        self.events.info(
            "model_shadow_ended",
            f"{user} ended the shadow of model {version}" + (f": {reason}" if reason else ""),
            version=version,
            user=user,
            reason=reason,
            command_id=command_id,
        )
        return version

    def promote(self, version: str, user: str, reason: str, command_id: str | None = None) -> None:
        """Make `version` the active model; the one it replaces can be rolled back to."""
        state = self._state()
        self._known(state, version)
        previous = state["active"]
        if version == previous:
            raise RegistryError(f"model {version} is already the active one")
        state["history"].append(previous)  # None: the configured model, which a rollback restores
        state["active"] = version
        if state["shadow"] == version:
            state["shadow"] = None
        self._save(state)
        self.events.info(
            "model_promoted",
            f"{user} made model {version} active (was {previous or 'the configured model'}): "
            f"{reason}",
            version=version,
            previous=previous,
            user=user,
            reason=reason,
            command_id=command_id,
        )

    def rollback(self, user: str, reason: str, command_id: str | None = None) -> str | None:
        """Make the model active before the current one active again; returns its version (None:
        the configured model)."""
        state = self._state()
        if not state["history"]:
            raise RegistryError("nothing to roll back to: no model was active before this one")
        current, version = state["active"], state["history"].pop()
        state["active"] = version
        self._save(state)
        self.events.warning(
            "model_rolled_back",
            f"{user} rolled back from model {current} to {version or 'the configured model'}: "
            f"{reason}",
            version=version,
            previous=current,
            user=user,
            reason=reason,
            command_id=command_id,
        )
        return version

    # ------------------------------------------------------------ the state file

    def _state(self) -> dict:
        path = self.folder / STATE
        if not path.exists():
            return {"models": {}, "active": None, "shadow": None, "history": []}
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise RegistryError(f"model registry {path} cannot be read: {exc}") from exc
        return state

    def _save(self, state: dict) -> None:
        path = self.folder / STATE
        partial = path.with_suffix(".part")
        try:
            partial.write_text(json.dumps(state, indent=2))
            os.replace(partial, path)
        except OSError as exc:
            raise RegistryError(f"model registry {path} cannot be written: {exc}") from exc

    def _known(self, state: dict, version: str) -> None:
        if version not in state["models"]:
            known = ", ".join(state["models"]) or "none"
            raise RegistryError(f"no model {version} in the registry (known: {known})")

    def _path_of(self, role: str) -> Path | None:
        state = self._state()  # one read of the state file
        version = state[role]
        return None if version is None else self.folder / state["models"][version]["file"]


def registry_folder(journal_path: str | Path) -> Path:
    """Where a node keeps its registry: `models/` beside its journal."""
    return Path(journal_path).parent / "models"


def _checked_card(path: Path):
    from vision.errors import VisionError
    from vision.grader import Grader

    if not path.is_file():
        raise RegistryError(f"no model file {path}")
    try:
        return Grader.load(path, ["CPUExecutionProvider"]).card
    except VisionError as exc:
        raise RegistryError(f"model {path} refused: {exc}") from exc


def _card_beside(model_path: Path) -> Path:
    from vision.card import card_path

    return card_path(model_path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _safe(version: str) -> str:
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in version)


def _copy(source: Path, target: Path) -> None:
    partial = target.with_suffix(".part")
    try:
        shutil.copyfile(source, partial)
        os.replace(partial, target)
    except OSError as exc:
        raise RegistryError(f"cannot copy {source} into the registry: {exc}") from exc
