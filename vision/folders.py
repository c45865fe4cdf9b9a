"""Training and evaluation folders: discovery and validation of the two photograph layouts.

- image folders (classification): `DIR/<label>/<image>`, one folder a label; a folder named
  `unlabelled` is ignored (that is where `reman dataset export` puts reviews nobody labelled).
- masks beside images (segmentation): `DIR/**/<stem>.<jpg|bmp|tif...>` with `<stem>.png` beside it;
  a mask is binary (0/255, 0/1, or anti-aliased grey: defect where above 127) or holds class values
  1..K (0 is background).

Problems are collected over the whole folder and raised together as one DatasetError that names
every file concerned, so a user fixes them in one pass. Needs numpy and OpenCV only (no torch), so
`reman eval` can use it on a node.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vision.errors import DatasetError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
MASK_SUFFIX = ".png"
UNLABELLED = "unlabelled"
MAX_CLASS_VALUE = 20  # masks whose values stay at or below this hold class values, else binary
MAX_LISTED = 20  # files named in one error message before "... and N more"


@dataclass(frozen=True)
class ClassFolders:
    """An image-folder layout: every image with the index of its label."""

    root: Path
    classes: list[str]
    images: list[Path]
    labels: list[int]

    def counts(self) -> dict[str, int]:
        """Images per label, in label order."""
        counted = Counter(self.labels)
        return {name: counted[i] for i, name in enumerate(self.classes)}


@dataclass(frozen=True)
class MaskPairs:
    """A masks-beside-images layout: every image with its mask and the folder it sits in."""

    root: Path
    images: list[Path]
    masks: list[Path]
    groups: list[str]


def detect_layout(root: Path) -> str:
    """Say which layout a folder holds: 'masks', 'folders' or 'unknown'."""
    root = Path(root)
    if not root.is_dir():
        return "unknown"
    if (root / "labels.jsonl").is_file():
        return "unknown"  # the synthetic-core layout, evaluated by vision.evaluate
    if _find_pairs(root)[0]:
        return "masks"
    if any(d.is_dir() and _images_in(d) for d in _subfolders(root)):
        return "folders"
    return "unknown"


def scan_class_folders(root: Path) -> ClassFolders:
    """Find the labels and images of an image-folder layout; DatasetError if it cannot train."""
    root = _existing_dir(root)
    folders = [d for d in _subfolders(root) if d.name != UNLABELLED]
    empty = [d for d in folders if not _images_in(d)]
    problems = [f"empty class folder (no images): {d}" for d in empty]
    used = [d for d in folders if d not in empty]
    if len(used) < 2:
        names = ", ".join(d.name for d in used) or "none"
        problems.append(
            f"{root}: needs at least two class folders with images, found {len(used)} ({names})"
        )
    _raise_if(problems, root)
    images, labels = [], []
    for index, folder in enumerate(used):
        for path in _images_in(folder):
            images.append(path)
            labels.append(index)
    return ClassFolders(root, [d.name for d in used], images, labels)


def scan_mask_pairs(root: Path) -> MaskPairs:
    """Find images with same-stem .png masks beside them; DatasetError if there are none."""
    root = _existing_dir(root)
    pairs, orphans = _find_pairs(root)
    problems = [f"image without a mask beside it ({p.stem}.png): {p}" for p in orphans]
    if not pairs:
        problems.append(f"{root}: no images with a same-stem .png mask beside them")
    _raise_if(problems, root)
    images = [image for image, _ in pairs]
    groups = [str(image.parent.relative_to(root)) for image in images]
    return MaskPairs(root, images, [mask for _, mask in pairs], groups)


def read_image(path: Path) -> np.ndarray | None:
    """Read an image as 8-bit RGB, or None when it cannot be decoded."""
    data = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if data is None or data.size == 0:
        return None
    if data.dtype != np.uint8:
        data = cv2.convertScaleAbs(data, alpha=255.0 / max(float(data.max()), 1.0))
    if data.ndim == 2:
        return cv2.cvtColor(data, cv2.COLOR_GRAY2RGB)
    if data.shape[2] == 4:
        return cv2.cvtColor(data, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(data, cv2.COLOR_BGR2RGB)


def load_images(paths: list[Path], size: int, root: Path | None = None) -> np.ndarray:
    """Read and resize images to (N, size, size, 3) uint8 RGB; DatasetError naming unreadable files."""
    out = np.zeros((len(paths), size, size, 3), np.uint8)
    problems = []
    for i, path in enumerate(paths):
        image = read_image(path)
        if image is None:
            problems.append(f"unreadable image: {path}")
            continue
        out[i] = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    _raise_if(problems, root)
    return out


def load_pairs(pairs: MaskPairs, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Read images and masks at `size`: (N,S,S,3) uint8 RGB and (N,S,S) uint8 class indices.

    Raises DatasetError naming every unreadable image or mask and every mask whose size differs
    from its image's.
    """
    images = np.zeros((len(pairs.images), size, size, 3), np.uint8)
    raw_masks: list[np.ndarray | None] = []
    problems = []
    for i, (image_path, mask_path) in enumerate(zip(pairs.images, pairs.masks, strict=True)):
        image, mask, problem = _read_pair(image_path, mask_path)
        raw_masks.append(mask)
        if problem:
            problems.append(problem)
            continue
        assert image is not None  # no problem: the image was read
        images[i] = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    _raise_if(problems, pairs.root)
    return images, _mask_classes(raw_masks, size)


def mask_class_count(masks: np.ndarray) -> int:
    """How many defect classes the loaded masks hold (at least one)."""
    return max(int(masks.max()) if masks.size else 1, 1)


def _read_pair(
    image_path: Path, mask_path: Path
) -> tuple[np.ndarray | None, np.ndarray | None, str]:
    image = read_image(image_path)
    if image is None:
        return None, None, f"unreadable image: {image_path}"
    mask = cv2.imread(str(mask_path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        return None, None, f"unreadable mask: {mask_path}"
    if mask.shape != image.shape[:2]:
        return (
            None,
            None,
            (
                f"mask size {mask.shape[1]}x{mask.shape[0]} differs from its image's "
                f"{image.shape[1]}x{image.shape[0]}: {mask_path} (image {image_path})"
            ),
        )
    return image, mask, ""


def _mask_classes(raw: list[np.ndarray | None], size: int) -> np.ndarray:
    """Resize masks (nearest) and turn them into class indices, binary or class values."""
    top = max((int(m.max()) for m in raw if m is not None), default=0)
    binary = top > MAX_CLASS_VALUE
    out = np.zeros((len(raw), size, size), np.uint8)
    for i, mask in enumerate(raw):
        if mask is None:
            continue
        if binary:
            mask = (mask > 127).astype(np.uint8)
        out[i] = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
    return out


def _find_pairs(root: Path) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """Images with a same-stem .png beside them, and images in those folders that lack one."""
    pairs, orphans = [], []
    for folder in sorted({p.parent for p in root.rglob(f"*{MASK_SUFFIX}")}):
        files = _images_in(folder)
        stems = {p.stem for p in files if p.suffix.lower() == MASK_SUFFIX}
        photos = [p for p in files if p.suffix.lower() != MASK_SUFFIX]
        matched = [p for p in photos if p.stem in stems]
        if not matched:
            continue
        pairs += [(p, p.with_suffix(MASK_SUFFIX)) for p in matched]
        orphans += [p for p in photos if p.stem not in stems]
    return pairs, orphans


def _images_in(folder: Path) -> list[Path]:
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def _subfolders(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def _existing_dir(root: Path) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    return root


def _raise_if(problems: list[str], root: Path | None) -> None:
    if not problems:
        return
    shown = problems[:MAX_LISTED]
    if len(problems) > MAX_LISTED:
        shown.append(f"... and {len(problems) - MAX_LISTED} more")
    where = f" in {root}" if root else ""
    raise DatasetError(f"cannot use the dataset{where}:\n  " + "\n  ".join(shown))
