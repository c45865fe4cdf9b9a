"""`reman` commands for the vision area (registered by edge.cli)."""

from __future__ import annotations

import click

COMMANDS: list[click.Command] = []


@click.command("synth")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Folder to write images/, masks/ and labels.jsonl into.")
@click.option("--count", default=100, show_default=True, type=click.IntRange(min=1),
              help="Number of synthetic cores to draw.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed of the first core; core i uses seed + i, so a seed always gives the same set.")
@click.option("--size", default=256, show_default=True, type=click.IntRange(min=32),
              help="Image height and width in pixels.")
def synth_command(out_dir: str, count: int, seed: int, size: int) -> None:
    """Draw synthetic core photographs with exact part and defect masks and their grades."""
    from vision.synth import write_dataset

    labels = write_dataset(out_dir, count, seed, size=(size, size))
    click.echo(f"wrote {count} cores to {labels.parent} ({labels.name})")


COMMANDS.append(synth_command)
