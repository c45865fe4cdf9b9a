"""`reman model ...`: the node's model registry (add, list, shadow, promote, rollback).

Each command reads the station config (--config, else $REMAN_CONFIG, else the installed one) for
the journal's folder, beside which the registry lives, and journals every change as an event
that the node publishes like its own. A running node watches the registry and follows a change
within seconds (it loads and checks the model, then grades with it from the next inspection); a
stopped node uses it when it starts.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from edge.contract import Topics
from edge.errors import RegistryError
from edge.events import Events
from edge.registry import ModelEntry, ModelRegistry, registry_folder
from reman.commands.journal import _installed_station, _no_station_config, config_option

_USER_HELP = "Who makes the change (kept in the event) [default: $USER]."


@contextmanager
def _registry(config: Path | None) -> Iterator[ModelRegistry]:
    """The station's registry, its events journaled for the node to publish."""
    from edge.journal.journal import Journal
    from edge.journal.outbox import OutboxMessage

    station = _installed_station(config)
    if station is None:
        raise _no_station_config(journal_option=False)
    topic = Topics(station.station_id, station.mqtt.topic_prefix).event
    with Journal.open(station.journal.path) as journal:
        events = Events(
            station.station_id,
            sinks=[
                lambda event: journal.record_event(event, OutboxMessage.for_event(event, topic))
            ],
        )
        try:
            yield ModelRegistry(registry_folder(station.journal.path), events)
        except RegistryError as exc:  # a refused change is an event too, then one line
            events.warning("model_refused", str(exc))
            raise


def candidate_version(config: Path | None, wanted: str | None) -> str:
    """The version for a model about to be trained as a candidate: `wanted`, or one more than the
    highest whole-number version in the station's registry ("1" if none).

    Checked before training, so that a long run is not lost to a typo: no usable station config
    is the one-line ConfigError, a `wanted` version the registry holds already a RegistryError.
    """
    if _installed_station(config) is None:
        raise _no_station_config(journal_option=False)
    with _registry(config) as registry:
        versions = [e.version for e in registry.entries()]
    if wanted is not None and wanted in versions:  # nothing was asked of the registry yet
        raise RegistryError(
            f"version {wanted} is already in the registry; give the new model its own "
            "--model-version"
        )
    numbers = [int(v) for v in versions if v.isdigit()]
    return wanted or str(max(numbers, default=0) + 1)


def add_candidate(model_file: Path, config: Path | None, user: str | None) -> ModelEntry:
    """Add `model_file` to the station's registry (checked as `reman model add` checks it) and
    run it in shadow (as `reman model shadow`); a refusal is a RegistryError, journaled."""
    with _registry(config) as registry:
        entry = registry.add(model_file)
        registry.shadow(entry.version, _user(user))
    return entry


def _user(user: str | None) -> str:
    import getpass

    return user or getpass.getuser()


@click.group("model")
def model_group() -> None:
    """The node's models: add a trained one, run it in shadow, promote it, roll back."""


@model_group.command("add")
@click.argument("model_file", type=click.Path(path_type=Path, dir_okay=False))
@config_option
def add_command(model_file: Path, config: Path | None) -> None:
    """Check MODEL_FILE (its card against its graph) and keep it in the registry by version."""
    with _registry(config) as registry:
        entry = registry.add(model_file)
    click.echo(f"added {entry.name} {entry.version} ({entry.task}, sha256 {entry.sha256[:12]})")


@model_group.command("list")
@config_option
def list_command(config: Path | None) -> None:
    """Every model in the registry with its role (active, shadow)."""
    with _registry(config) as registry:
        entries = registry.entries()
    if not entries:
        click.echo("no models in the registry: the node runs the config's model.path")
    for entry in entries:
        role = f"  [{entry.role}]" if entry.role else ""
        click.echo(f"{entry.version}  {entry.name}  {entry.task}  {entry.sha256[:12]}{role}")


@model_group.command("shadow")
@click.argument("version")
@click.option("--user", help=_USER_HELP)
@config_option
def shadow_command(version: str, user: str | None, config: Path | None) -> None:
    """Run VERSION beside the active model on every inspection it can, deciding nothing."""
    with _registry(config) as registry:
        registry.shadow(version, _user(user))
    click.echo(f"model {version} runs in shadow (a running node follows within seconds)")


@model_group.command("end-shadow")
@click.option("--reason", help="Why (kept in the event).")
@click.option("--user", help=_USER_HELP)
@config_option
def end_shadow_command(reason: str | None, user: str | None, config: Path | None) -> None:
    """Stop running the shadow model (it stays in the registry; `shadow` runs it again)."""
    with _registry(config) as registry:
        version = registry.end_shadow(_user(user), reason)
    click.echo(f"model {version} no longer runs in shadow (a running node follows within seconds)")


@model_group.command("promote")
@click.argument("version")
@click.option("--reason", required=True, help="Why (kept in the event and the journal).")
@click.option("--user", help=_USER_HELP)
@config_option
def promote_command(version: str, reason: str, user: str | None, config: Path | None) -> None:
    """Make VERSION the model that decides; the one it replaces can be rolled back to."""
    with _registry(config) as registry:
        registry.promote(version, _user(user), reason)
    click.echo(f"model {version} is active (a running node follows within seconds)")


@model_group.command("rollback")
@click.option("--reason", required=True, help="Why (kept in the event and the journal).")
@click.option("--user", help=_USER_HELP)
@config_option
def rollback_command(reason: str, user: str | None, config: Path | None) -> None:
    """Make the model that was active before the current one active again."""
    with _registry(config) as registry:
        version = registry.rollback(_user(user), reason)
    what = f"model {version}" if version is not None else "the configured model"
    click.echo(f"{what} is active again (a running node follows within seconds)")


@model_group.command("agreement")
@click.argument("version")
@config_option
def agreement_command(version: str, config: Path | None) -> None:
    """How the shadow model VERSION compared with the model that decided (JSON): cores seen, a
    confusion table of decisions, and the share of equal grades per defect type."""
    import json

    from edge.journal.shadow import agreement

    station = _installed_station(config)
    if station is None:
        raise _no_station_config(journal_option=False)
    from edge.journal.journal import Journal

    with Journal.open(station.journal.path) as journal:
        click.echo(json.dumps(agreement(journal, version), indent=2))


COMMANDS: list[click.Command] = [model_group]
