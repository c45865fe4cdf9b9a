"""The `reman` command line: a thin layer that parses options and calls one library function.

Expected errors (our exception trees) print one clean message and exit non-zero; `--debug`
shows the traceback instead. Commands live in `reman/commands/` by area and register here.
"""

from __future__ import annotations

import logging
import sys

import click

from edge.contract import systemd
from edge.contract.errors import ConfigError, ContractError
from edge.errors import RemanError
from gateway.errors import GatewayError
from vision.errors import VisionError

EXIT_ERROR = 1
EXIT_CONFIG = 2
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class RemanGroup(click.Group):
    """A click group that turns expected errors into clean messages."""

    def invoke(self, ctx: click.Context):  # noqa: D102 - click API
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            for problem in exc.problems:
                click.echo(str(problem), err=True)
            ctx.exit(EXIT_CONFIG)
        except _expected_errors() as exc:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {exc}", err=True)
            ctx.exit(EXIT_ERROR)


def _expected_errors() -> tuple[type[Exception], ...]:
    return (RemanError, ContractError, VisionError, GatewayError)


@click.group(cls=RemanGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
@click.version_option(package_name="reman-edge")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """reman-edge: inspection stations for remanufacturing.

    Grades returned cores from camera images, reads the test bench over OPC UA, decides a
    disposition with per-family rules, journals it and publishes it over MQTT.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    logging.basicConfig(level=logging.DEBUG if debug else logging.INFO, handlers=[_log_handler()])
    if not debug:
        # asyncua logs every publish response at INFO; our own events say what matters.
        logging.getLogger("asyncua").setLevel(logging.WARNING)


def _log_handler() -> logging.Handler:
    """Log to stderr: for journald (priority prefixes, no timestamp) when that is where it goes."""
    handler = logging.StreamHandler(sys.stderr)
    journal = systemd.stderr_is_journal(sys.stderr)
    handler.setFormatter(systemd.JournalFormatter() if journal else logging.Formatter(LOG_FORMAT))
    return handler


def _register() -> None:
    from reman.commands import bench, config, demo, gateway, journal, model, node, vision

    for module in (config, vision, bench, journal, model, node, demo, gateway):
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    """Console entry point."""
    cli(prog_name="reman")


if __name__ == "__main__":
    main()
