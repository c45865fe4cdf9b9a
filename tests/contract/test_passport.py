"""Impact figures per decision and the core passport (JSON and AAS)."""

from __future__ import annotations

import json

import pytest

from edge.contract import Disposition
from edge.contract.passport import NoInspections, build_passport, circularity, from_aas, to_aas
from edge.decision.families import load_families
from edge.decision.rules import impact
from edge.journal.journal import Journal
from tests.conftest import REPO
from tests.support.journal_records import make_record, messages_for

FAMILIES = load_families(REPO / "config/families")
R, M, X, V = Disposition.REUSE, Disposition.REMANUFACTURE, Disposition.RECYCLE, Disposition.REVIEW


def recorded(journal, seq, core, family, code, ts=None, **extra):
    record = make_record(
        seq, core, code, family=family, ts=ts, impact=impact(FAMILIES.get(family), code), **extra
    )
    journal.record_inspection(record, messages_for(record))
    return record


@pytest.fixture
def journal(tmp_path):
    store = Journal.open(tmp_path / "journal.db", families=FAMILIES)
    yield store
    store.close()


def test_figures_summed_for_a_known_set(journal):
    for seq, (family, code) in enumerate(
        [
            ("hydraulic-gear-pump", R),
            ("hydraulic-gear-pump", M),
            ("hydraulic-gear-pump", X),
            ("heat-pump-compressor", M),
            ("battery-module", V),
        ],
        start=1,
    ):
        recorded(journal, seq, f"C-{seq}", family, code)
    figures = circularity(journal.find())
    # kept: 4.6 + 4.6 + 0 + 24.0 + 0; CO2e: (14 - 0.6) + (14 - 2.8) + 4.5 + (95 - 22) + 0
    assert figures["material_kept_kg"] == pytest.approx(33.2)
    assert figures["co2e_avoided_kg"] == pytest.approx(13.4 + 11.2 + 4.5 + 73.0)
    assert figures["by_disposition"] == {"REUSE": 1, "REMANUFACTURE": 2, "RECYCLE": 1, "REVIEW": 1}
    assert figures["reuse_remanufacture_rate"] == pytest.approx(0.6)
    assert (figures["known"], figures["unknown"]) == (5, 0)


def test_an_override_changes_the_figures(journal):
    first = recorded(journal, 1, "C-1", "hydraulic-gear-pump", R)
    recorded(journal, 2, "C-2", "battery-module", V)
    before = circularity(journal.find())
    journal.apply_override(first.id, 3, "cracked housing", "anna")
    review = journal.find(decision="REVIEW")[0]
    journal.apply_override(review.id, 2, "cells fine after retest", "ben")
    after = circularity(journal.find())
    assert before["co2e_avoided_kg"] == pytest.approx(13.4)
    assert after["co2e_avoided_kg"] == pytest.approx(4.5 + (165.0 - 18.0))
    assert after["material_kept_kg"] == pytest.approx(14.0)
    assert after["by_disposition"] == {"RECYCLE": 1, "REMANUFACTURE": 1}


def test_a_family_without_figures_is_unknown_not_zero(tmp_path):
    folder = tmp_path / "families"
    folder.mkdir()
    text = (REPO / "config/families/hydraulic-gear-pump.yaml").read_text()
    (folder / "hydraulic-gear-pump.yaml").write_text(text[: text.index("impact:")])
    bare = load_families(folder)
    with Journal.open(tmp_path / "j.db", families=bare) as store:
        record = make_record(1, impact=impact(bare.get("hydraulic-gear-pump"), R))
        store.record_inspection(record, messages_for(record))
        figures = circularity(store.find())
        assert (figures["material_kept_kg"], figures["co2e_avoided_kg"], figures["unknown"]) == (
            None,
            None,
            1,
        )
        updated = store.apply_override(record.id, 2, "regrind", "anna")
        assert updated.impact.known is False and updated.impact.co2e_avoided_kg is None


def passport_of_core_inspected_twice(journal):
    first = recorded(
        journal,
        1,
        "HGP-000123",
        "hydraulic-gear-pump",
        V,
        ts="2026-11-20T08:00:00.000Z",
        part_number="HGP-2-22",
    )
    journal.apply_override(first.id, 2, "leak test repeated by hand: 4.1 ml/min", "anna")
    journal.apply_override(first.id, 3, "housing crack found at disassembly", "ben")
    recorded(journal, 7, "HGP-999999", "hydraulic-gear-pump", R)  # another core
    second = recorded(
        journal, 9, "HGP-000123", "hydraulic-gear-pump", R, ts="2026-11-28T09:30:00.000Z"
    )
    records = journal.find(core="HGP-000123")
    history = {r.id: journal.override_history(r.id) for r in records}
    return (
        first,
        second,
        build_passport(
            list(reversed(records)),
            "HGP-000123",
            operator="Example Reman GmbH",
            facility="Hall 2",
            overrides=history,
        ),
    )


def test_passport_lists_everything_in_order(journal):
    first, second, passport = passport_of_core_inspected_twice(journal)
    assert passport["unique_identifier"] == {
        "core_id": "HGP-000123",
        "family": "hydraulic-gear-pump",
        "part_number": "HGP-2-22",
    }
    assert passport["operator"] == {
        "operator": "Example Reman GmbH",
        "facility": "Hall 2",
        "stations": ["pump-line-1"],
    }
    assert passport["dates"]["first_inspected"] == "2026-11-20T08:00:00.000Z"
    assert passport["dates"]["last_inspected"] == "2026-11-28T09:30:00.000Z"
    assert (
        passport["status"]["r_strategy"] == "reuse" and passport["status"]["decided_by"] == "rules"
    )
    assert [i["id"] for i in passport["inspections"]] == [first.id, second.id]
    one, two = passport["inspections"]
    assert (one["predecessor"], two["predecessor"]) == (None, first.id)
    assert one["decision"]["label"] == "REVIEW" and one["effective"]["label"] == "RECYCLE"
    assert [(o["user"], o["label"], o["reason"]) for o in one["overrides"]] == [
        ("anna", "REMANUFACTURE", "leak test repeated by hand: 4.1 ml/min"),
        ("ben", "RECYCLE", "housing crack found at disassembly"),
    ]
    assert one["override"]["user"] == "ben"
    assert one["grades"]["corrosion"]["grade"] == 1
    assert one["measurements"]["leak_rate_ml_min"]["value"] == 3.2
    assert one["model"]["version"] == "1.0.0" and one["rules"]["version"] == "0123456789ab"
    assert passport["circularity"] == {
        "known": True,
        "material_kept_kg": 4.6,
        "co2e_avoided_kg": 13.4,
    }


def test_passport_status_follows_the_latest_override(journal):
    record = recorded(journal, 1, "HGP-1", "hydraulic-gear-pump", R)
    journal.apply_override(record.id, 3, "cracked", "anna")
    passport = build_passport(journal.find(core="HGP-1"))
    assert (
        passport["status"]["r_strategy"] == "recycle"
        and passport["status"]["decided_by"] == "override"
    )
    with pytest.raises(NoInspections):
        build_passport([], "HGP-2")


def test_aas_parses_as_json_with_the_same_values(journal):
    _, _, passport = passport_of_core_inspected_twice(journal)
    submodel = json.loads(json.dumps(to_aas(passport)))
    assert submodel["modelType"] == "Submodel" and submodel["idShort"] == "RemanufacturingPassport"
    assert submodel["semanticId"]["keys"][0]["value"].startswith("urn:")
    assert from_aas(submodel) == json.loads(json.dumps(passport))
    elements = {e["idShort"]: e for e in submodel["submodelElements"]}
    inspections = elements["inspections"]
    assert inspections["modelType"] == "SubmodelElementList"
    assert inspections["typeValueListElement"] == "SubmodelElementCollection"
    assert all("idShort" not in member for member in inspections["value"])
    ident = {e["idShort"]: e for e in elements["unique_identifier"]["value"]}
    assert ident["core_id"] == {
        "idShort": "core_id",
        "modelType": "Property",
        "valueType": "xs:string",
        "value": "HGP-000123",
    }
    dates = {e["idShort"]: e["valueType"] for e in elements["dates"]["value"]}
    assert set(dates.values()) == {"xs:dateTime"}
