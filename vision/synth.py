"""Synthetic photographs of returned cores with exact pixel masks.

`generate_core(seed, size)` draws one core: a part (flange, gear, shaft or housing) in bare
metal or paint on a workbench background, with wear, coating damage and corrosion whose masks
are known to the pixel. Defect areas are drawn from every grade band of the default tables
(vision.severity), so a set of cores covers grades 0..5 and clean parts. The same seed always
gives the same core. `write_dataset(out_dir, count, seed)` writes the `reman synth` layout:

    images/00000.jpg
    masks/00000_part.png, 00000_wear.png, 00000_corrosion.png, 00000_coating_damage.png (0/255)
    labels.jsonl  {"image": ..., "masks": {...}, "defects": {defect: {"area_pct", "grade"}}}
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from vision.errors import DatasetError
from vision.severity import DEFAULT_TABLES, NAMED_DEFECT_TYPES

CLASSES = ("part", *NAMED_DEFECT_TYPES)
DEFECTS = NAMED_DEFECT_TYPES
SHAPES = ("flange", "gear", "shaft", "housing")
DEFAULT_SIZE = (256, 256)

# Upper end of the worst grade band, in percent of the part's area.
_WORST_BAND_TOP = {"corrosion": 65.0, "coating_damage": 35.0, "wear": 35.0}
_PAINTS_BGR = [
    (40, 40, 40),
    (110, 70, 30),
    (50, 110, 40),
    (40, 40, 170),
    (30, 160, 210),
    (150, 150, 150),
    (30, 90, 200),
    (90, 60, 60),
    (200, 200, 195),
]
# Grey, white, zinc-grey and cream primers. Red-oxide primer is left out: at the model's input
# size a chip down to it cannot be told from a rust spot, so its grade would be a guess.
_PRIMERS_BGR = [(135, 135, 130), (210, 212, 205), (150, 140, 125), (150, 195, 215)]
_RUST_BGR = np.array(
    [(20, 35, 70), (30, 70, 150), (35, 95, 185), (40, 55, 120), (45, 120, 190)], np.float32
)


@dataclass
class SynthCore:
    """One synthetic core: BGR image, 0/1 masks per class, defect areas and grades."""

    image: np.ndarray
    masks: dict[str, np.ndarray]
    area_pct: dict[str, float]
    grades: dict[str, int]
    shape: str = ""
    coated: bool = True
    info: dict = field(default_factory=dict)


@dataclass
class _Geometry:
    """A part's mask and the coordinates its shading and defects follow."""

    mask: np.ndarray
    radial: np.ndarray  # distance from the part's axis or centre, in pixels
    along: np.ndarray  # coordinate along the part (shaft axis) or angle (discs)
    across: np.ndarray  # -1..1 across a shaft (cylinder shading), 0 elsewhere
    kind: str


def area_pct_of(defect_mask: np.ndarray, part_mask: np.ndarray) -> float:
    """Defect pixels inside the part as a percentage of the part's pixels (0 for no part)."""
    part = part_mask > 0
    n_part = int(part.sum())
    if n_part == 0:
        return 0.0
    return 100.0 * float(np.count_nonzero((defect_mask > 0) & part)) / n_part


def generate_core(seed: int, size: tuple[int, int] = DEFAULT_SIZE) -> SynthCore:
    """Draw the core for `seed` at `size` (height, width); deterministic by seed."""
    h, w = int(size[0]), int(size[1])
    if h < 32 or w < 32:
        raise DatasetError(f"synthetic image size {h}x{w} is too small (at least 32x32)")
    rng = np.random.default_rng(seed)
    shape = SHAPES[int(rng.integers(len(SHAPES)))]
    geo = _GEOMETRY[shape](rng, h, w)
    coated = bool(rng.random() < 0.7)
    targets = _defect_targets(rng, coated)
    image = _background(rng, h, w)
    _cast_shadow(rng, image, geo.mask)
    surface = _surface(rng, geo, coated)
    masks = _draw_defects(rng, geo, coated, targets, surface)
    surface = _emboss_edges(rng, surface, geo.mask)
    part = geo.mask.astype(bool)
    image[part] = surface[part]
    image = _camera(rng, _lighting(rng, image))
    masks = {"part": geo.mask, **masks}
    area = {d: round(area_pct_of(masks[d], geo.mask), 4) for d in DEFECTS}
    grades = {d: DEFAULT_TABLES[d].grade(area[d]) for d in DEFECTS}
    return SynthCore(image, masks, area, grades, shape, coated, {"seed": seed})


def write_dataset(
    out_dir: str | Path, count: int, seed: int, size: tuple[int, int] = DEFAULT_SIZE
) -> Path:
    """Write `count` cores (seeds seed, seed+1, ...) in the `reman synth` layout; returns labels.jsonl."""
    out = Path(out_dir)
    try:
        (out / "images").mkdir(parents=True, exist_ok=True)
        (out / "masks").mkdir(parents=True, exist_ok=True)
        labels = out / "labels.jsonl"
        with labels.open("w", encoding="utf-8") as fh:
            for i in range(count):
                fh.write(json.dumps(_write_core(out, i, generate_core(seed + i, size))) + "\n")
    except OSError as exc:
        raise DatasetError(f"cannot write synthetic cores to {out}: {exc}") from exc
    return labels


def _write_core(out: Path, index: int, core: SynthCore) -> dict:
    stem = f"{index:05d}"
    image_rel = f"images/{stem}.jpg"
    _imwrite(out / image_rel, core.image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    mask_rels = {}
    for name in CLASSES:
        rel = f"masks/{stem}_{name}.png"
        _imwrite(out / rel, core.masks[name] * 255, [])
        mask_rels[name] = rel
    defects = {d: {"area_pct": core.area_pct[d], "grade": core.grades[d]} for d in DEFECTS}
    return {"image": image_rel, "masks": mask_rels, "defects": defects}


def _imwrite(path: Path, image: np.ndarray, params: list[int]) -> None:
    if not cv2.imwrite(str(path), image, params):
        raise DatasetError(f"cannot write {path}")


# ---------------------------------------------------------------- noise and fields


def _noise(rng: np.random.Generator, h: int, w: int, cell: float) -> np.ndarray:
    """Smooth value noise in about -1..1 with features of `cell` pixels."""
    gh, gw = max(2, int(h / cell) + 2), max(2, int(w / cell) + 2)
    grid = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _fractal(rng: np.random.Generator, h: int, w: int, cell: float, octaves: int = 3) -> np.ndarray:
    total = np.zeros((h, w), np.float32)
    for k in range(octaves):
        total += _noise(rng, h, w, max(1.5, cell / 2**k)) * 0.5**k
    return total


def _top_n(score: np.ndarray, allowed: np.ndarray, n: int) -> np.ndarray:
    """A 0/1 mask of the n allowed pixels with the highest score (exactly n when possible)."""
    out = np.zeros(score.shape, np.uint8)
    idx = np.flatnonzero(allowed.ravel())
    n = min(n, idx.size)
    if n <= 0:
        return out
    chosen = idx[np.argpartition(-score.ravel()[idx], n - 1)[:n]]
    out.ravel()[chosen] = 1
    return out


# ---------------------------------------------------------------- part geometry


def _polar(h: int, w: int, cx: float, cy: float) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.hypot(xs - cx, ys - cy), np.arctan2(ys - cy, xs - cx)


def _centre(rng: np.random.Generator, h: int, w: int) -> tuple[float, float]:
    return w / 2 + rng.uniform(-0.04, 0.04) * w, h / 2 + rng.uniform(-0.04, 0.04) * h


def _flange(rng: np.random.Generator, h: int, w: int) -> _Geometry:
    cx, cy = _centre(rng, h, w)
    big = rng.uniform(0.40, 0.47) * min(h, w)
    r, theta = _polar(h, w, cx, cy)
    mask = (r <= big).astype(np.uint8)
    mask[r <= big * rng.uniform(0.12, 0.28)] = 0
    holes, ring, rad = (
        int(rng.integers(0, 9)),
        big * rng.uniform(0.55, 0.75),
        big * rng.uniform(0.04, 0.08),
    )
    for k in range(holes if holes >= 3 else 0):
        a = 2 * math.pi * k / holes
        cv2.circle(
            mask, (int(cx + ring * math.cos(a)), int(cy + ring * math.sin(a))), int(rad), 0, -1
        )
    return _Geometry(mask, r, theta, np.zeros_like(r), "disc")


def _gear(rng: np.random.Generator, h: int, w: int) -> _Geometry:
    cx, cy = _centre(rng, h, w)
    root = rng.uniform(0.36, 0.42) * min(h, w)
    teeth, depth = int(rng.integers(14, 32)), root * rng.uniform(0.07, 0.12)
    r, theta = _polar(h, w, cx, cy)
    profile = np.clip(np.cos(theta * teeth) * 1.6, -1, 1) * 0.5 + 0.5
    mask = (r <= root + depth * profile).astype(np.uint8)
    mask[r <= root * rng.uniform(0.15, 0.35)] = 0
    return _Geometry(mask, r, theta, np.zeros_like(r), "disc")


def _shaft(rng: np.random.Generator, h: int, w: int) -> _Geometry:
    cx, cy = _centre(rng, h, w)
    angle = rng.uniform(0, math.pi)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    along = (xs - cx) * math.cos(angle) + (ys - cy) * math.sin(angle)
    perp = -(xs - cx) * math.sin(angle) + (ys - cy) * math.cos(angle)
    half_len = rng.uniform(0.45, 0.60) * math.hypot(h, w) / 1.4
    cuts = np.sort(rng.uniform(-half_len, half_len, int(rng.integers(1, 4))))
    radii = rng.uniform(0.12, 0.24, cuts.size + 1) * min(h, w)
    radius = radii[np.searchsorted(cuts, along)]
    mask = ((np.abs(perp) <= radius) & (np.abs(along) <= half_len)).astype(np.uint8)
    return _Geometry(mask, np.abs(perp), along, perp / radius, "shaft")


def _housing(rng: np.random.Generator, h: int, w: int) -> _Geometry:
    cx, cy = _centre(rng, h, w)
    bw, bh = rng.uniform(0.62, 0.82) * w, rng.uniform(0.55, 0.75) * h
    box = ((cx, cy), (bw, bh), rng.uniform(-20, 20))
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [cv2.boxPoints(box).astype(np.int32)], 1)
    corners = cv2.boxPoints(((cx, cy), (bw * 1.02, bh * 1.02), box[2])).astype(int)
    ear = int(min(bw, bh) * rng.uniform(0.10, 0.16))
    for x, y in corners:
        cv2.circle(mask, (int(x), int(y)), ear, 1, -1)
        cv2.circle(mask, (int(x), int(y)), max(2, ear // 2), 0, -1)
    cv2.circle(mask, (int(cx), int(cy)), int(min(bw, bh) * rng.uniform(0.12, 0.25)), 0, -1)
    r, theta = _polar(h, w, cx, cy)
    return _Geometry(mask, r, theta, np.zeros_like(r), "box")


_GEOMETRY = {"flange": _flange, "gear": _gear, "shaft": _shaft, "housing": _housing}


# ---------------------------------------------------------------- background and surface


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    base = np.array(
        rng.choice(
            [
                (90, 90, 90),
                (60, 65, 70),
                (40, 40, 45),
                (85, 120, 150),
                (120, 110, 95),
                (70, 95, 60),
                (170, 170, 165),
            ]
        ),
        np.float32,
    )
    base = base * rng.uniform(0.7, 1.2)
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * math.pi)
    grad = 1 + 0.25 * ((xs / w - 0.5) * math.cos(a) + (ys / h - 0.5) * math.sin(a))
    tex = 1 + 0.06 * _fractal(rng, h, w, rng.uniform(4, 30))
    img = base[None, None, :] * (grad * tex)[..., None]
    if rng.random() < 0.4:  # mat grid or conveyor slats
        step = int(rng.integers(16, 48))
        img[::step, :, :] *= 0.75
        img[:, ::step, :] *= 0.75 if rng.random() < 0.5 else 1.0
    return np.clip(img, 0, 255).astype(np.uint8)


def _cast_shadow(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray) -> None:
    h, w = mask.shape
    dx, dy = rng.uniform(-0.03, 0.03, 2) * max(h, w)
    moved = cv2.warpAffine(
        mask.astype(np.float32), np.array([[1, 0, dx], [0, 1, dy]], np.float32), (w, h)
    )
    soft = cv2.GaussianBlur(moved, (0, 0), max(1.0, 0.02 * max(h, w)))
    image[:] = (image * (1 - rng.uniform(0.3, 0.6) * soft)[..., None]).astype(np.uint8)


def _surface(rng: np.random.Generator, geo: _Geometry, coated: bool) -> np.ndarray:
    """The undamaged part's colour everywhere (BGR float32), shaded and textured."""
    h, w = geo.mask.shape
    if coated:
        base = np.array(_PAINTS_BGR[int(rng.integers(len(_PAINTS_BGR)))], np.float32)
    else:
        grey = rng.choice([rng.uniform(75, 110), rng.uniform(120, 175), rng.uniform(170, 210)])
        base = np.float32(grey) + rng.uniform(-6, 6, 3).astype(np.float32)
    shade = _shading(rng, geo) * (1 + (0.03 if coated else 0.06) * _fractal(rng, h, w, 12))
    marks = _machining(rng, geo) * (0.03 if coated else 0.12)
    return base[None, None, :] * np.clip(shade + marks, 0.2, 1.8)[..., None]


def _shading(rng: np.random.Generator, geo: _Geometry) -> np.ndarray:
    h, w = geo.mask.shape
    if geo.kind == "shaft":
        u = np.clip(geo.across, -1, 1)
        spec = np.exp(-((u - rng.uniform(-0.5, 0.5)) ** 2) / 0.02) * rng.uniform(0.2, 0.6)
        return 0.55 + 0.45 * np.sqrt(1 - u**2) + spec
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    a = rng.uniform(0, 2 * math.pi)
    return 0.9 + 0.3 * ((xs / w - 0.5) * math.cos(a) + (ys / h - 0.5) * math.sin(a))


def _machining(rng: np.random.Generator, geo: _Geometry) -> np.ndarray:
    """Turning or milling marks: fine periodic ridges following the part's geometry."""
    period = rng.uniform(1.5, 4.0)
    coord = geo.along if geo.kind == "shaft" else geo.radial
    if geo.kind == "box":
        h, w = geo.mask.shape
        coord = np.mgrid[0:h, 0:w][1].astype(np.float32) + 3 * _noise(rng, h, w, 20)
    return np.sin(2 * math.pi * coord / period).astype(np.float32)


def _emboss_edges(rng: np.random.Generator, surface: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Chamfer highlights and shadows along the part's edges for a 3D look."""
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.5)
    gx, gy = cv2.Sobel(soft, cv2.CV_32F, 1, 0), cv2.Sobel(soft, cv2.CV_32F, 0, 1)
    a = rng.uniform(0, 2 * math.pi)
    relief = 1 + 0.6 * (gx * math.cos(a) + gy * math.sin(a))
    return surface * np.clip(relief, 0.5, 1.6)[..., None]


# ---------------------------------------------------------------- defects


def _defect_targets(rng: np.random.Generator, coated: bool) -> dict[str, float]:
    """Target area (percent of part) per defect, drawn from the middle of a random grade band."""
    clean = rng.random() < 0.12
    targets = {}
    for defect in ("wear", "coating_damage", "corrosion"):
        grade = 0 if clean else int(rng.choice(6, p=[0.25, 0.15, 0.15, 0.15, 0.15, 0.15]))
        if defect == "coating_damage" and not coated:
            grade = 0
        targets[defect] = _area_in_band(rng, defect, grade)
    return targets


def _area_in_band(rng: np.random.Generator, defect: str, grade: int) -> float:
    if grade == 0:
        return 0.0
    edges = (*DEFAULT_TABLES[defect].thresholds, _WORST_BAND_TOP[defect])
    lo, hi = math.log(edges[grade - 1]), math.log(edges[grade])
    margin = 0.25 * (hi - lo)  # stay clear of the thresholds so grades are unambiguous
    return math.exp(rng.uniform(lo + margin, hi - margin))


def _draw_defects(
    rng: np.random.Generator,
    geo: _Geometry,
    coated: bool,
    targets: dict[str, float],
    surface: np.ndarray,
) -> dict[str, np.ndarray]:
    """Draw wear, then coating damage, then corrosion; each takes pixels no earlier one took."""
    part = geo.mask.astype(bool)
    n_part = int(part.sum())
    free = part.copy()
    masks: dict[str, np.ndarray] = {}
    for defect, draw in (
        ("wear", _wear),
        ("coating_damage", _coating_damage),
        ("corrosion", _corrosion),
    ):
        n = int(round(targets[defect] / 100 * n_part))
        masks[defect] = (
            draw(rng, geo, free, n, surface, coated, masks) if n > 0 else np.zeros_like(geo.mask)
        )
        free &= masks[defect] == 0
    return masks


def _wear(rng, geo, free, n, surface, coated, _masks) -> np.ndarray:
    h, w = free.shape
    if n > 0.004 * free.size:  # a polished worn band (seal track, bearing seat, rub mark)
        # A rub mark is a stretch of a track, not a hairline around the whole part: distance
        # across the track counts `aspect` times more than distance along it.
        coord = _motion_coord(geo)
        ys, xs = np.nonzero(free)
        k = int(rng.integers(len(ys))) if len(ys) else 0
        centre = float(coord[ys[k], xs[k]]) if len(ys) else 0.0
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        along = np.hypot(yy - (ys[k] if len(ys) else 0), xx - (xs[k] if len(xs) else 0))
        score = (
            -np.abs(coord - centre) - along / rng.uniform(3.0, 8.0) + 0.6 * _noise(rng, h, w, 14)
        )
    else:  # scratches
        score = _scratch_field(rng, h, w, n) + 0.01 * _noise(rng, h, w, 8)
    mask = _top_n(score, free, n)
    _render_wear(rng, surface, mask, geo, coated)
    return mask


def _motion_coord(geo: _Geometry) -> np.ndarray:
    """The coordinate that stays constant along the motion that wears the part.

    A turning shaft wears in rings (constant position along the axis), a disc in circles
    (constant radius), a housing in straight strokes (constant position across the stroke).
    """
    if geo.kind == "shaft":
        return geo.along
    if geo.kind == "box":
        h, w = geo.mask.shape
        return np.mgrid[0:h, 0:w][0].astype(np.float32)
    return geo.radial


def _scratch_field(rng: np.random.Generator, h: int, w: int, n: int) -> np.ndarray:
    """One to three straight scratches that together hold about n pixels.

    Each line's value falls from its start to its end, so the n chosen pixels are whole
    stretches of scratch from one end, not pixels scattered along every line.
    """
    field_ = np.zeros((h, w), np.float32)
    width = max(2, round(min(h, w) / 85))  # still visible at the model's input size
    count = int(rng.integers(1, 4))
    length = float(np.clip(1.3 * n / (count * width), 6, 0.6 * min(h, w)))
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    for _ in range(count):
        p = rng.uniform(0.2, 0.8, 2) * (w, h)
        a = rng.uniform(0, math.pi)
        d = np.array([math.cos(a), math.sin(a)])
        q = p + length * d
        line = np.zeros((h, w), np.uint8)
        cv2.line(line, tuple(int(v) for v in p), tuple(int(v) for v in q), 1, width)
        t = np.clip(((xs - p[0]) * d[0] + (ys - p[1]) * d[1]) / length, 0, 1)
        value = rng.uniform(1, 2) + 0.5 * (1 - t)
        field_ = np.where(line > 0, np.maximum(field_, value), field_)
    return field_


def _render_wear(rng, surface, mask, geo, coated) -> None:
    """Polished bare metal with fine scoring streaks that follow the motion; on paint the
    coating thins out towards the band's edge instead of ending in a sharp step."""
    sel = mask.astype(bool)
    if not sel.any():
        return
    h, w = mask.shape
    # Polished metal is bright where it catches the light and dark where it mirrors the dim
    # room around it. On a surface that a bright band would not stand well apart from (white or
    # grey paint, bright-machined metal) it is the dark one, as a rub through white paint shows.
    # Deciding from the colours the draws already made keeps every other core as it was.
    around = surface[sel].mean(axis=0)
    base = float(around.mean())
    shine = rng.uniform(185, 235)
    level = min(250.0, max(shine, base + 45))
    if float(np.linalg.norm(np.float32(level) - around)) < 100:
        level = base * (0.35 + (shine - 185) / 250)
    metal = np.float32(level) + rng.uniform(-4, 4, 3).astype(np.float32)
    coord = _motion_coord(geo) + 0.8 * _noise(rng, h, w, 40)
    fine = np.sin(2 * math.pi * coord / rng.uniform(1.6, 2.6))
    score = (rng.random(h * 4) < 0.15).astype(np.float32)  # scoring lines: random darker grooves
    grooves = score[np.clip((coord - coord.min()).astype(int), 0, h * 4 - 1)]
    streaks = 1 + 0.10 * fine - 0.22 * grooves + 0.03 * _noise(rng, h, w, 3)
    polished = metal[None, None, :] * streaks[..., None]
    inside = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    mix = np.clip(inside / 2.5, 0.7, 1.0) if coated else np.full((h, w), 0.85, np.float32)
    surface[sel] = surface[sel] * (1 - mix[sel, None]) + polished[sel] * mix[sel, None]


def _coating_damage(rng, geo, free, n, surface, coated, _masks) -> np.ndarray:
    h, w = free.shape
    blisters = rng.random() < 0.3
    if blisters:
        score = _blister_field(rng, h, w)
    else:
        impacts = np.zeros((h, w), np.float32)
        for _ in range(int(rng.integers(1, 6))):
            impacts[int(rng.integers(h)), int(rng.integers(w))] = 1
        dist = cv2.distanceTransform((impacts == 0).astype(np.uint8), cv2.DIST_L2, 3)
        score = (
            -dist / max(h, w) * 4
            + 0.5 * _fractal(rng, h, w, rng.uniform(4, 16))
            + _edge_bias(geo, 0.5)
        )
    mask = _top_n(score, free, n)
    _render_blisters(rng, surface, mask) if blisters else _render_chips(rng, surface, mask)
    return mask


def _blister_field(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    field_ = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(10, 60))):
        r = float(rng.uniform(1.5, 5.0))
        cv2.circle(
            field_, (int(rng.integers(w)), int(rng.integers(h))), int(r), rng.uniform(0.6, 1.0), -1
        )
    return cv2.GaussianBlur(field_, (0, 0), 1.5) + 0.02 * _noise(rng, h, w, 3)


def _edge_bias(geo: _Geometry, weight: float) -> np.ndarray:
    dist = cv2.distanceTransform(geo.mask, cv2.DIST_L2, 3)
    return weight * np.exp(-dist / 6.0)


def _render_chips(rng, surface, mask) -> None:
    """Chips down to primer or bare metal: a primer ring along the chip's edge, matte
    grey metal or primer inside, and the broken paint edge dark where it is lifted."""
    sel = mask.astype(bool)
    if not sel.any():
        return
    h, w = mask.shape
    # What a chip exposes differs from the paint around it (grey primer under grey paint would
    # leave only the lifted edge to see): pick among the primers and bare metal that stand out.
    paint = surface[sel].mean(axis=0)
    primer = _contrasting(rng, [np.array(c, np.float32) for c in _PRIMERS_BGR], paint)
    tex = (1 + 0.10 * _noise(rng, h, w, 1.5))[..., None]
    metal = np.float32(rng.uniform(95, 150)) + rng.uniform(-5, 5, 3).astype(np.float32)
    if rng.random() < 0.5:  # down to bare metal: dull, darker than a polished band
        floor = _contrasting(rng, [metal, metal * np.float32(0.6)], paint)
    else:  # primer a little duller or brighter, but never shaded back towards the paint
        floor = _contrasting(rng, [primer * np.float32(rng.uniform(0.85, 1.05)), primer], paint)
    inside = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    ring = inside <= rng.uniform(1.5, 2.6)
    layer = np.where(ring[..., None], primer[None, None, :], floor[None, None, :]) * tex
    surface[sel] = layer[sel]
    rim = cv2.dilate(mask, np.ones((3, 3), np.uint8)).astype(bool) & ~sel
    surface[rim] *= np.float32(rng.uniform(0.35, 0.6))  # the broken, lifted paint edge


def _contrasting(
    rng: np.random.Generator, colours: list[np.ndarray], paint: np.ndarray, least: float = 60.0
) -> np.ndarray:
    """A random colour at least `least` (BGR distance) from the paint, else the farthest."""
    far = [c for c in colours if float(np.linalg.norm(c - paint)) >= least]
    if far:
        return far[int(rng.integers(len(far)))]
    return max(colours, key=lambda c: float(np.linalg.norm(c - paint)))


def _render_blisters(rng, surface, mask) -> None:
    soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 1.2)
    gx, gy = cv2.Sobel(soft, cv2.CV_32F, 1, 0), cv2.Sobel(soft, cv2.CV_32F, 0, 1)
    relief = 1 - 0.9 * (gx + gy) / 2
    sel = mask.astype(bool)
    # Raised paint catches the light on one side and shades the other, even on a dark coat.
    shade = 45 * np.clip(-(gx + gy), -1, 1)
    surface[sel] = (
        surface[sel] * np.clip(relief, 0.4, 1.8)[sel][:, None] * 1.1 + 18 + shade[sel][:, None]
    )


def _corrosion(rng, geo, free, n, surface, coated, masks) -> np.ndarray:
    h, w = free.shape
    score = _fractal(rng, h, w, rng.uniform(6, 24)) + _edge_bias(geo, rng.uniform(0.3, 1.5))
    chips = masks.get("coating_damage")
    if chips is not None and chips.any():  # rust creeps out from chips
        dist = cv2.distanceTransform((chips == 0).astype(np.uint8), cv2.DIST_L2, 3)
        score += 1.5 * np.exp(-dist / 4.0)
    mask = _top_n(score, free, n)
    _render_rust(rng, surface, mask)
    return mask


def _render_rust(rng, surface, mask) -> None:
    sel = mask.astype(bool)
    if not sel.any():
        return
    h, w = mask.shape
    t = np.clip(_fractal(rng, h, w, 5) * 0.5 + 0.5, 0, 0.999) * (len(_RUST_BGR) - 1)
    lo = t.astype(int)
    frac = (t - lo)[..., None]
    rust = _RUST_BGR[lo] * (1 - frac) + _RUST_BGR[lo + 1] * frac
    rust *= (1 + 0.2 * _noise(rng, h, w, 1.5))[..., None]
    pits = rng.random((h, w)) < 0.03
    rust[pits] *= 0.4
    surface[sel] = rust[sel]


# ---------------------------------------------------------------- light and camera


def _lighting(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    vignette = 1 - rng.uniform(0.0, 0.35) * (((xs / w - 0.5) ** 2 + (ys / h - 0.5) ** 2) * 2)
    tint = rng.uniform(0.9, 1.1, 3).astype(np.float32) * rng.uniform(0.75, 1.25)
    return image.astype(np.float32) * vignette[..., None] * tint[None, None, :]


def _camera(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    sigma = rng.uniform(0.0, 1.0)
    if sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    image = image + rng.normal(0, rng.uniform(1.0, 5.0), image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)
