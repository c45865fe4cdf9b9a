"""Training curves and confusion matrices drawn with OpenCV (no plotting library needed)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

WHITE, BLACK, GREY = (255, 255, 255), (0, 0, 0), (200, 200, 200)
COLOURS = [(200, 80, 20), (20, 120, 220), (40, 160, 40), (160, 40, 160), (0, 140, 140)]
LIGHT = (150, 180, 230)
FONT = cv2.FONT_HERSHEY_SIMPLEX


def draw_curves(history: list[dict], path: Path, size: tuple[int, int] = (720, 420)) -> None:
    """Plot every numeric series in `history` (one dict per epoch) against the epoch, as PNG.

    Losses share the left panel, figures between 0 and 1 (accuracy, IoU) the right one.
    """
    width, height = size
    canvas = np.full((height, width, 3), 255, np.uint8)
    keys = [k for k in history[0] if k != "epoch"] if history else []
    losses = [k for k in keys if "loss" in k]
    scores = [k for k in keys if "loss" not in k]
    half = width // 2
    _panel(canvas, history, losses, (0, 0, half, height), "loss")
    _panel(canvas, history, scores, (half, 0, width - half, height), "score", fixed=(0.0, 1.0))
    _write(path, canvas)


def _panel(canvas, history, keys, box, title, fixed=None) -> None:
    x0, y0, w, h = box
    left, right, top, bottom = x0 + 50, x0 + w - 15, y0 + 30, y0 + h - 40
    cv2.rectangle(canvas, (left, top), (right, bottom), GREY, 1)
    cv2.putText(canvas, title, (left, top - 10), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    values = [float(e[k]) for e in history for k in keys if e.get(k) is not None]
    if not values:
        return
    low, high = fixed if fixed else (min(values), max(values))
    high = high if high > low else low + 1.0
    for label, y in ((f"{high:.3g}", top), (f"{low:.3g}", bottom)):
        cv2.putText(canvas, label, (x0 + 2, y + 4), FONT, 0.35, BLACK, 1, cv2.LINE_AA)
    steps = max(len(history) - 1, 1)
    for i, key in enumerate(keys):
        colour = COLOURS[i % len(COLOURS)]
        points = [
            (
                left + (right - left) * j // steps,
                bottom - int((float(e[key]) - low) / (high - low) * (bottom - top)),
            )
            for j, e in enumerate(history)
            if e.get(key) is not None
        ]
        cv2.polylines(canvas, [np.array(points, np.int32)], False, colour, 2, cv2.LINE_AA)
        cv2.putText(
            canvas, key, (left + 5 + 110 * i, bottom + 25), FONT, 0.4, colour, 1, cv2.LINE_AA
        )


def draw_step_curves(
    rows: list[dict], val_keys: list[str], path: Path, size: tuple[int, int] = (960, 360)
) -> None:
    """Plot per-step rows (step, loss, lr, validation figures) as PNG, three panels side by side.

    Loss per step (faint) with its running mean and any validation loss; the learning rate;
    validation figures between 0 and 1 (accuracy, IoU) at the steps they were measured.
    """
    width, height = size
    canvas = np.full((height, width, 3), 255, np.uint8)
    third = width // 3
    losses = [k for k in val_keys if "loss" in k]
    scores = [k for k in val_keys if "loss" not in k]
    steps = [int(r["step"]) for r in rows]
    loss_series = [("loss", _values(rows, "loss"), LIGHT, 1)]
    loss_series.append(("mean loss", _running_mean(_values(rows, "loss")), COLOURS[1], 2))
    loss_series += [(k, _values(rows, k), COLOURS[2 + i], 2) for i, k in enumerate(losses)]
    _step_panel(canvas, steps, loss_series, (0, 0, third, height), "loss")
    lr_series = [("lr", _values(rows, "lr"), COLOURS[0], 2)]
    _step_panel(canvas, steps, lr_series, (third, 0, third, height), "learning rate")
    score_series = [(k, _values(rows, k), COLOURS[i % 5], 2) for i, k in enumerate(scores)]
    score_box = (2 * third, 0, width - 2 * third, height)
    _step_panel(canvas, steps, score_series, score_box, "validation", fixed=(0.0, 1.0))
    _write(path, canvas)


def _values(rows: list[dict], key: str) -> list[float | None]:
    return [None if r.get(key) is None else float(r[key]) for r in rows]


def _running_mean(values: list[float | None], window: int = 0) -> list[float | None]:
    """The mean of the last `window` finite values (a tenth of the run by default)."""
    window = window or max(len(values) // 10, 1)
    out: list[float | None] = []
    for i in range(len(values)):
        recent = [v for v in values[max(0, i + 1 - window) : i + 1] if v is not None]
        out.append(sum(recent) / len(recent) if recent else None)
    return out


def _step_panel(canvas, steps, series, box, title, fixed=None) -> None:
    x0, y0, w, h = box
    left, right, top, bottom = x0 + 55, x0 + w - 15, y0 + 30, y0 + h - 45
    cv2.rectangle(canvas, (left, top), (right, bottom), GREY, 1)
    cv2.putText(canvas, title, (left, top - 10), FONT, 0.5, BLACK, 1, cv2.LINE_AA)
    values = [v for _, ys, _, _ in series for v in ys if v is not None]
    if not values or not steps:
        return
    low, high = fixed if fixed else (min(values), max(values))
    high = high if high > low else low + (abs(low) or 1.0)
    first, last = steps[0], max(steps[-1], steps[0] + 1)
    for label, y in ((f"{high:.3g}", top), (f"{low:.3g}", bottom)):
        cv2.putText(canvas, label, (x0 + 2, y + 4), FONT, 0.35, BLACK, 1, cv2.LINE_AA)
    for label, x in ((str(steps[0]), left), (str(steps[-1]), right - 30)):
        cv2.putText(canvas, label, (x, bottom + 14), FONT, 0.35, BLACK, 1, cv2.LINE_AA)
    for i, (name, ys, colour, thickness) in enumerate(series):
        points = [
            (
                left + (right - left) * (s - first) // (last - first),
                bottom - int((v - low) / (high - low) * (bottom - top)),
            )
            for s, v in zip(steps, ys, strict=True)
            if v is not None
        ]
        if not points:
            continue
        if len(points) == 1:
            cv2.circle(canvas, points[0], 3, colour, -1, cv2.LINE_AA)
        cv2.polylines(canvas, [np.array(points, np.int32)], False, colour, thickness, cv2.LINE_AA)
        cv2.putText(
            canvas, name, (left + 5 + 95 * i, bottom + 32), FONT, 0.4, colour, 1, cv2.LINE_AA
        )


def draw_confusion(confusion: list[list[int]], labels: list[str], path: Path) -> None:
    """A confusion matrix (rows: truth, columns: predicted) as a shaded grid with counts, as PNG."""
    matrix = np.asarray(confusion, np.float64)
    n = len(labels)
    cell, margin = 56, 150
    canvas = np.full((margin + cell * n + 10, margin + cell * n + 10, 3), 255, np.uint8)
    rows = np.maximum(matrix.sum(axis=1, keepdims=True), 1.0)
    for i in range(n):
        for j in range(n):
            _cell(
                canvas,
                margin + j * cell,
                margin + i * cell,
                cell,
                matrix[i, j],
                matrix[i, j] / rows[i, 0],
            )
        cv2.putText(
            canvas,
            labels[i][:18],
            (4, margin + i * cell + cell // 2 + 4),
            FONT,
            0.4,
            BLACK,
            1,
            cv2.LINE_AA,
        )
        _vertical_label(canvas, labels[i][:18], margin + i * cell + cell // 2, margin - 6)
    cv2.putText(canvas, "truth \\ predicted", (4, 20), FONT, 0.45, BLACK, 1, cv2.LINE_AA)
    _write(path, canvas)


def _cell(canvas, x, y, cell, count, share) -> None:
    shade = int(255 - 200 * share)
    cv2.rectangle(canvas, (x, y), (x + cell - 1, y + cell - 1), (255, shade, shade), -1)
    cv2.rectangle(canvas, (x, y), (x + cell - 1, y + cell - 1), GREY, 1)
    colour = WHITE if share > 0.6 else BLACK
    cv2.putText(
        canvas, str(int(count)), (x + 6, y + cell // 2 + 5), FONT, 0.45, colour, 1, cv2.LINE_AA
    )


def _vertical_label(canvas, text, centre_x, bottom) -> None:
    strip = np.full((20, 140, 3), 255, np.uint8)
    cv2.putText(strip, text, (2, 14), FONT, 0.4, BLACK, 1, cv2.LINE_AA)
    turned = cv2.rotate(strip, cv2.ROTATE_90_COUNTERCLOCKWISE)
    x = max(centre_x - 10, 0)
    canvas[bottom - 140 : bottom, x : x + 20] = turned


def _write(path: Path, canvas: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(canvas, cv2.COLOR_RGB2BGR))
