"""`reman` commands for the journal area (registered by edge.cli)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []
