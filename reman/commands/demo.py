"""`reman demo`: run the whole station on this machine."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import click

from edge.ports import free_port
from reman.demo import Demo, run_demo


@click.command("demo")
@click.option("--http-port", type=int, default=None, help="Dashboard port (default: a free one).")
@click.option("--mqtt-port", type=int, default=None, help="mosquitto port (default: a free one).")
@click.option(
    "--opcua-port", type=int, default=None, help="Bench simulator port (default: a free one)."
)
@click.option(
    "--interval",
    "interval_s",
    type=float,
    default=5.0,
    show_default=True,
    help="Seconds between bench test cycles (each starts an inspection).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=Path("data/demo"),
    show_default=True,
    help="Where the demo keeps images, configs, journal, store and logs.",
)
def demo(http_port, mqtt_port, opcua_port, interval_s, data_dir):
    """Run broker, bench simulator, edge node and dashboard on this machine until Ctrl-C."""
    parts = Demo(
        data_dir=data_dir.resolve(),
        http_port=http_port or free_port(),
        mqtt_port=mqtt_port or free_port(),
        opcua_port=opcua_port or free_port(),
        interval_s=interval_s,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run_demo(parts, stop, echo=lambda line: click.echo(line))


COMMANDS: list[click.Command] = [demo]
