"""`reman` commands for the node area (registered by reman.cli)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import click

from edge.config.files import load_station


@click.command("node")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Station config (YAML); relative paths in it are relative to its folder.",
)
@click.option(
    "--validate-config", is_flag=True, help="Check the config and exit, starting nothing."
)
def node(config_path: Path, validate_config: bool) -> None:
    """Run a station's edge node until SIGTERM or Ctrl-C.

    Starts the journal, the model, the camera, the MQTT client, the bench client and the
    station loop; prints one line per start-up check. SIGTERM finishes the inspection in
    hand, drains the outbox to the broker and exits.
    """
    config = load_station(config_path)
    if validate_config:
        click.echo(f"ok: {config_path} (station {config.station_id})")
        return
    from edge.node import run_node

    asyncio.run(run_node(config))


COMMANDS: list[click.Command] = [node]
