"""`reman check-config`: validate station, gateway and family files."""

from __future__ import annotations

from pathlib import Path

import click

from edge.contract.errors import ConfigError
from reman.configcheck import KINDS, check_file


@click.command("check-config")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--kind", type=click.Choice(KINDS), help="Kind of every file (default: detected from its keys)."
)
def check_config(files: tuple[Path, ...], kind: str | None) -> None:
    """Validate config FILES; print FILE:LINE: KEY: message per problem and exit 2 on any."""
    problems = []
    checked = []
    for path in files:
        try:
            checked.append((path, check_file(path, kind)))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    for path, found in checked:
        click.echo(f"ok: {path} ({found})")
    click.echo(f"{len(checked)} file(s) valid")


COMMANDS: list[click.Command] = [check_config]
