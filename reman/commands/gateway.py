"""`reman gateway`: run the station dashboard; `reman gateway adduser`: add an account."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from gateway.config import load_gateway


@click.group("gateway", invoke_without_command=True)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="Gateway config file (YAML); required to run the dashboard.",
)
@click.pass_context
def gateway(ctx: click.Context, config_path: Path | None) -> None:
    """Run the station dashboard: MQTT ingest and web server, until SIGTERM or Ctrl-C.

    `reman gateway --config gateway.yaml` runs it; `reman gateway adduser` adds accounts.
    """
    if ctx.invoked_subcommand is not None:
        return
    if config_path is None:
        raise click.UsageError("give --config FILE")
    from gateway.server import run_gateway

    config = load_gateway(config_path)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_gateway(config, stop, started=lambda gw: click.echo(f"dashboard at {gw.url}", err=True))


@gateway.command("adduser")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Gateway config file to add the account to (comments are kept).",
)
@click.argument("username")
@click.option(
    "--role",
    type=click.Choice(["operator", "engineer", "admin"]),
    default="operator",
    show_default=True,
    help="operator: view, confirm; engineer: override, export, events; admin: all.",
)
@click.option(
    "--password-file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="Read the password from this file's first line instead of prompting.",
)
def adduser(config_path: Path, username: str, role: str, password_file: Path | None) -> None:
    """Add USERNAME to the gateway config with an argon2 hash of its password (or reset it)."""
    from gateway.accounts import add_user

    if password_file is not None:
        lines = password_file.read_text(encoding="utf-8").splitlines()
        password = lines[0] if lines else ""
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    created = add_user(config_path, username, role, password)
    click.echo(f"{'added' if created else 'updated'} {username} ({role}) in {config_path}")


COMMANDS: list[click.Command] = [gateway]
