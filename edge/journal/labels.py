"""Labels: a person's judgement of one view of an inspection, kept beside its raw frame.

A label says the view is good (no defect anywhere) or gives one mask per defect type, painted
over the raw frame on the dashboard and sent to the node as `label/set`. The journal is the
system of record: `add_label` checks the inspection and its raw frame, writes each mask as a
binary PNG (0/255, the raw frame's size) under the labels folder, and keeps a row with who and
when. The latest label of a view is the one in force; earlier ones stay as history.

    add_label(journal, command, labels_dir) -> Label | None   (None: a repeated command_id)
    labels_of(journal, inspection_id)       -> [Label]         (oldest first)
    labels_in_force(journal)                -> {(inspection id, view): Label}
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.contract import NAMED_DEFECT_TYPES, LabelCommand
from edge.contract.timefmt import utc_now
from edge.errors import JournalError
from edge.ids import new_id
from edge.journal.journal import Journal

_PNG = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Label:
    """One label row: the view, good or its masks (defect type -> PNG path), who and when."""

    inspection_id: str
    view: int
    good: bool
    masks: dict[str, str]
    user: str
    ts: str
    command_id: str | None


def add_label(journal: Journal, command: LabelCommand, labels_dir: Path) -> Label | None:
    """Check and keep a label; JournalError saying why when it cannot be kept."""
    if command.command_id is not None and _seen(journal, command):
        return None
    frame = _raw_frame(journal, command.id, command.view)
    masks = {name: _mask(name, data, frame.shape[:2]) for name, data in command.masks.items()}
    folder = Path(labels_dir) / command.id
    paths = {name: _write(folder / f"v{command.view}-{name}-{new_id()}.png", mask)
             for name, mask in masks.items()}  # fmt: skip
    label = Label(
        command.id, command.view, command.good, paths, command.user, utc_now(), command.command_id
    )
    try:
        with journal.db.conn as conn:
            conn.execute(
                "INSERT INTO labels (inspection_id, view, good, masks, user, ts, command_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (label.inspection_id, label.view, int(label.good), json.dumps(paths),
                 label.user, label.ts, label.command_id),
            )  # fmt: skip
    except sqlite3.Error as exc:  # wrapped like every journal write
        raise JournalError(f"journal: label of {command.id} not kept: {exc}") from exc
    return label


def labels_of(journal: Journal, inspection_id: str) -> list[Label]:
    """Every label of one inspection, oldest first."""
    return _rows(journal, "WHERE inspection_id = ? ORDER BY id", [inspection_id])


def labels_in_force(journal: Journal) -> dict[tuple[str, int], Label]:
    """The latest label of each labelled view."""
    return {(label.inspection_id, label.view): label for label in _rows(journal, "ORDER BY id", [])}


def _rows(journal: Journal, where: str, params: list) -> list[Label]:
    sql = f"SELECT inspection_id, view, good, masks, user, ts, command_id FROM labels {where}"
    try:
        rows = journal.db.conn.execute(sql, params).fetchall()
    except sqlite3.Error as exc:
        raise JournalError(f"journal: cannot read labels: {exc}") from exc
    return [Label(r[0], r[1], bool(r[2]), json.loads(r[3]), r[4], r[5], r[6]) for r in rows]


def _seen(journal: Journal, command: LabelCommand) -> bool:
    row = journal.db.conn.execute(
        "SELECT 1 FROM labels WHERE inspection_id = ? AND command_id = ?",
        (command.id, command.command_id),
    ).fetchone()
    return row is not None


def _raw_frame(journal: Journal, inspection_id: str, view: int) -> np.ndarray:
    if journal.get(inspection_id) is None:
        raise JournalError(f"journal: no inspection {inspection_id}")
    raw = [i for i in journal.images(inspection_id) if i["kind"] == "raw"]
    if view > len(raw):
        raise JournalError(f"journal: inspection {inspection_id} has no raw frame for view {view}")
    image = raw[view - 1]
    if image["pruned_at"] is not None:
        raise JournalError(f"journal: the raw frame of view {view} was pruned: {image['path']}")
    frame = cv2.imread(image["path"], cv2.IMREAD_GRAYSCALE)
    if frame is None:
        raise JournalError(f"journal: the raw frame {image['path']} cannot be read")
    return frame


def _mask(name: str, text: str, size: tuple[int, int]) -> np.ndarray:
    if name not in NAMED_DEFECT_TYPES:
        hint = (
            " (an anomaly model learns from good views: mark them good)"
            if name == "anomaly"
            else ""
        )
        raise JournalError(
            f"label: {name!r} is not a defect type a person labels "
            f"(known: {', '.join(NAMED_DEFECT_TYPES)}){hint}"
        )
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise JournalError(f"label: mask {name} is not base64: {exc}") from exc
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if not data.startswith(_PNG) or image is None:
        raise JournalError(f"label: mask {name} is not a PNG image")
    if image.shape[:2] != size:
        raise JournalError(
            f"label: mask {name} is {image.shape[1]}x{image.shape[0]} pixels, "
            f"the raw frame {size[1]}x{size[0]}"
        )
    if image.ndim == 3:  # a canvas export: painted where opaque (alpha) or coloured
        image = image[..., 3] if image.shape[2] == 4 else image.max(axis=2)
    return np.where(image > 0, 255, 0).astype(np.uint8)


def _write(path: Path, mask: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, png = cv2.imencode(".png", mask)
    if not ok:
        raise JournalError(f"label: cannot encode {path}")
    partial = path.with_suffix(".part")
    try:
        partial.write_bytes(png.tobytes())
        os.replace(partial, path)
    except OSError as exc:
        raise JournalError(f"label: cannot write {path}: {exc.strerror or exc}") from exc
    return str(path)
