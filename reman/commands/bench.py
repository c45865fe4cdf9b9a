"""`reman bench browse|probe|certs` for integrators, and `reman bench-sim` (registered by reman.cli)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from edge.bench import simulator, tools
from edge.bench.certs import DEFAULT_CLIENT_URI, default_owner, make_certificate
from edge.config.station import BenchConfig

SECURITY_CHOICES = ("None", "Basic256Sha256_Sign", "Basic256Sha256_SignAndEncrypt")
PASSWORD_ENV = "REMAN_BENCH_PASSWORD"


def connection_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options every command that talks to a bench takes."""
    options = [
        click.option(
            "--endpoint", required=True, help="OPC UA endpoint, e.g. opc.tcp://10.0.0.5:4840."
        ),
        click.option(
            "--security",
            type=click.Choice(SECURITY_CHOICES),
            default="None",
            show_default=True,
            help="Security policy and message mode.",
        ),
        click.option(
            "--cert",
            type=click.Path(dir_okay=False),
            help="Client certificate (from `reman bench certs`).",
        ),
        click.option("--key", type=click.Path(dir_okay=False), help="Client private key (PEM)."),
        click.option(
            "--uri",
            default=DEFAULT_CLIENT_URI,
            show_default=True,
            help="Application URI; must match the client certificate.",
        ),
        click.option(
            "--server-cert",
            type=click.Path(dir_okay=False),
            help="Server certificate to trust (default: the one the server offers).",
        ),
        click.option("--user", help="User name, when the server asks for one."),
        click.option(
            "--password-file",
            type=click.Path(dir_okay=False),
            help=f"File holding the password (or set {PASSWORD_ENV}).",
        ),
        click.option(
            "--timeout",
            "timeout_s",
            type=float,
            default=4.0,
            show_default=True,
            help="Connect and request timeout, seconds.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def bench_config(nodes: dict[str, str] | None = None, **opts: Any) -> BenchConfig:
    """A BenchConfig from the connection options (and NAME=NODEID mappings)."""
    policy, _, mode = opts["security"].partition("_")
    password = click.get_current_context().meta.get("password_env")
    try:
        return BenchConfig.model_validate(
            {
                "endpoint": opts["endpoint"],
                "timeout_s": opts["timeout_s"],
                "security": {
                    "policy": policy,
                    "mode": mode or "None",
                    "certificate": opts["cert"],
                    "private_key": opts["key"],
                    "application_uri": opts["uri"],
                    "server_certificate": opts["server_cert"],
                },
                "username": opts["user"],
                "password": password,
                "password_file": opts["password_file"],
                "nodes": {name: {"node_id": node_id} for name, node_id in (nodes or {}).items()},
            }
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise click.UsageError(problems) from None


# A client command's failure is one line of ours; asyncua's own log of it (a traceback when a
# server refuses our certificate) would bury that line. --debug shows asyncua's log again.
SILENT = logging.CRITICAL + 1


def quiet_asyncua(ctx: click.Context, level: int = logging.ERROR) -> None:
    """asyncua logs every request at INFO; keep its messages from `level` up, unless --debug."""
    root = ctx.find_root()
    if not (root.obj and root.obj.get("debug")):
        logging.getLogger("asyncua").setLevel(level)


def _node_pairs(values: tuple[str, ...]) -> dict[str, str]:
    pairs = {}
    for value in values:
        name, sep, node_id = value.partition("=")
        if not sep or not name or not node_id:
            raise click.BadParameter(f"{value!r} is not NAME=NODEID", param_hint="--node")
        pairs[name] = node_id
    return pairs


@click.group("bench")
@click.pass_context
def bench(ctx: click.Context) -> None:
    """Look at an OPC UA test bench: browse its nodes, read mapped values, make certificates."""
    quiet_asyncua(ctx, SILENT)
    ctx.meta["password_env"] = os.environ.get(PASSWORD_ENV)


@bench.command("browse")
@connection_options
@click.option(
    "--node",
    "start",
    help="Start here instead of the Objects folder (ns=2;s=... or nsu=URI;s=...).",
)
@click.option(
    "--depth", type=click.IntRange(1, 20), default=3, show_default=True, help="Levels to descend."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print JSON lines instead of an indented list."
)
def browse_cmd(start: str | None, depth: int, as_json: bool, **opts: Any) -> None:
    """List the address space: node ids (as a config names them), browse names, data types, values."""
    rows = asyncio.run(tools.browse(bench_config(**opts), start, depth))
    for row in rows:
        if as_json:
            click.echo(json.dumps(row.__dict__, default=str))
            continue
        kind = (
            f" [{row.data_type}] = {_short(row.value)}"
            if row.node_class == "Variable"
            else f" ({row.node_class})"
        )
        click.echo(f"{'  ' * row.depth}{row.browse_name}  {row.node_id}{kind}")


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@bench.command("probe")
@connection_options
@click.option(
    "--node", "nodes", multiple=True, required=True, help="NAME=NODEID to read; repeat for more."
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print {"NAME": {"value", "status", "source_ts"}} as JSON.',
)
def probe_cmd(nodes: tuple[str, ...], as_json: bool, **opts: Any) -> None:
    """Read mapped nodes once and print them, and the bench's clock skew against this machine's;
    an unknown node is an error naming it (exit 1)."""
    result = asyncio.run(tools.probe_bench(bench_config(_node_pairs(nodes), **opts)))
    if as_json:
        click.echo(json.dumps(result.readings))
        return
    for name, reading in result.readings.items():
        click.echo(f"{name}: {reading['value']!r} {reading['status']} {reading['source_ts']}")
    click.echo(f"clock skew: {_skew_text(result.clock_skew_s)}")


def _skew_text(skew_s: float | None) -> str:
    if skew_s is None:
        return "unknown (the bench has no Server_ServerStatus_CurrentTime)"
    side = "behind" if skew_s > 0 else "ahead of"
    return f"{skew_s:+.3f} s (the bench's clock is {abs(skew_s):.3f} s {side} this machine's)"


@bench.command("certs")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for client-cert.der and client-key.pem.",
)
@click.option(
    "--uri",
    default=DEFAULT_CLIENT_URI,
    show_default=True,
    help="Application URI, written into subjectAltName (set bench.security.application_uri to it).",
)
@click.option("--host", help="Host name for subjectAltName (default: this machine's).")
@click.option("--force", is_flag=True, help="Overwrite existing files.")
@click.option(
    "--owner",
    metavar="USER[:GROUP]",
    help="Give both files to USER (key 0600) or USER:GROUP (key 0640) "
    "(default as root: the node's user, reman, when it exists).",
)
def certs_cmd(out: Path, uri: str, host: str | None, force: bool, owner: str | None) -> None:
    """Make a self-signed client certificate and key for a secured bench connection."""
    cert, key = out / "client-cert.der", out / "client-key.pem"
    if not force and (cert.exists() or key.exists()):
        raise click.UsageError(f"{cert} or {key} exists; pass --force to overwrite")
    owner = owner or default_owner()
    make_certificate(cert, key, uri=uri, host=host, owner=owner)
    click.echo(f"certificate: {cert}\nprivate key: {key}\napplication uri: {uri}")
    if owner:
        click.echo(f"owner: {owner} (key mode {key.stat().st_mode & 0o777:04o})")
    click.echo("Give the certificate to the bench's administrator to trust.")


@click.command("bench-sim")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=4840,
    show_default=True,
    help="Port to listen on (0: a free one).",
)
@click.option(
    "--scenario",
    type=click.Choice(simulator.SCENARIOS),
    default="normal",
    show_default=True,
    help="normal: in spec; out_of_spec: beyond the families' limits; flaky: drops and bad statuses.",
)
@click.option(
    "--cycle-s",
    type=click.FloatRange(min=0.5),
    help="Run a test cycle every S seconds (default: only on StartTest).",
)
@click.option(
    "--security",
    multiple=True,
    type=click.Choice(SECURITY_CHOICES),
    help="Endpoint security; repeat for several (default None).",
)
@click.option(
    "--user",
    "users",
    multiple=True,
    help="NAME=PASSWORD a client must log in with (a test bench only).",
)
@click.option(
    "--cert-dir",
    type=click.Path(file_okay=False),
    help="Keep the server certificate here (default: a temporary folder).",
)
@click.option(
    "--clock-offset-s",
    type=float,
    default=0.0,
    show_default=True,
    help="Shift the bench's clock (timestamps, CurrentTime): -60 is a minute behind.",
)
@click.option(
    "--auto-ack-s",
    type=click.FloatRange(min=0),
    help="Act as a PLC: S seconds after DispositionReady turns true, write Seq to Ack.",
)
def bench_sim_cmd(
    host: str,
    port: int,
    scenario: str,
    cycle_s: float | None,
    security: tuple[str, ...],
    users: tuple[str, ...],
    cert_dir: str | None,
    clock_offset_s: float,
    auto_ack_s: float | None,
) -> None:
    """Run an OPC UA server that behaves like a test bench for the example families."""
    quiet_asyncua(click.get_current_context())
    sim = simulator.BenchSimulator(
        host,
        port or None,
        scenario=scenario,
        cycle_s=cycle_s,
        security=security or ("None",),
        users=_node_pairs(users),
        cert_dir=cert_dir,
        clock_offset_s=clock_offset_s,
        auto_ack_s=auto_ack_s,
    )
    asyncio.run(_serve(sim))


async def _serve(sim: simulator.BenchSimulator) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with sim:
        click.echo(f"endpoint: {sim.endpoint}")
        click.echo(f"namespace: {sim.namespace_uri}")
        if sim.server_certificate:
            click.echo(f"server certificate: {sim.server_certificate}")
        click.echo(
            f"scenario: {sim.scenario}; call Bench.StartTest(core_id) to run a cycle", nl=True
        )
        await stop.wait()


COMMANDS: list[click.Command] = [bench, bench_sim_cmd]
