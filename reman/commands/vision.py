"""`reman` commands for the vision area (registered by reman.cli)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from reman.commands.journal import config_option

COMMANDS: list[click.Command] = []


@click.command("synth")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Folder to write images/, masks/ and labels.jsonl into.",
)
@click.option(
    "--count",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="Number of synthetic cores to draw.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Seed of the first core; core i uses seed + i, so a seed always gives the same set.",
)
@click.option(
    "--size",
    default=256,
    show_default=True,
    type=click.IntRange(min=32),
    help="Image height and width in pixels.",
)
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
@click.option(
    "--model",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="ONNX model with its model card [default: the shipped models/reman-seg.onnx].",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help='Print one JSON object per image: {"image": ..., "defects": {...}}.',
)
@click.option(
    "--overlay-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write each image's overlay JPEG (<name>.overlay.jpg) into this folder.",
)
@click.option(
    "--threads",
    default=1,
    show_default=True,
    type=click.IntRange(min=0),
    help="onnxruntime intra-op threads (0: all cores).",
)
@click.option(
    "--corrosion-table",
    default="iso4628-3",
    show_default=True,
    type=_CORROSION_TABLES,
    help="Grade table for corrosion: ISO 4628-3 (Ri0..Ri5) or ASTM D610 (10..0).",
)
@click.pass_context
def grade_command(
    ctx: click.Context,
    images: tuple[Path, ...],
    model: Path | None,
    as_json: bool,
    overlay_dir: Path | None,
    threads: int,
    corrosion_table: str,
) -> None:
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

    parts = [
        grade_text(name, grade) + f" (confidence {grade.confidence:.2f})"
        for name, grade in result.view.defects.items()
    ]
    ood = result.view.ood
    if ood is not None and ood.out_of_distribution:
        parts.append(f"OUT OF DISTRIBUTION: {ood.describe()}")
    return f"{result.path}: " + "; ".join(parts)


@click.command("eval")
@click.option(
    "--model",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="ONNX model with its model card [default: the shipped models/reman-seg.onnx].",
)
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder in `reman synth` layout (images/, masks/, labels.jsonl).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as one JSON object.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Evaluate only the first N labelled images.",
)
@click.option(
    "--threads",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="onnxruntime intra-op threads (0: all cores).",
)
def eval_command(
    model: Path | None, data_dir: Path, as_json: bool, limit: int | None, threads: int
) -> None:
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
    click.echo(
        f"grade exact: {figures['grade_exact']:.2%}  within one: {figures['grade_within_one']:.2%}"
    )


COMMANDS += [grade_command, eval_command]


# ---------------------------------------------------------------- training on photographs


@click.command("train")
@click.option(
    "--task",
    type=click.Choice(["classify", "segment", "anomaly"]),
    required=True,
    help="classify: one folder per label; segment: images with same-stem .png masks beside them; "
    "anomaly: a folder of good parts only (memory bank, threshold from held-out good images; "
    "--size a multiple of 32, --val-split the share held out).",
)
@click.option(
    "--data",
    "data_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Training folder (image folders, or images with masks beside them).",
)
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="ONNX model to write; the card, metrics JSON and PNG drawings go beside it.",
)
@click.option(
    "--epochs",
    default=30,
    show_default=True,
    type=click.IntRange(min=1),
    help="Passes over the training images.",
)
@click.option(
    "--steps",
    default=None,
    type=click.IntRange(min=1),
    help="segment: train the native-resolution segmenter (pretrained EfficientNet-Lite0 encoder, "
    "--size px crops at the photographs' own resolution, tiled inference) for this many "
    "optimisation steps; the learning-rate schedule spans exactly these steps and --epochs is "
    "not used. Without it, the small U-Net trains on photographs resized to --size.",
)
@click.option(
    "--size",
    default=128,
    show_default=True,
    type=click.IntRange(min=32),
    help="Model input height and width in pixels (a multiple of 8).",
)
@click.option(
    "--val-split",
    default=0.2,
    show_default=True,
    type=click.FloatRange(0.0, 0.9),
    help="Share of each class held out for validation (stratified, seeded).",
)
@click.option(
    "--false-alarms",
    "false_alarms",
    default=None,
    type=click.FloatRange(0.0, 0.5, min_open=True, max_open=True),
    help="anomaly: the share of good parts the threshold may flag, e.g. 0.02 (the upper quantile "
    "of the held-out good images' scores; hold out at least 1/RATE of them) [default: 1.1 x the "
    "highest held-out good score, which flags none of them and misses faint defects].",
)
@click.option(
    "--init",
    "init_path",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Fine-tune from this model: one made by `reman train` (same task and --width), "
    "or for --task segment the shipped models/reman-seg.onnx.",
)
@click.option(
    "--backbone",
    type=click.Choice(["efficientnet-lite0"]),
    default=None,
    help="--task classify: a linear head on the frozen ImageNet-pretrained EfficientNet-Lite0 "
    "(the train extra), instead of a compact CNN from scratch; --size a multiple of 32.",
)
@click.option(
    "--seed",
    default=0,
    show_default=True,
    type=int,
    help="Seed for the split, augmentation and weights.",
)
@click.option(
    "--label-map",
    "label_map",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help='JSON: label (or mask value) to defect type and grade, e.g. {"rust": {"defect": "corrosion", "grade": 4}}.',
)
@click.option(
    "--width",
    default=16,
    show_default=True,
    type=click.IntRange(min=4),
    help="Channels of the first layer (model size grows with its square).",
)
@click.option(
    "--batch-size",
    default=32,
    show_default=True,
    type=click.IntRange(min=2),
    help="Images per step.",
)
@click.option(
    "--lr",
    default=3e-3,
    show_default=True,
    type=click.FloatRange(min=0.0, min_open=True),
    help="Peak learning rate of the one-cycle schedule (1e-3 suits segmentation of subtle defects).",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="torch device: auto (CUDA when present, else CPU), cpu, cuda, cuda:1 ...",
)
@click.option(
    "--threads",
    default=None,
    type=click.IntRange(min=1),
    help="torch CPU threads [default: torch's choice].",
)
@click.option(
    "--candidate",
    is_flag=True,
    help="Then add the model to the node's registry (checked as `reman model add` checks it) "
    "and run it in shadow (as `reman model shadow`); the station from --config. A station "
    "config that cannot be used stops the command before training; a refused add leaves the "
    "trained model where --out put it.",
)
@click.option(
    "--model-version",
    default=None,
    help="Version in the model card; the registry keeps models by it [default: with "
    "--candidate, one more than the highest whole-number version in the registry; else 1].",
)
@click.option(
    "--user", help="--candidate: who starts the shadow run (kept in the event) [default: $USER]."
)
@config_option
def train_command(
    task: str,
    data_dir: Path,
    out_path: Path,
    epochs: int,
    steps: int | None,
    size: int,
    val_split: float,
    false_alarms: float | None,
    init_path: Path | None,
    backbone: str | None,
    seed: int,
    label_map: Path | None,
    width: int,
    batch_size: int,
    lr: float,
    device: str,
    threads: int | None,
    candidate: bool,
    model_version: str | None,
    user: str | None,
    config: Path | None,
) -> None:
    """Train a classification, segmentation or anomaly model on your own photographs (the `train` extra).

    Writes MODEL.onnx with its model card (labels, label map to defect types and grades, input
    spec, metrics, data summary), MODEL.card.json, MODEL.metrics.json, MODEL.curves.png and
    MODEL.confusion.png, and MODEL.curves.csv (step, loss, learning rate, validation figures
    when measured) with MODEL.curves.png drawn from it. A progress bar with the loss and the time
    left goes to stderr. A folder it cannot use is reported, naming the files, before training.
    """
    from reman.commands.model import candidate_version

    try:
        from vision.training.fit_photos import TrainSettings
        from vision.training.train_cmd import summary, train
    except ImportError as exc:
        raise click.ClickException(
            f"training needs the `train` extra (pip install 'reman-edge[train]'): {exc}"
        ) from exc
    settings = TrainSettings(
        epochs=epochs,
        steps=steps,
        size=size,
        val_split=val_split,
        seed=seed,
        batch_size=batch_size,
        lr=lr,
        width=width,
        device=device,
        init=init_path,
        threads=threads,
        backbone=backbone,
        false_alarms=false_alarms,
        version=candidate_version(config, model_version) if candidate else model_version or "1",
    )
    click.echo(summary(train(task, data_dir, out_path, settings, label_map)))
    if candidate:
        _add_candidate(out_path, config, user)


def _add_candidate(model_path: Path, config: Path | None, user: str | None) -> None:
    from edge.errors import RegistryError, RemanError
    from reman.commands.model import add_candidate

    try:
        entry = add_candidate(model_path, config, user)
    except RemanError as exc:  # the registry's refusal, or its journal gone since the check
        raise RegistryError(f"{exc}; the trained model stays at {model_path}") from exc
    click.echo(
        f"candidate {entry.name} {entry.version} added to the registry and runs in shadow "
        f"(a running node follows within seconds; reman model agreement {entry.version} "
        "compares it)"
    )


COMMANDS.append(train_command)


def _callback_of(command: click.Command) -> Callable[..., Any]:
    """The function a command was defined with (click types it optional; @click.command sets it)."""
    if command.callback is None:
        raise TypeError(f"command {command.name!r} has no callback")
    return command.callback


_synth_layout_eval = _callback_of(eval_command)


def _eval_any_layout(*args, **params):
    """`reman eval` on class folders or masks beside images; other folders go to the synth evaluation."""
    from vision.folders import detect_layout

    if detect_layout(params["data_dir"]) not in ("folders", "masks"):
        return _synth_layout_eval(*args, **params)
    from vision.evaluate_folders import evaluate_folder, format_report
    from vision.grader import DEFAULT_MODEL

    report = evaluate_folder(
        params.get("model") or DEFAULT_MODEL, params["data_dir"], params.get("threads", 0)
    )
    click.echo(json.dumps(report) if params.get("as_json") else format_report(report))


eval_command.callback = _eval_any_layout
eval_command.help = (eval_command.help or "") + (
    "\n\nAlso evaluates class folders (accuracy, per-class precision/recall/F1, confusion) and images"
    " with .png masks beside them (IoU, Dice), both with image-level defect detection accuracy and AUROC."
)


@click.group("dataset")
def dataset_group() -> None:
    """Turn the station's journal into training data (the learning loop)."""


@dataset_group.command("export")
@click.option(
    "--journal",
    "journal_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The station journal (SQLite file).",
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write <label>/<image> and manifest.jsonl into.",
)
@click.option(
    "--masks",
    "masks_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write every labelled view as its raw frame with a class mask beside it, for "
    "reman train --task segment.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
def dataset_export_command(
    journal_path: Path, out_dir: Path, masks_dir: Path | None, as_json: bool
) -> None:
    """Copy images of reviewed and overridden inspections into class folders by the person's decision.

    Folders are named by the decision a person made (reuse, remanufacture, recycle); REVIEW
    inspections nobody has decided yet go to unlabelled/, which `reman train` ignores. Raw frames
    only: an annotated overlay never enters a dataset. With --masks, every view a person labelled
    on the dashboard is also written as its raw frame with a class mask beside it.
    """
    from edge.journal.dataset import export_labelled, export_reviewed
    from edge.journal.journal import Journal

    with Journal.open(journal_path) as journal:
        summaries = {out_dir: export_reviewed(journal, out_dir)}
        if masks_dir is not None:
            summaries[masks_dir] = export_labelled(journal, masks_dir)
    if as_json:
        figures = {str(k): v.to_dict() for k, v in summaries.items()}
        click.echo(json.dumps(figures[str(out_dir)] if masks_dir is None else figures))
        return
    for folder, summary in summaries.items():
        labels = ", ".join(f"{k} {v}" for k, v in sorted(summary.per_label.items())) or "none"
        click.echo(
            f"{summary.images} images from {summary.inspections} inspections to {folder} ({labels})"
        )
        if summary.missing:
            click.echo(f"{len(summary.missing)} image file(s) missing or pruned, skipped", err=True)


COMMANDS.append(dataset_group)
