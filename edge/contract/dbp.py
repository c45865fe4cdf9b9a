"""A remanufactured battery's facts in the Digital Battery Passport structure (IDTA 02035).

`battery_submodels` places `edge.contract.battery`'s facts in three parts of the template, with
its idShorts and semantic ids (admin-shell-io/submodel-templates, published/Digital Battery
Passport, read at 1/0 and 1/0/1):

    BatteryNameplate   02035-1  the new passport's id, life cycle stage (the battery status),
                                operator and facility ids; ours: the original battery's
                                passport id, the operation's date and facility
    TechnicalData      02035-4  rated capacity, initial internal resistance (ohm) and its
                                increase (%) on module level
    ProductCondition   02035-5  remaining capacity with its last update, every other condition
                                element marked unknown; ours: the state of health and its parts,
                                the measured internal resistance

Part 3 (carbon footprint) is `aas`'s CarbonFootprint. What the template has no element for is
ours, with semantic ids under `urn:reman-edge:concept:battery:` (docs/passport.md lists them).
A value the station does not know is an element with no value and the qualifier `unknown`; a
fact absent from the facts (an access tier withholds it) is left out. The template's mandatory
manufacturer facts (name, address, serial number, markings, declarations) are left out, as the
station does not know them and never guesses them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from basyx.aas import model

from edge.contract.identity import Issuer

NAMEPLATE_SEMANTIC_ID = "https://admin-shell.io/idta/digitalbatterypassport/nameplate/1/0/Nameplate"
NAMEPLATE_TEMPLATE_ID = "https://admin-shell.io/idta-02035-1"
TECHNICAL_DATA_SEMANTIC_ID = "https://admin-shell.io/idta/digitalbatterypassport/TechnicalData/1/0"
PRODUCT_CONDITION_SEMANTIC_ID = (
    "urn:samm:io.admin-shell.idta.batterypass.product_condition:1.0.0#ProductCondition"
)
PRODUCT_CONDITION_TEMPLATE_ID = "https://admin-shell.io/idta-02035-5"
UNKNOWN_QUALIFIER = "urn:reman-edge:qualifier:unknown:1"

_DN = "urn:samm:io.admin-shell.idta.batterypass.digital_nameplate:1.0.0#"
_TD = "urn:samm:io.admin-shell.idta.batterypass.technical_data:1.0.0#"
_PC = "urn:samm:io.admin-shell.idta.batterypass.product_condition:1.0.1#"
OURS = "urn:reman-edge:concept:battery:"

# The template's value list for LifeCycleStage (batteryStatus) and each value's id.
_STATUS_IDS = {
    "original": "_original0682c5f2",
    "repurposed": "_repurposedcf78af81",
    "re-used": "_re-used9bed5d4d",
    "remanufactured": "_remanufactured83fbdb6f",
    "waste": "_waste0bb5e932",
}
# ProductCondition elements that are lists in the template (the others are collections).
_LISTS = {"negativeEvents": model.SubmodelElementCollection, "informationOnAccidents": None}


def battery_submodels(
    passport: Mapping[str, Any], asset_id: str, issuer: Issuer
) -> list[model.Submodel]:
    """The battery passport's submodels of a core (`asset_id` its persistent id, which is the
    new battery passport's id); none when the passport has no battery facts (a pump)."""
    facts = passport.get("battery")
    if not facts:
        return []
    return [
        _submodel(asset_id, "BatteryNameplate", _nameplate(facts, asset_id, issuer)),
        _submodel(asset_id, "TechnicalData", _technical_data(facts)),
        _submodel(asset_id, "ProductCondition", _condition(facts)),
    ]


_SUBMODELS = {
    "BatteryNameplate": (NAMEPLATE_SEMANTIC_ID, NAMEPLATE_TEMPLATE_ID),
    # The published 02035-4 names IDTA-02003-2-0 (generic technical data) as its templateId.
    "TechnicalData": (TECHNICAL_DATA_SEMANTIC_ID, None),
    "ProductCondition": (PRODUCT_CONDITION_SEMANTIC_ID, PRODUCT_CONDITION_TEMPLATE_ID),
}


def _submodel(asset_id: str, name: str, elements: list[model.SubmodelElement]) -> model.Submodel:
    semantic_id, template_id = _SUBMODELS[name]
    sep = ":" if asset_id.startswith("urn:") else "/"
    return model.Submodel(
        f"{asset_id}{sep}sm{sep}{name}",
        submodel_element=elements,
        id_short=name,
        semantic_id=_ref(semantic_id),
        administration=model.AdministrativeInformation(
            version="1", revision="0", template_id=template_id
        ),
    )


# ---------------------------------------------------------------- 02035-1 BatteryNameplate


def _nameplate(
    facts: Mapping[str, Any], asset_id: str, issuer: Issuer
) -> list[model.SubmodelElement]:
    operation = facts.get("operation") or {}
    elements: list[model.SubmodelElement] = [
        model.Property(
            "URIOfTheProduct",
            model.datatypes.AnyURI,
            value=asset_id,
            semantic_id=_ref("0112/2///61987#ABN590#002"),
        )
    ]
    if issuer.facility_id:
        elements.append(
            _text(
                "UniqueFacilityIdentifier",
                issuer.facility_id,
                "https://admin-shell.io/idta/nameplate/3/0/UniqueFacilityIdentifier",
            )
        )
    if "battery_status" in facts:
        elements.append(_life_cycle_stage(facts["battery_status"]))
    if issuer.operator_id:
        elements.append(_text("OperatorIdentifier", issuer.operator_id, _DN + "operatorIdentifier"))
    if "original_passport_id" in facts:
        elements.append(
            _text(
                "OriginalBatteryPassportId",
                facts["original_passport_id"],
                OURS + "original-passport-id:1",
            )
        )
    if "date" in operation:
        elements.append(_moment("OperationDate", operation["date"], OURS + "operation-date:1"))
    if "facility" in operation:
        elements.append(
            _text("OperationFacility", operation["facility"], OURS + "operation-facility:1")
        )
    return elements


def _life_cycle_stage(status: str | None) -> model.Property:
    """The battery status as the template's value list spells it, with its value id."""
    value = status.lower() if status else None
    value_id = _STATUS_IDS.get(value) if value else None
    return model.Property(
        "LifeCycleStage",
        model.datatypes.String,
        value=value,
        value_id=_ref(_DN + "BatteryStatusEnumeration:" + value_id) if value_id else None,
        semantic_id=_ref("0173-1#02-ABL841#001"),
        supplemental_semantic_id=(_ref(_DN + "batteryStatus"),),
        qualifier=() if value else (_unknown(),),
    )


# ---------------------------------------------------------------- 02035-4 TechnicalData


def _technical_data(facts: Mapping[str, Any]) -> list[model.SubmodelElement]:
    capacity: list[model.SubmodelElement] = []
    if "rated_capacity_ah" in facts:
        capacity.append(_float("RatedCapacity", facts["rated_capacity_ah"], "0173-1#02-ABL869#002"))
    resistance: list[model.SubmodelElement] = []
    if "rated_resistance_mohm" in facts:
        rated = facts["rated_resistance_mohm"]
        resistance.append(
            _float(
                "InitialInternalResistanceOnBatteryModuleLevel",
                None if rated is None else rated / 1000,  # the template's unit is the ohm
                "0173-1#02-ABL832#002",
            )
        )
    if "internal_resistance_increase_pct" in facts:
        resistance.append(
            _float(
                "InternalResistanceIncreaseOfBatteryModuleLevel",
                facts["internal_resistance_increase_pct"],
                # As the published template has it (the id reads "initial", the element is the increase).
                _TD + "initialInternalResistanceOfBatteryModule",
            )
        )
    areas = [
        *_collection("CapacityEnergyVoltage", capacity, _TD + "capacityEnergyVoltage"),
        *_collection("Resistance", resistance, _TD + "resistance"),
    ]
    return _collection("TechnicalPropertyAreas", areas, "0173-1#02-ABK163#002")


# ---------------------------------------------------------------- 02035-5 ProductCondition


_OUR_CONDITION = (
    ("StateOfHealth", "state_of_health_pct", "state-of-health-pct:1"),
    ("CapacityStateOfHealth", "capacity_soh_pct", "capacity-soh-pct:1"),
    ("ResistanceStateOfHealth", "resistance_soh_pct", "resistance-soh-pct:1"),
    ("InternalResistance", "internal_resistance_mohm", "internal-resistance-mohm:1"),
)


def _condition(facts: Mapping[str, Any]) -> list[model.SubmodelElement]:
    elements: list[model.SubmodelElement] = []
    if "remaining_capacity_ah" in facts:
        elements.append(
            _dynamic("remainingCapacity", facts["remaining_capacity_ah"], facts.get("measured_at"))
        )
    elements += [_unknown_element(name) for name in facts.get("unknown", ())]
    elements += [
        _decimal(name, facts[key], OURS + sid) for name, key, sid in _OUR_CONDITION if key in facts
    ]
    return elements


def _dynamic(name: str, value: float | None, measured_at: str | None) -> model.SubmodelElement:
    """A dynamic value as the template holds it: `<Name>Value` and its `LastUpdate`."""
    title = name[0].upper() + name[1:]
    if value is None:
        return _unknown_element(name)
    members: list[model.SubmodelElement] = [
        model.Property(
            f"{title}Value",
            model.datatypes.Float,
            value=value,
            semantic_id=_ref(_PC + name + "Value"),
        )
    ]
    if measured_at:
        members.append(_moment("LastUpdate", measured_at, _PC + "lastUpdate"))
    return model.SubmodelElementCollection(title, value=members, semantic_id=_ref(_PC + name))


def _unknown_element(name: str) -> model.SubmodelElement:
    """A template element the station does not know: no value, the `unknown` qualifier."""
    title = name[0].upper() + name[1:]
    if name in _LISTS:
        kind = _LISTS[name] or model.Property
        return model.SubmodelElementList(
            title,
            kind,
            value_type_list_element=model.datatypes.String if kind is model.Property else None,
            semantic_id=_ref(_PC + name),
            qualifier=(_unknown(),),
        )
    return model.SubmodelElementCollection(
        title, semantic_id=_ref(_PC + name), qualifier=(_unknown(),)
    )


# ---------------------------------------------------------------- elements


def _ref(value: str) -> model.ExternalReference:
    return model.ExternalReference((model.Key(model.KeyTypes.GLOBAL_REFERENCE, value),))


def _unknown() -> model.Qualifier:
    """The mark of a value the station does not know: the element has no value."""
    return model.Qualifier(
        "unknown", model.datatypes.Boolean, value=True, semantic_id=_ref(UNKNOWN_QUALIFIER)
    )


def _marks(value: object) -> tuple[model.Qualifier, ...]:
    return () if value is not None else (_unknown(),)


def _collection(
    name: str, members: list[model.SubmodelElement], semantic_id: str
) -> list[model.SubmodelElement]:
    """The collection when it has members; none otherwise (a tier withheld them all)."""
    if not members:
        return []
    return [model.SubmodelElementCollection(name, value=members, semantic_id=_ref(semantic_id))]


def _text(name: str, value: str | None, semantic_id: str) -> model.Property:
    return model.Property(
        name,
        model.datatypes.String,
        value=value,
        semantic_id=_ref(semantic_id),
        qualifier=_marks(value),
    )


def _moment(name: str, rfc3339: str | None, semantic_id: str) -> model.Property:
    value = datetime.fromisoformat(rfc3339.replace("Z", "+00:00")) if rfc3339 else None
    return model.Property(
        name,
        model.datatypes.DateTime,
        value=value,
        semantic_id=_ref(semantic_id),
        qualifier=_marks(value),
    )


def _float(name: str, value: float | None, semantic_id: str) -> model.Property:
    return model.Property(
        name,
        model.datatypes.Float,
        value=value,
        semantic_id=_ref(semantic_id),
        qualifier=_marks(value),
    )


def _decimal(name: str, value: float | None, semantic_id: str) -> model.Property:
    return model.Property(
        name,
        model.datatypes.Decimal,
        value=None if value is None else Decimal(repr(value)),
        semantic_id=_ref(semantic_id),
        qualifier=_marks(value),
    )
