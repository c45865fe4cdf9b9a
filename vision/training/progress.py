"""A plain progress bar on stderr with a rate and an estimate of the time left (no dependency)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 24


class Progress:
    """Rewrites one stderr line as work advances: bar, count, percent, elapsed, ETA, a note.

    On a terminal the line is redrawn in place; elsewhere (logs, CI) a line is written only each
    time another tenth is done, so logs stay short.
    """

    def __init__(self, total: int, label: str = "", stream: TextIO | None = None) -> None:
        self.total = max(int(total), 1)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.started = time.monotonic()
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._last_tenth = -1

    def advance(self, steps: int = 1, note: str = "") -> None:
        """Record `steps` more units of work and redraw."""
        self.done = min(self.done + steps, self.total)
        tenth = self.done * 10 // self.total
        if self._tty or tenth != self._last_tenth:
            self._last_tenth = tenth
            end = "\r" if self._tty and self.done < self.total else "\n"
            self.stream.write(self.line(note) + end)
            self.stream.flush()

    def line(self, note: str = "") -> str:
        """The current progress line."""
        elapsed = time.monotonic() - self.started
        share = self.done / self.total
        eta = elapsed / share - elapsed if share > 0 else 0.0
        filled = int(WIDTH * share)
        bar = "#" * filled + "." * (WIDTH - filled)
        return (
            f"{self.label} [{bar}] {self.done}/{self.total} {share:4.0%} "
            f"{_clock(elapsed)} ETA {_clock(eta)} {note}".rstrip()
        )


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"
