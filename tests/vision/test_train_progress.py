"""What an engineer sees while `reman train` runs: the progress bar on stderr (in place on a
terminal, plain lines in a log) and the curves it leaves beside the model (CSV and PNG)."""

from __future__ import annotations

import csv
import io

import cv2
import pytest
from click.testing import CliRunner

pytest.importorskip("torch")

from reman.cli import cli  # noqa: E402
from tests.vision.photo_sets import class_folders  # noqa: E402
from vision.training.progress import Curves, Progress  # noqa: E402

EPOCHS = 2
TRAIN = ["--epochs", str(EPOCHS), "--size", "32", "--batch-size", "8", "--threads", "1"]


class Ticks:
    """A clock that moves one second each time it is read after `start()`."""

    def __init__(self) -> None:
        self.now, self.running = 0.0, False

    def __call__(self) -> float:
        if self.running:
            self.now += 1.0
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def rows_of(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`reman train --task classify` on three tiny class folders: the model and the run's stderr."""
    root = tmp_path_factory.mktemp("progress")
    data = class_folders(root / "data", per_class=8, size=32)
    model = root / "site.onnx"
    done = CliRunner().invoke(
        cli, ["train", "--task", "classify", "--data", str(data), "--out", str(model), *TRAIN]
    )
    assert done.exit_code == 0, done.output
    return model, done.stderr


def test_a_log_gets_plain_lines_with_the_loss_and_the_time_left(trained):
    _, stderr = trained
    lines = stderr.splitlines()
    assert "\r" not in stderr and "\x1b" not in stderr  # not a terminal: no redrawing
    bars = [line for line in lines if line.startswith("train [")]
    assert 2 <= len(bars) <= 11  # the first step and one line per tenth at most
    done, total = bars[-1].split("] ")[1].split()[0].split("/")
    assert done == total
    assert all(" ETA " in line and " loss " in line and "epoch " in line for line in bars)


def test_the_curves_have_a_row_per_step_and_validation_on_each_epochs_last(trained):
    model, stderr = trained
    rows = rows_of(model.with_suffix(".curves.csv"))
    total = int(stderr.splitlines()[-1].split("] ")[1].split("/")[1].split()[0])
    assert list(rows[0]) == ["step", "loss", "lr", "val_loss", "val_accuracy"]
    assert [int(r["step"]) for r in rows] == list(range(1, total + 1))
    assert all(float(r["loss"]) > 0 and float(r["lr"]) > 0 for r in rows)
    measured = [r for r in rows if r["val_accuracy"]]
    assert len(measured) == EPOCHS and measured[-1] is rows[-1]
    assert 0.0 <= float(measured[-1]["val_accuracy"]) <= 1.0
    drawing = cv2.imread(str(model.with_suffix(".curves.png")))
    assert drawing is not None and drawing.shape[1] > drawing.shape[0]


def test_the_eta_is_the_time_left_at_the_pace_so_far():
    stream, clock = io.StringIO(), Ticks()
    progress = Progress(10, "train", stream, clock=clock)
    clock.running = True
    for _ in range(5):
        progress.step(loss=0.5)
    # five steps read the clock once each (about a second a step): five more take five seconds
    assert stream.getvalue().splitlines()[-1].endswith("5/10  50% 00:05 ETA 00:05 loss 0.5000")


def test_a_long_run_in_a_log_still_writes_a_line_every_interval():
    stream, clock = io.StringIO(), Ticks()
    progress = Progress(1000, "train", stream, interval_s=10.0, clock=clock)
    clock.running = True
    for _ in range(60):  # 60 s and 6 % done: no new tenth after the first line
        progress.step(loss=1.0)
    assert 6 <= len(stream.getvalue().splitlines()) <= 7


def test_a_terminal_gets_one_line_redrawn_in_place():
    stream, clock = Terminal(), Ticks()
    progress = Progress(20, "train", stream, clock=clock)
    clock.running = True
    for _ in range(20):
        progress.step(loss=0.25, lr=0.001)
    out = stream.getvalue()
    assert out.count("\n") == 1 and out.endswith("\n")  # one line, ended when the work is done
    redraws = out.split("\r")[1:]
    assert len(redraws) == 20 and all(r.rstrip("\n").endswith("\x1b[K") for r in redraws)
    assert "20/20 100%" in redraws[-1]


def test_curves_without_loss_or_rate_for_trainers_that_have_none(tmp_path):
    curves = Curves()
    progress = Progress(3, "bank", io.StringIO(), curves=curves)
    for _ in range(3):
        progress.step()
    curves.measure(val_auroc=0.9)
    paths = curves.write(tmp_path / "a.onnx")
    assert rows_of(paths["curves_csv"]) == [
        {"step": "1", "loss": "", "lr": "", "val_auroc": ""},
        {"step": "2", "loss": "", "lr": "", "val_auroc": ""},
        {"step": "3", "loss": "", "lr": "", "val_auroc": "0.9"},
    ]
    assert paths["curves"].is_file()
    assert Curves().write(tmp_path / "b.onnx") == {}
