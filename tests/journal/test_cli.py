"""The decide, journal, rules replay and passport commands on real files."""

from __future__ import annotations

import csv
import json
import shutil
import time

import pytest
from click.testing import CliRunner

from edge.contract import Disposition, InspectionRecord, RulesInfo
from edge.decision.families import load_families
from edge.decision.rules import decide, impact, rules_version
from edge.journal.journal import Journal
from reman.cli import cli
from tests.conftest import REPO
from tests.support.journal_records import installed_config, make_record, messages_for

FAMILIES = load_families(REPO / "config/families")
GOOD = {
    "leak_rate_ml_min": {"value": 3.2, "unit": "ml/min", "status": "Good"},
    "flow_l_min": {"value": 24.0, "unit": "l/min", "status": "Good"},
}
CLEAN = {
    d: {"grade": 0, "area_pct": 0.0, "confidence": 0.95}
    for d in ("wear", "corrosion", "coating_damage")
}


def run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(autouse=True)
def no_installed_config(tmp_path, monkeypatch):
    """This machine's /etc/reman and $REMAN_CONFIG play no part unless a test says so."""
    from reman.commands import journal as commands

    monkeypatch.delenv("REMAN_CONFIG", raising=False)
    monkeypatch.setattr(commands, "STATION_CONFIG", tmp_path / "not-installed/station.yaml")


def decided(seq, core, defects, measurements, family="hydraulic-gear-pump", ts=None):
    """A record as the node would write it: decided by the example rules."""
    spec = FAMILIES.get(family)
    decision = decide(spec, defects, measurements)
    version, sha = rules_version(spec)
    record = make_record(
        seq,
        core,
        decision.code,
        family=family,
        ts=ts,
        defects=defects,
        measurements=measurements,
        impact=impact(spec, decision.code),
    )
    return record.model_copy(
        update={"decision": decision, "rules": RulesInfo(version=version, sha256=sha)}
    )


@pytest.fixture
def journal_path(tmp_path):
    path = tmp_path / "journal.db"
    leaky = {**GOOD, "leak_rate_ml_min": {"value": 4.5, "unit": "ml/min", "status": "Good"}}
    with Journal.open(path, families=FAMILIES) as store:
        for seq, core, defects, values, ts in [
            (1, "HGP-000001", CLEAN, GOOD, "2026-11-27T08:00:00.000Z"),
            (2, "HGP-000002", CLEAN, leaky, "2026-11-28T08:00:00.000Z"),
            (
                3,
                "HGP-000003",
                {**CLEAN, "corrosion": {"grade": 4, "area_pct": 9.5, "confidence": 0.93}},
                GOOD,
                "2026-11-28T09:00:00.000Z",
            ),
            (4, "HGP-000001", CLEAN, leaky, "2026-11-28T10:00:00.000Z"),
        ]:
            record = decided(seq, core, defects, values, ts=ts)
            store.record_inspection(record, messages_for(record))
        first = store.find(core="HGP-000001")[0]
        store.apply_override(first.id, 2, "scored shaft", "anna")
    return path


def test_decide_dry_run(tmp_path):
    data = {
        "defects": {**CLEAN, "corrosion": {"grade": 4, "area_pct": 9.5, "confidence": 0.93}},
        "measurements": {"flow_l_min": GOOD["flow_l_min"]},
    }
    (tmp_path / "in.json").write_text(json.dumps(data))
    result = run(
        "decide",
        "--family",
        "hydraulic-gear-pump",
        "--input",
        tmp_path / "in.json",
        "--families",
        REPO / "config/families",
        "--json",
    )
    assert result.exit_code == 0, result.output
    decision = json.loads(result.output)
    assert (decision["code"], decision["label"], decision["credit"]) == (3, "RECYCLE", 3)
    assert [r["code"] for r in decision["reasons"]] == ["corrosion_grade", "measurement_missing"]
    assert decision["reasons"][0]["rule"] == "grades.corrosion.recycle_at"
    text = run(
        "decide",
        "--family",
        "hydraulic-gear-pump",
        "--input",
        tmp_path / "in.json",
        "--families",
        REPO / "config/families",
    )
    assert (
        text.output.startswith("RECYCLE (code 3, credit none)")
        and "leak_rate_ml_min: missing" in text.output
    )


def test_decide_unknown_family_and_bad_input(tmp_path):
    (tmp_path / "in.json").write_text(json.dumps({"defects": CLEAN, "measurements": GOOD}))
    result = run(
        "decide",
        "--family",
        "toaster",
        "--input",
        tmp_path / "in.json",
        "--families",
        REPO / "config/families",
        "--json",
    )
    assert json.loads(result.output)["label"] == "REVIEW"
    (tmp_path / "bad.json").write_text("{oops")
    result = run(
        "decide",
        "--family",
        "toaster",
        "--input",
        tmp_path / "bad.json",
        "--families",
        REPO / "config/families",
    )
    assert (
        result.exit_code == 1
        and "bad.json:1: not JSON" in result.output
        and "Traceback" not in result.output
    )


def test_decide_takes_families_from_station_config(tmp_path):
    shutil.copytree(REPO / "config/families", tmp_path / "families")
    station = (REPO / "config/station.example.yaml").read_text()
    (tmp_path / "station.yaml").write_text(station.replace("/var/lib/reman/", f"{tmp_path}/"))
    (tmp_path / "in.json").write_text(json.dumps({"defects": CLEAN, "measurements": GOOD}))
    result = run(
        "decide",
        "--config",
        tmp_path / "station.yaml",
        "--family",
        "hydraulic-gear-pump",
        "--input",
        tmp_path / "in.json",
    )
    assert result.output.startswith("REUSE"), result.output


def test_journal_show(journal_path):
    result = run("journal", "show", "--journal", journal_path, "--core", "HGP-000001")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "REMANUFACTURE*" in lines[0] and "HGP-000001" in lines[0]
    assert lines[-1] == "2 inspection(s)"
    result = run(
        "journal",
        "show",
        "--journal",
        journal_path,
        "--since",
        "2026-11-28T00:00:00Z",
        "--decision",
        "RECYCLE",
        "--json",
    )
    assert [r["core_id"] for r in json.loads(result.output)] == ["HGP-000003"]
    result = run("journal", "show")
    assert result.exit_code == 2 and "--journal" in result.output


def test_journal_export_csv_with_impact(journal_path, tmp_path):
    result = run("journal", "export", "--journal", journal_path, "--csv", tmp_path / "out.csv")
    assert result.exit_code == 0 and "4 inspection(s)" in result.output
    rows = list(csv.DictReader(open(tmp_path / "out.csv", encoding="utf-8")))
    assert [r["effective_label"] for r in rows] == ["REMANUFACTURE", "REUSE", "RECYCLE", "REUSE"]
    assert rows[0]["label"] == "REUSE" and rows[0]["override_user"] == "anna"
    assert [float(r["co2e_avoided_kg"]) for r in rows] == [11.2, 13.4, 4.5, 13.4]
    assert [float(r["material_kept_kg"]) for r in rows] == [4.6, 4.6, 0.0, 4.6]


def test_rules_replay(journal_path, tmp_path):
    candidate = tmp_path / "candidate"
    shutil.copytree(REPO / "config/families", candidate)
    path = candidate / "hydraulic-gear-pump.yaml"
    path.write_text(path.read_text().replace("    max: 5.0\n", "    max: 4.0\n"))
    result = run("rules", "replay", "--rules", candidate, "--journal", journal_path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert (report["inspections"], report["changed"]) == (4, 2)
    assert report["transitions"] == {"REUSE -> REMANUFACTURE": 2}
    assert [c["core_id"] for c in report["changes"]] == ["HGP-000002", "HGP-000001"]
    assert "leak_rate_ml_min 4.5 ml/min above max 4" in report["changes"][0]["reasons"][0]
    same = run(
        "rules",
        "replay",
        "--rules",
        REPO / "config/families",
        "--journal",
        journal_path,
        "--since",
        "2026-11-28T00:00:00Z",
    )
    assert same.output.splitlines()[0] == "0 of 3 decision(s) would change"


def test_replay_skips_failed_and_keeps_core_id_review():
    from edge.contract import DecisionInfo, Reason
    from edge.decision.rules import replay

    failed = make_record(1, code=Disposition.NONE)
    generated = decided(2, "HGP-000009", CLEAN, GOOD)
    core_reason = Reason(code="core_id_generated", text="no core id read; generated one")
    generated = generated.model_copy(
        update={
            "decision": DecisionInfo(
                code=Disposition.REVIEW, label="REVIEW", credit=0, reasons=[core_reason]
            )
        }
    )
    report = replay(FAMILIES, [failed, generated])
    assert (report["inspections"], report["skipped"], report["changed"]) == (1, 1, 0)


def test_passport_command(journal_path):
    result = run("passport", "HGP-000001", "--journal", journal_path)
    assert result.exit_code == 0, result.output
    passport = json.loads(result.output)
    assert [i["time"] for i in passport["inspections"]] == [
        "2026-11-27T08:00:00.000Z",
        "2026-11-28T10:00:00.000Z",
    ]
    assert passport["inspections"][0]["overrides"][0]["user"] == "anna"
    env = json.loads(
        run("passport", "HGP-000001", "--journal", journal_path, "--format", "aas").output
    )
    [shell] = env["assetAdministrationShells"]
    assert shell["assetInformation"]["globalAssetId"] == "urn:reman-edge:core:HGP-000001"
    package = journal_path.parent / "HGP-000001.aasx"
    args = ["--journal", journal_path, "--format", "aasx", "--out", package]
    written = run("passport", "HGP-000001", *args)
    assert written.exit_code == 0 and package.read_bytes()[:2] == b"PK"
    no_out = run("passport", "HGP-000001", "--journal", journal_path, "--format", "aasx")
    assert no_out.exit_code == 1 and "give --out FILE" in no_out.output
    missing = run("passport", "HGP-404", "--journal", journal_path)
    assert missing.exit_code == 1 and "no inspection of core HGP-404" in missing.output


def test_passport_qr_label_from_the_station_configs_resolver(station_config, tmp_path):
    import cv2
    import zxingcpp

    png, svg = tmp_path / "HGP-000001.png", tmp_path / "HGP-000001.svg"
    for out in (png, svg):
        result = run("passport", "HGP-000001", "--config", station_config, "--qr", out)
        assert result.exit_code == 0 and result.output == "", result.output
    url = "https://passport.example.com/urn%3Areman%3Aexample-reman%3AHGP-000001"
    assert [r.text for r in zxingcpp.read_barcodes(cv2.imread(str(png)))] == [url]
    assert svg.read_text().startswith("<svg") and ">HGP-000001</text>" in svg.read_text()


def test_passport_qr_refuses_what_it_cannot_label(journal_path, station_config, tmp_path):
    pdf = run("passport", "HGP-000001", "--config", station_config, "--qr", tmp_path / "l.pdf")
    assert pdf.exit_code == 1 and "a label file ends in .png or .svg" in pdf.output
    missing = run("passport", "HGP-404", "--config", station_config, "--qr", tmp_path / "l.png")
    assert missing.exit_code == 1 and "no inspection of core HGP-404" in missing.output
    # without a config the default template makes URNs, and there is no resolver for them
    urn = run("passport", "HGP-000001", "--journal", journal_path, "--qr", tmp_path / "l.png")
    assert urn.exit_code == 1 and "set the site's resolver_url_template" in urn.output
    assert "Traceback" not in urn.output and not (tmp_path / "l.png").exists()


@pytest.fixture
def station_config(tmp_path, journal_path):
    """A station config like the installed one, whose journal is `journal_path`."""
    return installed_config(tmp_path / "etc", journal_path)


def assert_reads_the_journal_of(config_used) -> None:
    """`journal show --core` and `passport`, without --config or --journal, as documented."""
    shown = run("journal", "show", "--core", "HGP-000001")
    assert shown.exit_code == 0, shown.output
    assert shown.output.splitlines()[-1] == "2 inspection(s)"
    passport = run("passport", "HGP-000001")
    assert passport.exit_code == 0, passport.output
    assert json.loads(passport.output)["operator"]["facility"] == "Example Reman Plant, Hall 2"
    env = json.loads(run("passport", "HGP-000001", "--format", "aas").output)
    [shell] = env["assetAdministrationShells"]
    assert shell["assetInformation"]["globalAssetId"] == "urn:reman:example-reman:HGP-000001"


def test_journal_commands_take_the_config_from_reman_config(station_config, monkeypatch):
    monkeypatch.setenv("REMAN_CONFIG", str(station_config))
    assert_reads_the_journal_of(station_config)


def test_journal_commands_default_to_the_installed_config(station_config, monkeypatch):
    from reman.commands import journal as commands

    monkeypatch.setattr(commands, "STATION_CONFIG", station_config)
    assert_reads_the_journal_of(station_config)


def test_no_installed_config_is_one_line_naming_it(tmp_path, monkeypatch):
    from reman.commands import journal as commands

    missing = tmp_path / "etc/reman/station.yaml"
    monkeypatch.setattr(commands, "STATION_CONFIG", missing)
    for args in (["journal", "show", "--core", "HGP-000001"], ["passport", "HGP-000001"]):
        result = run(*args)
        assert result.exit_code == 2, result.output
        assert result.output.count("\n") == 1 and "Traceback" not in result.output
        line = result.output.strip()
        assert line.startswith(f"{missing}: ") and "--config" in line and "--journal" in line
        assert "REMAN_CONFIG" in line


def delivered_and_pruned(path) -> None:
    """The outbox as a node leaves it: every row delivered and pruned."""
    with Journal.open(path) as store:
        sent = [m.id for m in store.outbox.pending(limit=1000)]
        store.outbox.mark_delivered(sent)
        assert store.outbox.prune_delivered(0, now=time.time() + 1) == len(sent) > 0


def test_republish_queues_the_journaled_records_since(journal_path, station_config):
    delivered_and_pruned(journal_path)
    result = run(
        "journal", "republish", "--config", station_config, "--since", "2026-11-28T00:00:00Z"
    )
    assert result.exit_code == 0, result.output
    assert result.output == "3 inspection(s) queued on reman/pump-line-1/inspection\n"
    with Journal.open(journal_path) as store:
        rows = store.outbox.pending()
        records = store.find(since="2026-11-28T00:00:00Z")
        assert store.check() == []
    assert [(m.kind, m.topic, m.qos, m.retain) for m in rows] == [
        ("inspection", "reman/pump-line-1/inspection", 1, False)
    ] * 3
    assert [m.msg_id for m in rows] == [r.id for r in records]
    assert [InspectionRecord.model_validate_json(m.payload) for m in rows] == records
    assert records[0].core_id == "HGP-000002"
    everything = run("journal", "republish", "--config", station_config)
    assert everything.output.startswith("4 inspection(s) queued")


def test_republish_reads_the_journal_in_chunks(tmp_path):
    from edge.contract import Topics
    from edge.journal.republish import republish

    with Journal.open(tmp_path / "journal.db") as store:
        for seq in range(1, 8):
            record = make_record(seq, f"HGP-{seq:06d}", ts=f"2026-11-28T08:00:0{seq}.000Z")
            store.record_inspection(record, [])
        assert republish(store, Topics("pump-line-1"), chunk=3) == 7
        queued = [json.loads(m.payload)["seq"] for m in store.outbox.pending()]
    assert queued == [1, 2, 3, 4, 5, 6, 7]


def test_republish_without_a_config_names_the_installed_one():
    result = run("journal", "republish")
    assert result.exit_code == 2 and "station.yaml: (file): no station config" in result.output
    assert "--config" in result.output and "--journal" not in result.output


def test_missing_journal_is_a_clean_error(tmp_path):
    result = run("journal", "show", "--journal", tmp_path / "none.db")
    assert result.exit_code == 1 and "no journal at" in result.output


def test_decision_codes_are_the_contract_codes():
    assert [
        d.value
        for d in (
            Disposition.REUSE,
            Disposition.REMANUFACTURE,
            Disposition.RECYCLE,
            Disposition.REVIEW,
        )
    ] == [1, 2, 3, 4]
