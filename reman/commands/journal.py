"""`reman` commands for decisions and the journal (registered by reman.cli).

reman decide --family ID --input FILE.json      dry-run the rules on one input
reman journal show | export                     read the station journal
reman journal republish [--since TS]            queue journaled records again (rebuild a copy)
reman rules replay --rules DIR                  what-if: decisions under other rules
reman passport CORE_ID                          a core's product-passport record
reman passport CORE_ID --qr FILE.png|.svg       the core's QR label (its passport id's URL)
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from edge.contract.errors import ConfigError, ConfigProblem
from edge.contract.timefmt import UTC
from edge.errors import RemanError

STATION_CONFIG = Path("/etc/reman/station.yaml")
"""Where deploy/raspberrypi/install.sh puts the station config: the default of the journal
commands' --config, so that they work as documented on an installed node."""

CONFIG_ENV = "REMAN_CONFIG"

_CONFIG_HELP = (
    "Station config (station.yaml) giving the default journal path, families folder and site."
)
_INSTALLED_CONFIG_HELP = (
    "Station config (station.yaml) giving the journal path and site "
    f"[default: ${CONFIG_ENV}, else {STATION_CONFIG}]."
)


def _station(config: Path | None):
    if config is None:
        return None
    from edge.config.files import load_station

    return load_station(config)


def _installed_station(config: Path | None):
    """The station config given, else the installed one when it exists, else None."""
    if config is None and STATION_CONFIG.exists():
        config = STATION_CONFIG
    return _station(config)


def _journal_path(journal: Path | None, config: Path | None) -> Path:
    return journal if journal is not None else _journal_of(None, _installed_station(config))


def _journal_of(journal: Path | None, station) -> Path:
    if journal is not None:
        return journal
    if station is None:
        raise _no_station_config()
    return Path(station.journal.path)


def _no_station_config(journal_option: bool = True) -> ConfigError:
    """No --journal, no --config and no installed config: one line naming the file and options."""
    message = f"no station config here; give --config FILE (or set {CONFIG_ENV})"
    message += " or --journal FILE" if journal_option else ""
    return ConfigError([ConfigProblem(str(STATION_CONFIG), None, "(file)", message)])


def _families_dir(families: Path | None, config: Path | None) -> Path:
    if families is not None:
        return families
    station = _station(config)
    return Path(station.families_dir) if station else Path("config/families")


def _open_journal(path: Path):
    from edge.journal.journal import Journal

    if not path.exists():
        raise RemanError(f"no journal at {path}")
    return Journal.open(path)


def _echo_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def journal_options(func: Callable) -> Callable:
    """--journal and --config, shared by the commands that read the journal."""
    func = config_option(func)
    return click.option(
        "--journal",
        "journal",
        type=click.Path(path_type=Path, dir_okay=False),
        help="Journal file (SQLite); default from --config.",
    )(func)


def config_option(func: Callable) -> Callable:
    """--config, from $REMAN_CONFIG when not given (the installed config is the fallback)."""
    return click.option(
        "--config",
        "config",
        type=click.Path(path_type=Path, dir_okay=False),
        envvar=CONFIG_ENV,
        help=_INSTALLED_CONFIG_HELP,
    )(func)


# ---------------------------------------------------------------- decide


@click.command("decide")
@click.option(
    "--family", "family_id", required=True, help="Product family id (its file name stem)."
)
@click.option(
    "--input",
    "input_file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help='JSON file: {"defects": {...}, "measurements": {...}, "image_problems": [...]}.',
)
@click.option(
    "--families",
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder of family YAML files (default: from --config, else config/families).",
)
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False), help=_CONFIG_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the decision object as JSON.")
def decide_command(
    family_id: str, input_file: Path, families: Path | None, config: Path | None, as_json: bool
) -> None:
    """Dry run: decide one core's disposition from grades and measurements in a JSON file."""
    from edge.decision.families import load_families
    from edge.decision.rules import decide

    family_set = load_families(_families_dir(families, config))
    data = _read_input(input_file)
    decision = decide(
        family_set.get(family_id),
        data.get("defects", {}),
        data.get("measurements", {}),
        data.get("image_problems", []),
        now=datetime.now(UTC),
    )
    if as_json:
        _echo_json(decision.model_dump(mode="json"))
        return
    click.echo(
        f"{decision.label} (code {int(decision.code)}, credit {decision.credit.name.lower()})"
    )
    for reason in decision.reasons:
        click.echo(f"  - {reason.text}" + (f"  [{reason.rule}]" if reason.rule else ""))


def _read_input(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RemanError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except json.JSONDecodeError as exc:
        raise RemanError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from exc
    if not isinstance(data, dict):
        raise RemanError(f"{path}: expected an object with defects and measurements")
    return data


# ---------------------------------------------------------------- journal show / export / republish


@click.group("journal")
def journal_group() -> None:
    """Read the station journal: inspections, decisions, overrides; republish its records."""


@journal_group.command("show")
@journal_options
@click.option("--core", help="Only this core id.")
@click.option(
    "--since", help="Only inspections at or after this time (RFC 3339, e.g. 2026-11-28T08:00:00Z)."
)
@click.option(
    "--decision", help="Only this effective decision (REUSE, REMANUFACTURE, RECYCLE, REVIEW)."
)
@click.option("--limit", default=100, show_default=True, help="Show at most the newest N.")
@click.option("--json", "as_json", is_flag=True, help="Print the full records as JSON.")
def show_command(
    journal: Path | None,
    config: Path | None,
    core: str | None,
    since: str | None,
    decision: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List journaled inspections, oldest first; an override is marked with *."""
    with _open_journal(_journal_path(journal, config)) as store:
        records = store.find(core=core, since=since, decision=decision, limit=limit)
    if as_json:
        _echo_json([json.loads(r.to_json()) for r in records])
        return
    for r in records:
        mark = "*" if r.override else " "
        reasons = "; ".join(x.text for x in r.decision.reasons)
        click.echo(
            f"{r.ts}  {r.seq:>7}  {r.core_id:<20} {r.family or '-':<22} "
            f"{r.effective_code().name:<13}{mark} {r.effective_credit().name.lower():<8} {reasons}"
        )
    click.echo(f"{len(records)} inspection(s)")


@journal_group.command("export")
@journal_options
@click.option(
    "--csv",
    "csv_file",
    required=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="CSV file to write (one row per inspection, with impact columns).",
)
@click.option("--since", help="Only inspections at or after this time (RFC 3339).")
def export_command(
    journal: Path | None, config: Path | None, csv_file: Path, since: str | None
) -> None:
    """Export journaled inspections to CSV, with material kept in use and CO2e avoided."""
    from edge.contract.table import CSV_COLUMNS, csv_row

    with _open_journal(_journal_path(journal, config)) as store:
        records = store.find(since=since, limit=None)
    with open(csv_file, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(csv_row(r) for r in records)
    click.echo(f"{len(records)} inspection(s) written to {csv_file}")


@journal_group.command("republish")
@config_option
@click.option("--since", help="Only inspections at or after this time (RFC 3339).")
def republish_command(config: Path | None, since: str | None) -> None:
    """Queue journaled inspections again on the inspection topic, to rebuild the gateway's store.

    The node's publisher sends them from the outbox, oldest first, like any other message."""
    from edge.contract import Topics
    from edge.journal.republish import republish

    station = _installed_station(config)
    if station is None:
        raise _no_station_config(journal_option=False)
    topics = Topics(station.station_id, station.mqtt.topic_prefix)
    with _open_journal(Path(station.journal.path)) as store:
        queued = republish(store, topics, since)
    click.echo(f"{queued} inspection(s) queued on {topics.inspection}")


# ---------------------------------------------------------------- rules replay


@click.group("rules")
def rules_group() -> None:
    """Product-family rules: what-if replays before a rule change."""


@rules_group.command("replay")
@click.option(
    "--rules",
    "rules_dir",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Folder of family YAML files to try (the candidate rules).",
)
@journal_options
@click.option("--since", help="Only inspections at or after this time (RFC 3339).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def replay_command(
    rules_dir: Path, journal: Path | None, config: Path | None, since: str | None, as_json: bool
) -> None:
    """Re-decide journaled inspections under other rules; show which decisions would change."""
    from edge.decision.families import load_families
    from edge.decision.rules import replay

    families = load_families(rules_dir)
    with _open_journal(_journal_path(journal, config)) as store:
        report = replay(families, store.find(since=since, limit=None))
    if as_json:
        _echo_json(report)
        return
    skipped = f" ({report['skipped']} failed inspection(s) skipped)" if report["skipped"] else ""
    click.echo(f"{report['changed']} of {report['inspections']} decision(s) would change{skipped}")
    for step, count in sorted(report["transitions"].items()):
        click.echo(f"  {step}: {count}")
    for change in report["changes"]:
        click.echo(
            f"  {change['ts']} {change['core_id']} {change['from']} -> {change['to']}: "
            + "; ".join(change["reasons"])
        )


# ---------------------------------------------------------------- passport


@click.command("passport")
@click.argument("core_id")
@journal_options
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "aas", "aasx"]),
    default="json",
    show_default=True,
    help="json: the passport record; aas: the AAS V3 environment (JSON); aasx: the AASX package "
    "(needs --out).",
)
@click.option("--operator", help="Operator (the remanufacturer) named in the passport.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of standard output.",
)
@click.option(
    "--qr",
    "qr_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the core's QR label (its passport id's URL) to this .png (25 mm at 300 dpi) or "
    ".svg file instead of the passport.",
)
def passport_command(
    core_id: str,
    journal: Path | None,
    config: Path | None,
    fmt: str,
    operator: str | None,
    out: Path | None,
    qr_file: Path | None,
) -> None:
    """Export a core's product passport: identity, every inspection, R-ladder status, as AAS."""
    from edge.contract.aas import (
        build_environment,
        environment_aasx,
        environment_json,
        family_submodels,
    )
    from edge.contract.errors import LabelError, NoInspections, PassportIdError
    from edge.journal.passport import core_passport

    if fmt == "aasx" and out is None:
        raise RemanError("an AASX package is binary: give --out FILE")
    label_fmt = _label_format(qr_file) if qr_file else None
    station = _installed_station(config)
    issuer = _issuer(station, operator)
    images_dir = Path(station.journal.images_dir) if station else None
    try:
        with _open_journal(_journal_of(journal, station)) as store:
            passport = core_passport(store, core_id, issuer, images_dir)
        if qr_file and label_fmt:
            _write_label(passport, issuer, core_id, qr_file, label_fmt)
            return
        extra = family_submodels(passport, issuer) if fmt != "json" else []
        env = build_environment(passport, issuer, extra=extra) if fmt != "json" else None
    except (NoInspections, PassportIdError, LabelError) as exc:
        raise RemanError(str(exc)) from exc
    if env is None:
        _write(json.dumps(passport, indent=2, default=str), out)
    elif fmt == "aas":
        _write(json.dumps(environment_json(env), indent=2), out)
    else:
        assert out is not None
        _write_file(out, environment_aasx(env))


def _label_format(qr_file: Path) -> str:
    """The label's format from its file's extension; RemanError for one that is not a label's."""
    from edge.contract.label import FORMATS

    kind = qr_file.suffix.lower().lstrip(".")
    if kind not in FORMATS:
        raise RemanError(f"--qr {qr_file}: a label file ends in .png or .svg")
    return kind


def _write_label(passport, issuer, core_id: str, qr_file: Path, kind: str) -> None:
    """The core's QR label (its passport id's resolver URL, the core id under an SVG's code)."""
    from edge.contract.label import core_url, qr_label

    _write_file(qr_file, qr_label(core_url(passport, issuer), kind, core_id))


def _issuer(station, operator: str | None):
    """The passports' issuer from the station config's `passport` section and `site`."""
    from edge.contract.identity import Issuer

    if station is None:
        return Issuer(operator=operator)
    ids = station.passport
    return Issuer(
        id_template=ids.id_template,
        operator=operator or ids.operator,
        operator_id=ids.operator_id,
        facility=station.site or None,
        facility_id=ids.facility_id,
        resolver_url_template=ids.resolver_url_template,
    )


def _write(text: str, out: Path | None) -> None:
    if out is None:
        click.echo(text)
    else:
        _write_file(out, (text + "\n").encode("utf-8"))


def _write_file(path: Path, data: bytes) -> None:
    """Write an export; RemanError naming the file when it cannot be written."""
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise RemanError(f"cannot write {path}: {exc.strerror or exc}") from exc


COMMANDS: list[click.Command] = [decide_command, journal_group, rules_group, passport_command]
