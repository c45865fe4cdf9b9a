"""Every `reman` command has help text, and `--help` works on each."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from reman.cli import cli


def all_commands(group: click.Group, prefix=()):
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        yield path, command
        if isinstance(command, click.Group):
            yield from all_commands(command, path)


COMMANDS = list(all_commands(cli))


def test_root_help_lists_commands():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for path, _ in COMMANDS:
        if len(path) == 1:
            assert path[0] in result.output


@pytest.mark.parametrize(
    "path,command", COMMANDS, ids=lambda v: " ".join(v) if isinstance(v, tuple) else ""
)
def test_command_has_help(path, command):
    assert (command.help or "").strip(), f"reman {' '.join(path)} has no help text"
    result = CliRunner().invoke(cli, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.output
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert (param.help or "").strip(), (
                f"option {param.name} of reman {' '.join(path)} has no help"
            )


def test_expected_error_prints_no_traceback(tmp_path):
    result = CliRunner().invoke(cli, ["check-config", str(tmp_path / "missing.yaml")])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "missing.yaml" in result.output
