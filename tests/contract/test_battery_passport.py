"""The battery passport of a remanufactured module in the Digital Battery Passport structure
(IDTA 02035), and the impact figures' method and ranges."""

from __future__ import annotations

import textwrap

import pytest

from edge.contract import Disposition
from edge.contract.aas import build_environment, family_submodels
from edge.contract.dbp import (
    NAMEPLATE_SEMANTIC_ID,
    NAMEPLATE_TEMPLATE_ID,
    PRODUCT_CONDITION_SEMANTIC_ID,
    PRODUCT_CONDITION_TEMPLATE_ID,
    TECHNICAL_DATA_SEMANTIC_ID,
    UNKNOWN_QUALIFIER,
)
from edge.contract.errors import ConfigError
from edge.contract.passport import build_passport
from edge.decision.families import load_families
from edge.decision.rules import impact
from edge.journal.journal import Journal
from tests.conftest import REPO
from tests.contract.test_passport import GS1, elements, submodel, verified_environment
from tests.support.journal_records import make_record, messages_for

FAMILIES = load_families(REPO / "config/families")
BATTERY = FAMILIES.get("battery-module")
M, R = Disposition.REMANUFACTURE, Disposition.REUSE


BATTERY_PARTS = ("BatteryNameplate", "TechnicalData", "ProductCondition")


def flat(element: dict) -> dict[str, dict]:
    """Every element under a submodel or collection by idShort, collections opened."""
    found: dict[str, dict] = {}
    for name, child in elements(element).items():
        found[name] = child
        if child["modelType"] == "SubmodelElementCollection":
            found |= flat(child)
    return found


def battery_parts(passport) -> dict[str, dict[str, dict]]:
    """The battery submodels of the passport's AAS environment (both tools accepted it), each
    flattened by idShort."""
    document = verified_environment(
        build_environment(passport, GS1, extra=family_submodels(passport, GS1))
    )
    return {name: flat(submodel(document, name)) for name in BATTERY_PARTS}


def sid(element: dict) -> str:
    return element["semanticId"]["keys"][0]["value"]


def is_unknown(element: dict) -> bool:
    return "value" not in element and [sid(q) for q in element["qualifiers"]] == [UNKNOWN_QUALIFIER]


def bench(capacity_pct: float, resistance_mohm: float, status: str = "Good") -> dict:
    return {
        "capacity_pct": {"value": capacity_pct, "unit": "%", "status": status},
        "internal_resistance_mohm": {"value": resistance_mohm, "unit": "mOhm", "status": status},
    }


@pytest.fixture
def journal(tmp_path):
    store = Journal.open(tmp_path / "journal.db", families=FAMILIES)
    yield store
    store.close()


def battery_passport(journal, code=M, measurements=None, source="label"):
    assert BATTERY is not None and BATTERY.passport is not None
    record = make_record(
        1,
        "BAT-000001",
        code,
        family="battery-module",
        measurements=measurements or bench(93.0, 21.0),
        impact=impact(BATTERY, code),
        battery=BATTERY.passport.battery,
    ).model_copy(update={"core_id_source": source})
    journal.record_inspection(record, messages_for(record))
    return build_passport(journal.find(core="BAT-000001"), facility="Hall 2")


def test_remanufactured_module_passport_carries_soh_and_its_original_id(journal):
    passport = battery_passport(journal)
    facts = passport["battery"]
    assert facts["battery_status"] == "Remanufactured"
    assert facts["original_passport_id"] == "BAT-000001"
    assert passport["predecessor"]["passport"] == "BAT-000001"
    # capacity SoH 93 %; resistance SoH (45 - 21) / (45 - 15) = 80 %; SoH the lower one
    assert facts["capacity_soh_pct"] == 93.0
    assert facts["resistance_soh_pct"] == 80.0
    assert facts["state_of_health_pct"] == 80.0
    assert facts["remaining_capacity_ah"] == pytest.approx(42.594)
    assert facts["internal_resistance_increase_pct"] == 40.0
    assert facts["operation"]["facility"] == "Hall 2"

    parts = battery_parts(passport)
    nameplate, technical, condition = (parts[n] for n in BATTERY_PARTS)
    assert nameplate["URIOfTheProduct"]["value"] == GS1.core_uri("BAT-000001")  # the new passport
    assert nameplate["LifeCycleStage"]["value"] == "remanufactured"
    assert nameplate["LifeCycleStage"]["valueId"]["keys"][0]["value"].endswith(
        "_remanufactured83fbdb6f"
    )
    assert nameplate["OriginalBatteryPassportId"]["value"] == "BAT-000001"
    assert nameplate["UniqueFacilityIdentifier"]["value"] == "4012345000016"
    assert nameplate["OperatorIdentifier"]["value"] == "4012345000009"
    assert nameplate["OperationFacility"]["value"] == "Hall 2"
    assert technical["RatedCapacity"]["value"] == "45.8"
    assert float(technical["InitialInternalResistanceOnBatteryModuleLevel"]["value"]) == 0.015
    assert technical["InternalResistanceIncreaseOfBatteryModuleLevel"]["value"] == "40.0"
    assert float(condition["RemainingCapacityValue"]["value"]) == pytest.approx(42.594)
    assert condition["LastUpdate"]["value"].startswith("20")
    assert condition["StateOfHealth"]["value"] == "80.0"
    assert condition["InternalResistance"]["value"] == "21.0"
    for unknown in ("NumberOfFullCycles", "EnergyThroughput", "StateOfCharge", "NegativeEvents"):
        assert is_unknown(condition[unknown]), unknown
    assert condition["NegativeEvents"]["modelType"] == "SubmodelElementList"


def test_the_battery_submodels_follow_the_idta_02035_templates(journal):
    passport = battery_passport(journal)
    document = verified_environment(
        build_environment(passport, GS1, extra=family_submodels(passport, GS1))
    )
    named = {s["idShort"]: s for s in document["submodels"]}
    for name, semantic_id, template_id in (
        ("BatteryNameplate", NAMEPLATE_SEMANTIC_ID, NAMEPLATE_TEMPLATE_ID),
        ("TechnicalData", TECHNICAL_DATA_SEMANTIC_ID, None),
        ("ProductCondition", PRODUCT_CONDITION_SEMANTIC_ID, PRODUCT_CONDITION_TEMPLATE_ID),
    ):
        assert sid(named[name]) == semantic_id
        assert named[name]["administration"].get("templateId") == template_id
        assert named[name]["id"] == GS1.core_uri("BAT-000001") + "/sm/" + name
    shell_refs = {
        r["keys"][0]["value"] for r in document["assetAdministrationShells"][0]["submodels"]
    }
    assert {named[n]["id"] for n in BATTERY_PARTS} <= shell_refs
    condition = flat(named["ProductCondition"])
    pc = "urn:samm:io.admin-shell.idta.batterypass.product_condition:1.0.1#"
    assert sid(condition["RemainingCapacity"]) == pc + "remainingCapacity"
    assert sid(condition["RemainingCapacityValue"]) == pc + "remainingCapacityValue"
    assert sid(condition["StateOfHealth"]).startswith("urn:reman-edge:concept:battery:")
    technical = flat(named["TechnicalData"])
    assert sid(technical["TechnicalPropertyAreas"]) == "0173-1#02-ABK163#002"
    assert sid(technical["RatedCapacity"]) == "0173-1#02-ABL869#002"


def test_untrusted_bench_values_and_a_generated_id_are_unknown(journal):
    passport = battery_passport(journal, R, bench(95.0, 20.0, "Bad"), source="generated")
    facts = passport["battery"]
    assert facts["battery_status"] == "Repurposed"
    assert facts["state_of_health_pct"] is None and facts["original_passport_id"] is None
    parts = battery_parts(passport)
    condition = parts["ProductCondition"]
    assert is_unknown(condition["StateOfHealth"]) and is_unknown(condition["RemainingCapacity"])
    assert "RemainingCapacityValue" not in condition
    assert parts["BatteryNameplate"]["LifeCycleStage"]["value"] == "repurposed"
    assert is_unknown(parts["BatteryNameplate"]["OriginalBatteryPassportId"])


def test_a_pump_passport_has_no_battery_submodel(journal):
    record = make_record(1, "HGP-000001", M, impact=impact(FAMILIES.get("hydraulic-gear-pump"), M))
    journal.record_inspection(record, messages_for(record))
    passport = build_passport(journal.find(core="HGP-000001"))
    assert "battery" not in passport and family_submodels(passport, GS1) == []
    document = verified_environment(build_environment(passport, GS1))
    assert {s["idShort"] for s in document["submodels"]} == {
        "Nameplate",
        "CarbonFootprint",
        "RemanufacturingRecord",
    }


def test_figures_carry_their_method_source_and_range(journal):
    figures = impact(BATTERY, M)
    assert (figures.co2e_avoided_kg, figures.material_kept_kg) == (147.0, 14.0)
    assert figures.method is not None and figures.method.co2e_avoided is not None
    assert (figures.method.co2e_avoided.low_kg, figures.method.co2e_avoided.high_kg) == (95, 215)
    assert "165.0 - 18.0" in figures.method.formula
    document = verified_environment(build_environment(battery_passport(journal), GS1))
    [footprint] = elements(submodel(document, "CarbonFootprint"))["ProductCarbonFootprints"][
        "value"
    ]
    values = elements(footprint)
    assert (
        values["CO2eqAvoidedRange"]["min"] == "95.0"
        and values["CO2eqAvoidedRange"]["max"] == "215.0"
    )
    assert "not an LCA" in values["CO2eqAvoidedSource"]["value"]
    assert values["ImpactMethod"]["value"].startswith("material_kept = mass_kg")


@pytest.mark.parametrize("family", sorted(f.id for f in FAMILIES if f.impact))
def test_every_example_family_gives_each_decisions_range_and_source(family):
    spec = FAMILIES.get(family)
    for code in (R, M, Disposition.RECYCLE):
        method = impact(spec, code).method
        assert method is not None and method.co2e_avoided is not None, (family, code.name)
        given = method.co2e_avoided
        assert given.low_kg <= impact(spec, code).co2e_avoided_kg <= given.high_kg
        assert "not an LCA" in given.source
        if code is not Disposition.RECYCLE:  # nothing is kept when recycled
            assert method.material_kept is not None and method.material_kept.source


def write_family(tmp_path, text: str):
    base = (REPO / "config/families/battery-module.yaml").read_text()
    (tmp_path / "battery-module.yaml").write_text(base + textwrap.dedent(text))
    return tmp_path


def test_a_range_that_misses_its_figure_is_reported_with_file_and_line(tmp_path):
    base = (REPO / "config/families/battery-module.yaml").read_text()
    bad = base.replace("{low: 95.0, high: 215.0", "{low: 150.0, high: 215.0")
    (tmp_path / "battery-module.yaml").write_text(bad)
    with pytest.raises(ConfigError) as caught:
        load_families(tmp_path)
    assert "does not hold the figure 147.0" in str(caught.value)
    assert "battery-module.yaml" in str(caught.value)


def test_a_battery_spec_naming_an_unknown_measurement_is_reported(tmp_path):
    base = (REPO / "config/families/battery-module.yaml").read_text()
    bad = base.replace("capacity_measurement: capacity_pct", "capacity_measurement: capacity_ah")
    (tmp_path / "battery-module.yaml").write_text(bad)
    with pytest.raises(ConfigError) as caught:
        load_families(tmp_path)
    [problem] = caught.value.problems
    assert problem.key == "passport.battery.capacity_measurement" and problem.line is not None
    assert "unknown measurement capacity_ah" in problem.message


def test_the_public_tier_shows_status_and_origin_but_not_the_state_of_health(journal):
    from edge.contract import tiers

    public = tiers.restrict(battery_passport(journal), "public")
    parts = battery_parts(public)
    assert parts["BatteryNameplate"]["LifeCycleStage"]["value"] == "remanufactured"
    assert parts["BatteryNameplate"]["OriginalBatteryPassportId"]["value"] == "BAT-000001"
    assert parts["TechnicalData"]["RatedCapacity"]["value"] == "45.8"
    for withheld in ("StateOfHealth", "InternalResistance", "RemainingCapacity"):
        assert withheld not in parts["ProductCondition"]
    assert "InternalResistanceIncreaseOfBatteryModuleLevel" not in parts["TechnicalData"]
    assert is_unknown(parts["ProductCondition"]["NumberOfFullCycles"])


def test_reman_passport_exports_the_battery_submodel(tmp_path):
    import json

    from click.testing import CliRunner

    from reman.cli import cli

    path = tmp_path / "journal.db"
    with Journal.open(path, families=FAMILIES) as store:
        battery_passport(store)
    result = CliRunner().invoke(
        cli, ["passport", "BAT-000001", "--journal", str(path), "--format", "aas"]
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert flat(submodel(document, "ProductCondition"))["StateOfHealth"]["value"] == "80.0"
    nameplate = flat(submodel(document, "BatteryNameplate"))
    assert nameplate["OriginalBatteryPassportId"]["value"] == "BAT-000001"


def sourced_passport(journal, core="BAT-7/A", source="label", part_number="BAT-48-2K2", **spec):
    """The passport of a module whose family takes the original id from `spec`'s source."""
    assert BATTERY is not None and BATTERY.passport and BATTERY.passport.battery
    measurements = {**bench(93.0, 21.0), **spec.pop("bench", {})}
    battery = BATTERY.passport.battery.model_validate(
        {**BATTERY.passport.battery.model_dump(), **spec}
    )
    record = make_record(
        1,
        core,
        M,
        family="battery-module",
        measurements=measurements,
        impact=impact(BATTERY, M),
        battery=battery,
        part_number=part_number,
    ).model_copy(update={"core_id_source": source})
    journal.record_inspection(record, messages_for(record))
    return build_passport(journal.find(core=core), facility="Hall 2")


def original_in_aas(passport) -> dict:
    return battery_parts(passport)["BatteryNameplate"]["OriginalBatteryPassportId"]


TEMPLATE = "urn:oem:battery:{part_number}:{core_id}"


def test_the_original_id_from_a_template_encodes_the_core_id_and_part_number(journal):
    passport = sourced_passport(journal, original_id_from="template", original_id_template=TEMPLATE)
    expected = "urn:oem:battery:BAT-48-2K2:BAT-7%2FA"  # the / stays inside one segment
    assert passport["battery"]["original_passport_id"] == expected
    assert passport["predecessor"]["passport"] == expected
    assert original_in_aas(passport)["value"] == expected


@pytest.mark.parametrize(
    ("source", "part_number"),
    [("generated", "BAT-48-2K2"), ("label", None)],
    ids=["station-generated core id", "part number never read"],
)
def test_a_template_without_a_trusted_core_id_or_its_part_number_is_unknown(
    journal, source, part_number
):
    passport = sourced_passport(
        journal,
        source=source,
        part_number=part_number,
        original_id_from="template",
        original_id_template=TEMPLATE,
    )
    assert passport["battery"]["original_passport_id"] is None
    assert passport["predecessor"]["passport"] is None
    shown = original_in_aas(passport)
    assert "value" not in shown
    assert shown["qualifiers"][0]["semanticId"]["keys"][0]["value"] == UNKNOWN_QUALIFIER


def original_from_bench(value, status="Good"):
    return {
        "original_id_from": "measurement",
        "original_id_measurement": "original_passport_id",
        "bench": {"original_passport_id": {"value": value, "status": status}},
    }


def test_the_original_id_from_a_bench_node_even_for_a_generated_core_id(journal):
    passport = sourced_passport(
        journal, source="generated", **original_from_bench(" urn:oem:battery:4711 ")
    )
    assert passport["battery"]["original_passport_id"] == "urn:oem:battery:4711"
    assert original_in_aas(passport)["value"] == "urn:oem:battery:4711"


@pytest.mark.parametrize(
    ("value", "status"),
    [("urn:oem:battery:4711", "Bad"), (4711, "Good"), ("  ", "Good")],
    ids=["bad status", "a number", "blank"],
)
def test_an_untrusted_bench_original_id_is_unknown(journal, value, status):
    passport = sourced_passport(journal, **original_from_bench(value, status))
    assert passport["battery"]["original_passport_id"] is None
    assert "value" not in original_in_aas(passport)


def test_a_template_with_an_unknown_placeholder_is_reported_with_its_line(tmp_path):
    base = (REPO / "config/families/battery-module.yaml").read_text()
    bad = base.replace(
        "original_id_from: core_id",
        "original_id_from: template\n    original_id_template: urn:oem:{serial}:{core_id}",
    )
    (tmp_path / "battery-module.yaml").write_text(bad)
    with pytest.raises(ConfigError) as caught:
        load_families(tmp_path)
    [problem] = caught.value.problems
    assert problem.key == "passport.battery.original_id_template" and problem.line is not None
    assert "unknown placeholder(s) ['serial']" in problem.message


def test_a_measurement_source_without_its_measurement_is_refused(tmp_path):
    base = (REPO / "config/families/battery-module.yaml").read_text()
    (tmp_path / "battery-module.yaml").write_text(
        base.replace("original_id_from: core_id", "original_id_from: measurement")
    )
    with pytest.raises(ConfigError, match="needs original_id_measurement"):
        load_families(tmp_path)
