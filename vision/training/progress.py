"""How a training run reports itself: a progress bar on stderr and the curves it leaves behind.

    curves = Curves()
    progress = Progress(total_steps, "train", curves=curves)
    for ...:
        progress.step(loss=loss, lr=lr)           bar, count, loss, elapsed, ETA; one curve row
    curves.measure(val_accuracy=0.93)             a validation figure on the latest row
    curves.write(model_path)                      MODEL.curves.csv and MODEL.curves.png

On a terminal the bar is one line redrawn in place; elsewhere (a log, CI) it is a plain line each
time another tenth is done, or at least every `interval_s`, so logs stay short but a long run
still shows it is alive. Any trainer can use it, the anomaly trainer included: `step()` needs no
loss or learning rate, and a run without curves writes no files. No dependency beyond OpenCV.
"""

from __future__ import annotations

import csv
import math
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

WIDTH = 24
FIXED_COLUMNS = ("step", "loss", "lr")
TTY_REDRAW_S = 0.1  # a terminal is redrawn at most ten times a second


class Curves:
    """One row per optimisation step (step, loss, learning rate) plus validation figures on the
    rows of the steps after which they were measured."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float | int | None]] = []

    def add(self, step: int, loss: float | None, lr: float | None) -> None:
        """Record one step."""
        self.rows.append({"step": step, "loss": _finite(loss), "lr": lr})

    def measure(self, **figures: float) -> None:
        """Put validation figures (e.g. val_accuracy=0.93) on the latest step's row."""
        if not self.rows:
            raise ValueError("no step recorded yet to measure after")
        self.rows[-1].update({k: _finite(v) for k, v in figures.items()})

    def columns(self) -> list[str]:
        """step, loss, lr, then each validation figure in the order first measured."""
        extra = [k for row in self.rows for k in row if k not in FIXED_COLUMNS]
        return [*FIXED_COLUMNS, *dict.fromkeys(extra)]

    def paths(self, model_path: Path) -> dict[str, Path]:
        """Where the curves of `x.onnx` go: `x.curves.csv` and `x.curves.png`."""
        stem = Path(model_path).with_suffix("")
        return {"curves_csv": Path(f"{stem}.curves.csv"), "curves": Path(f"{stem}.curves.png")}

    def write(self, model_path: Path) -> dict[str, Path]:
        """Write the CSV and its drawing beside `model_path`; nothing when no step was recorded."""
        if not self.rows:
            return {}
        from vision.training.plots import draw_step_curves

        paths = self.paths(model_path)
        self.write_csv(paths["curves_csv"])
        draw_step_curves(self.rows, self.columns()[3:], paths["curves"])
        return paths

    def write_csv(self, path: Path) -> None:
        """The rows as CSV, one line per step; an empty cell where a figure was not measured."""
        columns = self.columns()
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in self.rows:
                writer.writerow([_cell(row.get(k)) for k in columns])


class Progress:
    """Writes a progress line on `stream` (stderr) as work advances: bar, count, percent,
    elapsed, ETA and a note (the loss); see the module docstring."""

    def __init__(
        self,
        total: int,
        label: str = "",
        stream: TextIO | None = None,
        curves: Curves | None = None,
        interval_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = max(int(total), 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.curves = curves
        self.interval_s = interval_s
        self.clock = clock
        self.done = 0
        self.started = clock()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_tenth = -1
        self._last_line_at = -math.inf

    def step(self, loss: float | None = None, lr: float | None = None, note: str = "") -> None:
        """One optimisation step done: record it in the curves and redraw with its loss."""
        if self.curves is not None:
            self.curves.add(self.done + 1, loss, lr)
        shown = "" if loss is None else f"loss {loss:.4f}"
        self.advance(note=" ".join(p for p in (shown, note) if p))

    def advance(self, steps: int = 1, note: str = "") -> None:
        """Record `steps` more units of work and redraw when it is time to."""
        self.done = min(self.done + steps, self.total)
        now = self.clock()
        if self._due(now):
            self._last_line_at = now
            self._last_tenth = self.done * 10 // self.total
            finished = self.done >= self.total
            if self._tty:
                # cut to the terminal's width: a wrapped line could not be redrawn in place
                line = self.line(note, now)[: shutil.get_terminal_size().columns - 1]
                self.stream.write("\r" + line + "\x1b[K" + "\n" * finished)
            else:
                self.stream.write(self.line(note, now) + "\n")
            self.stream.flush()

    def _due(self, now: float) -> bool:
        if self.done >= self.total or self.done * 10 // self.total != self._last_tenth:
            return True
        since = now - self._last_line_at
        return since >= (TTY_REDRAW_S if self._tty else self.interval_s)

    def line(self, note: str = "", now: float | None = None) -> str:
        """The progress line at `now` (the clock's time when not given)."""
        elapsed = (self.clock() if now is None else now) - self.started
        share = self.done / self.total
        eta = elapsed / share - elapsed if share > 0 else 0.0
        filled = int(WIDTH * share)
        bar = "#" * filled + "." * (WIDTH - filled)
        return (
            f"{self.label} [{bar}] {self.done}/{self.total} {share:4.0%} "
            f"{_clock(elapsed)} ETA {_clock(eta)} {note}".rstrip()
        )


def _cell(value: float | int | None) -> str:
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
