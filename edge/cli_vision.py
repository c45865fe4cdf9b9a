"""`reman` commands for the vision area (registered by edge.cli)."""

from __future__ import annotations

import json
from pathlib import Path

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


_CORROSION_TABLES = click.Choice(["iso4628-3", "astm-d610"])


def _load_grader(model, threads: int, corrosion_table: str):
    from vision.grader import DEFAULT_MODEL, Grader

    return Grader.load(model or DEFAULT_MODEL, threads=threads, corrosion_table=corrosion_table)


@click.command("grade")
@click.argument("images", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="ONNX model with its model card [default: the shipped models/reman-seg.onnx].")
@click.option("--json", "as_json", is_flag=True,
              help='Print one JSON object per image: {"image": ..., "defects": {...}}.')
@click.option("--overlay-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write each image's overlay JPEG (<name>.overlay.jpg) into this folder.")
@click.option("--threads", default=1, show_default=True, type=click.IntRange(min=0),
              help="onnxruntime intra-op threads (0: all cores).")
@click.option("--corrosion-table", default="iso4628-3", show_default=True, type=_CORROSION_TABLES,
              help="Grade table for corrosion: ISO 4628-3 (Ri0..Ri5) or ASTM D610 (10..0).")
@click.pass_context
def grade_command(ctx: click.Context, images: tuple[Path, ...], model: Path | None, as_json: bool,
                  overlay_dir: Path | None, threads: int, corrosion_table: str) -> None:
    """Grade wear, corrosion and coating damage on core images.

    A file that cannot be read is reported on stderr and the others are still graded; the
    exit code is non-zero when any file failed.
    """
    from vision.batch import grade_files

    grader = _load_grader(model, threads, corrosion_table)
    failed = 0
    for result in grade_files(grader, images, overlay_dir):
        if result.error is not None:
            failed += 1
            click.echo(f"error: {result.error}", err=True)
        elif as_json:
            click.echo(json.dumps(result.to_dict()))
        else:
            click.echo(_grade_line(result))
    if failed:
        click.echo(f"{failed} of {len(images)} image(s) could not be graded", err=True)
        ctx.exit(1)


def _grade_line(result) -> str:
    from vision.overlay import grade_text

    parts = [grade_text(name, grade) + f" (confidence {grade.confidence:.2f})"
             for name, grade in result.view.defects.items()]
    return f"{result.path}: " + "; ".join(parts)


@click.command("eval")
@click.option("--model", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="ONNX model with its model card [default: the shipped models/reman-seg.onnx].")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder in `reman synth` layout (images/, masks/, labels.jsonl).")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Evaluate only the first N labelled images.")
@click.option("--threads", default=0, show_default=True, type=click.IntRange(min=0),
              help="onnxruntime intra-op threads (0: all cores).")
def eval_command(model: Path | None, data_dir: Path, as_json: bool, limit: int | None, threads: int) -> None:
    """Evaluate a model on a labelled folder: IoU per class, grade agreement, confusion."""
    from vision.evaluate import evaluate

    figures = evaluate(_load_grader(model, threads, "iso4628-3"), data_dir, limit)
    if as_json:
        click.echo(json.dumps(figures))
        return
    click.echo(f"images: {figures['images']}")
    for name, value in figures["iou"].items():
        click.echo(f"IoU {name}: {value:.4f}")
    click.echo(f"mean IoU (defects): {figures['mean_iou']}")
    click.echo(f"grade exact: {figures['grade_exact']:.2%}  within one: {figures['grade_within_one']:.2%}")


COMMANDS += [grade_command, eval_command]
