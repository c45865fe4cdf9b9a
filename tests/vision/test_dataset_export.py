"""The learning loop: reviewed and overridden inspections become an image-folder training set."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from edge.contract import Disposition
from edge.journal.dataset import export_reviewed
from edge.journal.journal import SCHEMA_VERSION, Journal
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


def _raw_and_overlay(journal, images, seq: int):
    """A REVIEW inspection with the frame as taken and its annotated overlay, as the node names them."""
    record = make_record(seq, core_id=f"HGP-00{seq}", code=Disposition.REVIEW)
    raw = cv2.imencode(".jpg", np.full((16, 16, 3), 90, np.uint8))[1].tobytes()
    overlay = cv2.imencode(".jpg", np.full((16, 16, 3), 250, np.uint8))[1].tobytes()
    journal.record_inspection(
        record,
        messages_for(record),
        [(images / f"{seq:08d}-v1.jpg", raw), (images / f"{seq:08d}-v1-overlay.jpg", overlay)],
    )
    return record, raw


def test_overlays_never_enter_a_dataset(tmp_path):
    images = tmp_path / "images"
    with Journal.open(tmp_path / "journal.db") as journal:
        record, raw = _raw_and_overlay(journal, images, 7)
        assert [i["kind"] for i in journal.images(record.id)] == ["raw", "overlay"]
        export_summary = export_reviewed(journal, tmp_path / "dataset")
    exported = list((tmp_path / "dataset").rglob("*.jpg"))
    assert export_summary.images == 1 and [p.read_bytes() for p in exported] == [raw]
    manifest = (tmp_path / "dataset" / "manifest.jsonl").read_text().splitlines()
    assert [json.loads(line)["source"].endswith("-v1.jpg") for line in manifest] == [True]


def test_a_journal_from_before_image_kinds_keeps_its_overlays_out(tmp_path):
    """Rows written before the `kind` column are told apart by the overlay's name."""
    path, images = tmp_path / "journal.db", tmp_path / "images"
    with Journal.open(path) as journal:
        record, raw = _raw_and_overlay(journal, images, 8)
        conn = journal.db.conn
        conn.execute("ALTER TABLE images DROP COLUMN kind")  # as schema 2 left it
        conn.execute("PRAGMA user_version=2")
        conn.commit()
    with Journal.open(path) as journal:
        assert journal.schema_version == SCHEMA_VERSION
        assert [i["kind"] for i in journal.images(record.id)] == ["raw", "overlay"]
        export_reviewed(journal, tmp_path / "dataset")
    assert [p.read_bytes() for p in (tmp_path / "dataset").rglob("*.jpg")] == [raw]
