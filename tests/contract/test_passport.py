"""Impact figures per decision and the core passport (JSON, and AAS checked by aas-core3.0 and BaSyx)."""

from __future__ import annotations

import io
import json

import pytest
from aas_core3 import jsonization, verification
from basyx.aas.adapter.aasx import AASXReader, DictSupplementaryFileContainer
from basyx.aas.adapter.json import read_aas_json_file
from basyx.aas.model import AssetAdministrationShell, DictObjectStore, Submodel

from edge.contract import Disposition
from edge.contract.aas import (
    CARBON_FOOTPRINT_SEMANTIC_ID,
    NAMEPLATE_SEMANTIC_ID,
    PartFacts,
    build_environment,
    environment_aasx,
    environment_json,
)
from edge.contract.errors import PassportIdError
from edge.contract.identity import Issuer, template_problem
from edge.contract.passport import NoInspections, build_passport, circularity
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
    figures = passport["circularity"]
    assert {k: figures[k] for k in ("known", "material_kept_kg", "co2e_avoided_kg")} == {
        "known": True,
        "material_kept_kg": 4.6,
        "co2e_avoided_kg": 13.4,
    }
    assert figures["method"]["formula"].endswith("(14.0 - 0.6)")
    assert figures["method"]["co2e_avoided"]["low_kg"] == 9.0


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


def verified_environment(env) -> dict:
    """The environment's JSON after both standard tools accepted it (aas-core3.0 and BaSyx)."""
    document = json.loads(json.dumps(environment_json(env)))
    errors = list(verification.verify(jsonization.environment_from_jsonable(document)))
    assert [f"{e.path}: {e.cause}" for e in errors] == []
    store = read_aas_json_file(io.StringIO(json.dumps(document)), failsafe=False)
    assert {type(o).__name__ for o in store} >= {"AssetAdministrationShell", "Submodel"}
    return document


def submodel(document: dict, id_short: str) -> dict:
    return next(s for s in document["submodels"] if s["idShort"] == id_short)


def elements(element: dict) -> dict:
    return {e["idShort"]: e for e in element.get("submodelElements", element.get("value", []))}


GS1 = Issuer(
    id_template="https://id.example.com/01/09506000134352/21/{core_id}",
    operator="Example Reman GmbH",
    operator_id="4012345000009",
    facility="Hall 2",
    facility_id="4012345000016",
)


def test_passport_with_overrides_is_an_environment_both_tools_accept(journal):
    first, _, passport = passport_of_core_inspected_twice(journal)
    document = verified_environment(build_environment(passport, GS1))
    [shell] = document["assetAdministrationShells"]
    core_uri = "https://id.example.com/01/09506000134352/21/HGP-000123"
    assert shell["assetInformation"]["globalAssetId"] == core_uri
    assert {r["keys"][0]["value"] for r in shell["submodels"]} == {
        s["id"] for s in document["submodels"]
    }
    nameplate = submodel(document, "Nameplate")
    assert nameplate["semanticId"]["keys"][0]["value"] == NAMEPLATE_SEMANTIC_ID
    assert {k: e.get("value") for k, e in elements(nameplate).items()} == {
        "URIOfTheProduct": core_uri,
        "ProductArticleNumberOfManufacturer": "HGP-2-22",
    }  # manufacturer and serial are not known: left out, not guessed
    footprint = submodel(document, "CarbonFootprint")
    assert footprint["semanticId"]["keys"][0]["value"] == CARBON_FOOTPRINT_SEMANTIC_ID
    [pcf] = elements(footprint)["ProductCarbonFootprints"]["value"]
    assert float(elements(pcf)["CO2eqAvoided"]["value"]) == pytest.approx(13.4)
    record = elements(submodel(document, "RemanufacturingRecord"))
    assert elements(record["unique_identifier"])["persistent_id"]["value"] == core_uri
    assert elements(record["operator"])["facility_id"]["value"] == "4012345000016"
    one, two = record["inspections"]["value"]
    assert elements(one)["id"]["value"] == first.id
    overrides = elements(one)["overrides"]
    assert [elements(o)["user"]["value"] for o in overrides["value"]] == ["anna", "ben"]
    assert "overrides" not in elements(two)  # never overridden: no empty list
    leak = elements(elements(elements(one)["measurements"])["leak_rate_ml_min"])
    assert (leak["value"]["value"], leak["unit"]["value"]) == ("3.2", "ml/min")
    assert len(elements(elements(one)["model"])["sha256"]["value"]) > 0
    assert elements(elements(one)["rules"])["sha256"]["value"]


def test_passport_without_overrides_or_figures_is_valid_too(journal):
    record = recorded(journal, 1, "HGP-7/A", "hydraulic-gear-pump", R, images=["d/7.jpg"])
    passport = build_passport(journal.find(core="HGP-7/A"), image_sha256={"d/7.jpg": "ab" * 32})
    passport["circularity"] = {"known": False, "material_kept_kg": None, "co2e_avoided_kg": None}
    issuer = Issuer(id_template="urn:reman:{operator}:{core_id}", operator_id="acme")
    document = verified_environment(build_environment(passport, issuer))
    [shell] = document["assetAdministrationShells"]
    assert shell["assetInformation"]["globalAssetId"] == "urn:reman:acme:HGP-7%2FA"
    assert "CarbonFootprint" not in {s["idShort"] for s in document["submodels"]}
    [inspection] = elements(submodel(document, "RemanufacturingRecord"))["inspections"]["value"]
    assert elements(inspection)["id"]["value"] == record.id
    [image] = elements(inspection)["images"]["value"]
    assert elements(image)["sha256"]["value"] == "ab" * 32


def test_aasx_opens_with_the_basyx_reader(journal, tmp_path):
    _, _, passport = passport_of_core_inspected_twice(journal)
    path = tmp_path / "core.aasx"
    path.write_bytes(environment_aasx(build_environment(passport, GS1)))
    store = DictObjectStore()
    with AASXReader(path, failsafe=False) as reader:
        reader.read_into(store, DictSupplementaryFileContainer())
    shells = [o for o in store if isinstance(o, AssetAdministrationShell)]
    assert [s.asset_information.global_asset_id for s in shells] == [
        "https://id.example.com/01/09506000134352/21/HGP-000123"
    ]
    assert {o.id_short for o in store if isinstance(o, Submodel)} == {
        "Nameplate",
        "CarbonFootprint",
        "RemanufacturingRecord",
    }


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("urn:reman:{operator}", "needs {core_id}"),
        ("ftp://x/{core_id}", "https:// URI"),
        ("urn:reman:{plant}:{core_id}", "unknown placeholder"),
    ],
)
def test_an_unusable_id_template_is_refused(template, problem):
    assert problem in template_problem(template)


def test_an_unknown_placeholder_value_is_an_error_not_an_empty_segment(journal):
    _, _, passport = passport_of_core_inspected_twice(journal)
    issuer = Issuer(id_template="https://id.example.com/01/{gtin}/21/{core_id}")
    with pytest.raises(PassportIdError, match="gtin"):
        build_environment(passport, issuer)
    env = build_environment(passport, issuer, part=PartFacts(gtin="09506000134352"))
    assert (
        "/01/09506000134352/21/HGP-000123"
        in verified_environment(env)["assetAdministrationShells"][0]["assetInformation"][
            "globalAssetId"
        ]
    )
