"""`reman` commands for the bench area (registered by edge.cli)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
