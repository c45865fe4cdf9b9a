"""Generated images for the node tests: textured stand-in parts and folders of them."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def textured_image(seed: int = 0, size: tuple[int, int] = (480, 640)) -> np.ndarray:
    """A sharp, mid-grey, textured BGR image that passes the frame checks (a stand-in part)."""
    rng = np.random.default_rng(seed)
    image = np.full((*size, 3), 110, np.uint8)
    noise = rng.integers(0, 60, size=(size[0] // 8, size[1] // 8, 1), dtype=np.uint8)
    image += cv2.resize(noise, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)[..., None]
    cv2.circle(image, (size[1] // 2, size[0] // 2), min(size) // 3, (150, 150, 160), -1)
    cv2.circle(image, (size[1] // 2, size[0] // 2), min(size) // 8, (60, 60, 60), -1)
    return image


def write_images(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """`count` PNG files named 000.png, 001.png, ... with distinct content."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"{i:03d}.png"
        image = textured_image(seed + i)
        cv2.putText(image, str(i), (20, 60), cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 0, 255), 3)
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths
