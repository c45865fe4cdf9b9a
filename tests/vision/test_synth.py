"""Synthetic cores: deterministic by seed, exact masks, every grade, the `reman synth` layout."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from reman.cli import cli
from vision.errors import DatasetError
from vision.severity import DEFAULT_TABLES
from vision.synth import CLASSES, DEFECTS, SHAPES, area_pct_of, generate_core, write_dataset

SMALL = (96, 96)


def test_same_seed_same_core_other_seed_other_core():
    a, b, c = generate_core(11, SMALL), generate_core(11, SMALL), generate_core(12, SMALL)
    assert np.array_equal(a.image, b.image)
    assert all(np.array_equal(a.masks[k], b.masks[k]) for k in CLASSES)
    assert a.area_pct == b.area_pct and a.grades == b.grades
    assert not np.array_equal(a.image, c.image)


@pytest.mark.parametrize("seed", range(0, 40, 3))
def test_masks_are_exact_and_inside_the_part(seed):
    core = generate_core(seed, SMALL)
    assert core.image.shape == (*SMALL, 3) and core.image.dtype == np.uint8
    part = core.masks["part"]
    assert set(np.unique(part)) <= {0, 1} and 0.2 < part.mean() < 0.8
    for defect in DEFECTS:
        mask = core.masks[defect]
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
        assert not (mask & (1 - part)).any(), f"{defect} outside the part"
        pct = 100 * np.count_nonzero(mask) / np.count_nonzero(part)
        assert core.area_pct[defect] == pytest.approx(pct, abs=1e-4)
        assert core.grades[defect] == DEFAULT_TABLES[defect].grade(core.area_pct[defect])


def test_a_set_covers_every_shape_every_grade_and_clean_parts():
    cores = [generate_core(seed, (64, 64)) for seed in range(300)]
    assert {c.shape for c in cores} == set(SHAPES)
    for defect in DEFECTS:
        assert {c.grades[defect] for c in cores} == set(range(6)), defect
    assert any(all(g == 0 for g in c.grades.values()) for c in cores)


def test_labelled_wear_stands_apart_from_the_surface_around_it():
    """A worn band or scratch is polished metal: brighter than the surface, or, where that is
    already bright (light paint, bright-machined metal), dark where it mirrors the room. Either
    way a person looking at the image can see what the mask labels."""
    seen = 0
    for seed in range(2000, 2200):
        core = generate_core(seed)
        wear = core.masks["wear"].astype(bool)
        if not wear.any():
            continue
        others = (core.masks["corrosion"] | core.masks["coating_damage"]).astype(bool)
        around = cv2.dilate(wear.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool)
        around &= ~wear & core.masks["part"].astype(bool) & ~others
        if around.sum() < 10:
            continue
        image = core.image.astype(np.float32)
        contrast = float(np.linalg.norm(image[wear].mean(axis=0) - image[around].mean(axis=0)))
        assert contrast > 35, (
            f"seed {seed}: wear differs from its surroundings by only {contrast:.1f}"
        )
        seen += 1
    assert seen > 100


def test_area_pct_of_counts_only_inside_the_part():
    part = np.zeros((10, 10), np.uint8)
    part[:5] = 1
    defect = np.ones((10, 10), np.uint8)
    assert area_pct_of(defect, part) == 100.0
    assert area_pct_of(defect, np.zeros_like(part)) == 0.0


def test_too_small_a_size_is_refused():
    with pytest.raises(DatasetError, match="too small"):
        generate_core(1, (8, 8))


def test_write_dataset_layout_matches_the_cores(tmp_path):
    labels = write_dataset(tmp_path, 3, seed=20, size=SMALL)
    rows = [json.loads(line) for line in labels.read_text().splitlines()]
    assert [r["image"] for r in rows] == [f"images/{i:05d}.jpg" for i in range(3)]
    for i, row in enumerate(rows):
        core = generate_core(20 + i, SMALL)
        assert row["masks"] == {c: f"masks/{i:05d}_{c}.png" for c in CLASSES}
        assert cv2.imread(str(tmp_path / row["image"])).shape == (*SMALL, 3)
        masks = {
            c: cv2.imread(str(tmp_path / p), cv2.IMREAD_GRAYSCALE) for c, p in row["masks"].items()
        }
        assert all(set(np.unique(m)) <= {0, 255} for m in masks.values())
        for defect in DEFECTS:
            assert row["defects"][defect] == {
                "area_pct": core.area_pct[defect],
                "grade": core.grades[defect],
            }
            assert area_pct_of(masks[defect], masks["part"]) == pytest.approx(
                core.area_pct[defect], abs=1e-3
            )


def test_reman_synth_writes_the_set(tmp_path):
    result = CliRunner().invoke(
        cli, ["synth", "--out", str(tmp_path), "--count", "2", "--seed", "7", "--size", "64"]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "labels.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    assert (
        rows[1]["defects"]["corrosion"]["grade"] == generate_core(8, (64, 64)).grades["corrosion"]
    )
    assert len(list((tmp_path / "masks").glob("*.png"))) == 8


def test_reman_synth_refuses_a_bad_count(tmp_path):
    result = CliRunner().invoke(cli, ["synth", "--out", str(tmp_path), "--count", "0"])
    assert result.exit_code != 0
    assert "Traceback" not in result.output
