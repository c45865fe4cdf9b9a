"""Grading a batch of image files: one bad file is reported and the others are still graded."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from vision.errors import ImageError, ModelError, VisionError
from vision.grader import Grader, ViewGrade
from vision.imageio import read_image
from vision.overlay import render_overlay


@dataclass
class FileGrade:
    """One file's outcome: its grades, or the error that stopped it (naming the file)."""

    path: Path
    view: ViewGrade | None = None
    error: VisionError | None = None
    overlay: Path | None = None

    def to_dict(self) -> dict:
        """JSON-ready: {"image": path, "defects": {...}} (plus "label" for classifiers)."""
        return {"image": str(self.path), **(self.view.to_dict() if self.view else {})}


def grade_files(
    grader: Grader, paths: Iterable[Path], overlay_dir: Path | None = None
) -> Iterator[FileGrade]:
    """Grade each file in turn; a file that cannot be read or graded yields its error instead.

    Errors name the file: ImageError (missing, empty, truncated, not an image), ModelError
    (e.g. NaN in the model's output for this image).
    """
    used: set[str] = set()
    if overlay_dir is not None:
        overlay_dir.mkdir(parents=True, exist_ok=True)
    for path in paths:
        yield _grade_file(grader, Path(path), overlay_dir, used)


def _grade_file(grader: Grader, path: Path, overlay_dir: Path | None, used: set[str]) -> FileGrade:
    try:
        image = read_image(path)
        view = grader.grade(image)
        overlay = _write_overlay(overlay_dir, path, image, view, used) if overlay_dir else None
    except ImageError as exc:
        return FileGrade(path, error=exc)
    except ModelError as exc:
        return FileGrade(path, error=ModelError(f"{path}: {exc}"))
    return FileGrade(path, view, overlay=overlay)


def _write_overlay(overlay_dir: Path, path: Path, image, view: ViewGrade, used: set[str]) -> Path:
    name = f"{path.stem}.overlay.jpg"
    counter = 1
    while name in used:  # two inputs with the same file name from different folders
        counter += 1
        name = f"{path.stem}-{counter}.overlay.jpg"
    used.add(name)
    target = overlay_dir / name
    try:
        target.write_bytes(render_overlay(image, view))
    except OSError as exc:
        raise ImageError(f"{target}: cannot write the overlay: {exc.strerror or exc}") from exc
    return target
