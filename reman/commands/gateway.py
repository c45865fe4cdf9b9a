"""`reman gateway`: run the station dashboard; `adduser`: add an account; `token`: API tokens."""

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


@gateway.group("token")
def token() -> None:
    """API tokens for machine clients (MES, ERP): `Authorization: Bearer` on /api/."""


def _token_store(config_path: Path):
    from gateway.store import Store

    return Store.from_config(load_gateway(config_path).store)


_config_option = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Gateway config file (its store holds the tokens).",
)


@token.command("create")
@_config_option
@click.argument("name")
@click.option(
    "--scope",
    type=click.Choice(["read", "override", "admin"]),
    required=True,
    help="read: the API's reads; override: also confirm and override; admin: everything.",
)
@click.option("--expires", default=None, help="90d, 12h or a time such as 2027-06-30 (UTC).")
def token_create(config_path: Path, name: str, scope: str, expires: str | None) -> None:
    """Make an API token NAME and print it once (only its hash is kept)."""
    from gateway import tokens

    store = _token_store(config_path)
    expires_ts = tokens.parse_expiry(expires)
    text = tokens.create(store, name, scope, expires_ts)
    click.echo(text)
    until = f", until {expires_ts}" if expires_ts else ""
    click.echo(f"token {name} ({scope}{until}): keep it now, it is not shown again", err=True)


@token.command("list")
@_config_option
def token_list(config_path: Path) -> None:
    """Every token: name, scope, made, expires, revoked (never a secret)."""
    from gateway import tokens

    for row in tokens.listed(_token_store(config_path)):
        state = f"revoked {row['revoked_ts']}" if row["revoked_ts"] else "active"
        expires = row["expires_ts"] or "never"
        click.echo(
            f"{row['name']}\t{row['scope']}\tmade {row['created_ts']}\texpires {expires}\t{state}"
        )


@token.command("revoke")
@_config_option
@click.argument("name")
def token_revoke(config_path: Path, name: str) -> None:
    """Revoke the token NAME: its next request gets 401."""
    from gateway import tokens

    if not tokens.revoke(_token_store(config_path), name):
        raise click.ClickException(f"no active token named {name!r}")
    click.echo(f"revoked token {name}")
