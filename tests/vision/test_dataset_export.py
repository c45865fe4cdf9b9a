"""The learning loop: reviewed and overridden inspections become an image-folder training set."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge.contract import Disposition
from edge.journal.journal import Journal
from reman.cli import cli
from tests.support.journal_records import make_record, messages_for
from vision.folders import scan_class_folders


@pytest.fixture
def journal_path(tmp_path):
    """A journal with a plain REUSE, an overridden REMANUFACTURE, an overridden REVIEW and an open REVIEW."""
    path = tmp_path / "journal.db"
    images = tmp_path / "images"
    images.mkdir()
    with Journal.open(path) as journal:
        for seq, (code, override) in enumerate(
            [
                (Disposition.REUSE, None),
                (Disposition.REMANUFACTURE, 3),
                (Disposition.REVIEW, 1),
                (Disposition.REVIEW, None),
            ],
            start=1,
        ):
            record = make_record(seq, core_id=f"HGP-000{seq}", code=code)
            ok, jpeg = cv2.imencode(".jpg", np.full((16, 16, 3), seq * 40, np.uint8))
            journal.record_inspection(
                record, messages_for(record), [(images / f"{seq}.jpg", jpeg.tobytes())]
            )
            if override:
                journal.apply_override(record.id, override, "seen on the bench", "anna")
    return path


def test_export_labels_by_the_persons_decision(journal_path, tmp_path):
    out = tmp_path / "dataset"
    result = CliRunner().invoke(
        cli, ["dataset", "export", "--journal", str(journal_path), "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["inspections"] == 3 and summary["per_label"] == {
        "recycle": 1,
        "reuse": 1,
        "unlabelled": 1,
    }
    assert len(list((out / "recycle").glob("*.jpg"))) == 1
    assert len(list((out / "unlabelled").glob("*.jpg"))) == 1
    manifest = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    recycled = next(m for m in manifest if m["label"] == "recycle")
    assert recycled["rules_decision"] == "REMANUFACTURE" and recycled["user"] == "anna"
    assert scan_class_folders(out).classes == ["recycle", "reuse"]  # unlabelled/ is left out


def test_reexport_moves_a_changed_override(journal_path, tmp_path):
    out = tmp_path / "dataset"
    runner = CliRunner()
    runner.invoke(cli, ["dataset", "export", "--journal", str(journal_path), "--out", str(out)])
    with Journal.open(journal_path) as journal:
        reused = journal.find(decision="REUSE", limit=None)[-1]
        journal.apply_override(reused.id, 2, "second look", "ben")
    result = runner.invoke(
        cli, ["dataset", "export", "--journal", str(journal_path), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert not list((out / "reuse").glob("*.jpg"))
    assert len(list((out / "remanufacture").glob("*.jpg"))) == 1


def test_missing_image_is_reported_not_fatal(journal_path, tmp_path):
    for image in (tmp_path / "images").glob("2.jpg"):
        image.unlink()
    result = CliRunner().invoke(
        cli,
        [
            "dataset",
            "export",
            "--journal",
            str(journal_path),
            "--out",
            str(tmp_path / "d"),
            "--json",
        ],
    )
    assert result.exit_code == 0
    assert json.loads(result.output.splitlines()[0])["missing_images"]
