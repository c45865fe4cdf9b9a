"""A core's passport as an Asset Administration Shell V3 environment (BaSyx Python SDK).

One environment per core: an AssetAdministrationShell whose `globalAssetId` is the core's
persistent id (`identity.Issuer.core_uri`), and its submodels:

    Nameplate                IDTA 02006-3-0 Digital Nameplate: only what is known of the part
    CarbonFootprint          IDTA 02023-1-0 Carbon Footprint: the CO2e the decision avoided,
                             with its method, sources and ranges
    RemanufacturingRecord    our own: every inspection, its decision, reasons, overrides, hashes
    (more)                   a family may add its own (`extra`; `family_submodels` gives them):
                             the Digital Battery Passport's BatteryNameplate, TechnicalData and
                             ProductCondition (IDTA 02035, `edge.contract.dbp`)

Built from `passport.build_passport`'s record, so the JSON, the AAS and the AASX say the same.
Unknown values are left out, never guessed; an empty list or collection is left out too (the
metamodel forbids an empty `value`). Submodel ids are the shell's id plus `/sm/<idShort>` (a URI)
or `:sm:<idShort>` (a URN). BaSyx's errors are wrapped as PassportIdError where they cross here.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from basyx.aas import model
from basyx.aas.adapter import aasx
from basyx.aas.adapter.json import json_serialization

from edge.contract.dbp import battery_submodels
from edge.contract.errors import PassportIdError
from edge.contract.identity import Issuer
from edge.contract.passport import id_short

NAMEPLATE_SEMANTIC_ID = "https://admin-shell.io/idta/nameplate/3/0/Nameplate"
NAMEPLATE_TEMPLATE_ID = "https://admin-shell.io/idta-02006-3-0"
CARBON_FOOTPRINT_SEMANTIC_ID = "https://admin-shell.io/idta/CarbonFootprint/CarbonFootprint/1/0"
CARBON_FOOTPRINT_TEMPLATE_ID = "https://admin-shell.io/IDTA02023-1-0"
RECORD_SEMANTIC_ID = "urn:reman-edge:submodel:remanufacturing-record:1"
CO2E_AVOIDED_SEMANTIC_ID = "urn:reman-edge:concept:co2e-avoided-kg:1"
MATERIAL_KEPT_SEMANTIC_ID = "urn:reman-edge:concept:material-kept-kg:1"
IMPACT_METHOD_SEMANTIC_ID = "urn:reman-edge:concept:impact-method:1"
IMPACT_SOURCES_SEMANTIC_ID = "urn:reman-edge:concept:impact-sources:1"

# IEC 61360 (IEC CDD) ids of the nameplate elements we fill, as the template names them.
_NAMEPLATE_IDS = {
    "URIOfTheProduct": "0112/2///61987#ABN590#002",
    "ManufacturerName": "0112/2///61987#ABA565#009",
    "ManufacturerProductDesignation": "0112/2///61987#ABA567#009",
    "ProductArticleNumberOfManufacturer": "0112/2///61987#ABA581#007",
    "SerialNumber": "0112/2///61987#ABA951#009",
}
_PCF = "https://admin-shell.io/idta/CarbonFootprint/"


@dataclass(frozen=True)
class PartFacts:
    """What is known of the part for its nameplate; None is unknown and left out."""

    manufacturer_name: str | None = None
    product_designation: str | None = None
    part_number: str | None = None
    serial_number: str | None = None
    gtin: str | None = None  # fills {gtin} in a GS1 Digital Link id template


def _ref(value: str) -> model.ExternalReference:
    return model.ExternalReference((model.Key(model.KeyTypes.GLOBAL_REFERENCE, value),))


# ---------------------------------------------------------------- the environment


def build_environment(
    passport: Mapping[str, Any],
    issuer: Issuer,
    *,
    part: PartFacts | None = None,
    extra: Iterable[model.Submodel] = (),
) -> model.DictObjectStore[model.Identifiable]:
    """The core's AAS environment: its shell and submodels, ready to serialise.

    `passport` is `build_passport`'s record; `extra` adds submodels a family knows (their ids
    are the caller's). Raises PassportIdError when the site's template cannot make the id.
    """
    part = _part(passport, part)
    asset_id = core_asset_id(passport, issuer, part)
    submodels = [
        _nameplate(asset_id, part),
        *_carbon_footprint(asset_id, passport["circularity"]),
        _record(asset_id, passport, issuer),
        *extra,
    ]
    shell = model.AssetAdministrationShell(
        asset_information=model.AssetInformation(
            asset_kind=model.AssetKind.INSTANCE, global_asset_id=asset_id
        ),
        id_=_child_id(asset_id, "aas"),
        id_short="RemanufacturedCore",
        submodel={model.ModelReference.from_referable(s) for s in submodels},
    )
    return model.DictObjectStore([shell, *submodels])


def core_asset_id(
    passport: Mapping[str, Any], issuer: Issuer, part: PartFacts | None = None
) -> str:
    """The core's persistent id (the shell's globalAssetId); PassportIdError when unknown."""
    ident = passport["unique_identifier"]
    part = _part(passport, part)
    facts = {"family": ident["family"], "part_number": part.part_number, "gtin": part.gtin}
    return issuer.core_uri(ident["core_id"], facts)


def family_submodels(
    passport: Mapping[str, Any], issuer: Issuer, part: PartFacts | None = None
) -> list[model.Submodel]:
    """The submodels the core's family adds, for `build_environment(extra=...)`: the Digital
    Battery Passport's nameplate, technical data and product condition (IDTA 02035) for a
    battery family, none for others."""
    if not passport.get("battery"):
        return []
    return battery_submodels(passport, core_asset_id(passport, issuer, part), issuer)


def _part(passport: Mapping[str, Any], part: PartFacts | None) -> PartFacts:
    return part or PartFacts(part_number=passport["unique_identifier"]["part_number"])


def _child_id(asset_id: str, name: str) -> str:
    return f"{asset_id}:{name}" if asset_id.startswith("urn:") else f"{asset_id}/{name}"


def shell_of(env: model.DictObjectStore[model.Identifiable]) -> model.AssetAdministrationShell:
    """The environment's one shell."""
    return next(o for o in env if isinstance(o, model.AssetAdministrationShell))


def environment_json(env: model.DictObjectStore[model.Identifiable]) -> dict[str, Any]:
    """The environment in the AAS part 2 JSON serialisation, as a dict."""
    document: dict[str, Any] = json.loads(json_serialization.object_store_to_json(env))
    return document


def environment_aasx(env: model.DictObjectStore[model.Identifiable]) -> bytes:
    """The environment as an AASX package (OPC zip, JSON part), as bytes."""
    buffer = io.BytesIO()
    try:
        with aasx.AASXWriter(buffer, failsafe=False) as writer:
            writer.write_aas(
                shell_of(env).id, env, aasx.DictSupplementaryFileContainer(), write_json=True
            )
    except (KeyError, ValueError, TypeError) as exc:
        raise PassportIdError(f"the passport could not be packaged: {exc}") from exc
    return buffer.getvalue()


# ---------------------------------------------------------------- IDTA templates


def _nameplate(asset_id: str, part: PartFacts) -> model.Submodel:
    values = {
        "URIOfTheProduct": asset_id,
        "ManufacturerName": part.manufacturer_name,
        "ManufacturerProductDesignation": part.product_designation,
        "ProductArticleNumberOfManufacturer": part.part_number,
        "SerialNumber": part.serial_number,
    }
    elements = [_nameplate_element(k, v) for k, v in values.items() if v]
    return model.Submodel(
        _child_id(asset_id, "sm/Nameplate"),
        submodel_element=elements,
        id_short="Nameplate",
        semantic_id=_ref(NAMEPLATE_SEMANTIC_ID),
        administration=model.AdministrativeInformation(
            version="3", revision="0", template_id=NAMEPLATE_TEMPLATE_ID
        ),
    )


def _nameplate_element(name: str, value: str) -> model.SubmodelElement:
    semantic_id = _ref(_NAMEPLATE_IDS[name])
    if name in ("ManufacturerName", "ManufacturerProductDesignation"):
        return model.MultiLanguageProperty(
            name, value=model.MultiLanguageTextType({"en": value}), semantic_id=semantic_id
        )
    kind = model.datatypes.AnyURI if name == "URIOfTheProduct" else model.datatypes.String
    return model.Property(name, kind, value=value, semantic_id=semantic_id)


def _carbon_footprint(asset_id: str, figures: Mapping[str, Any]) -> list[model.Submodel]:
    """IDTA 02023 with the avoided CO2e; none when the family has no figures.

    The station knows what a decision avoids against a new part, not the core's cradle-to-gate
    footprint, so `PcfCO2eq` stays unset and the avoided figure is our own property beside it.
    """
    if not figures.get("known") or figures.get("co2e_avoided_kg") is None:
        return []
    footprint = model.SubmodelElementCollection(
        None,
        value=[
            model.Property(
                "ReferenceImpactUnitForCalculation",
                model.datatypes.String,
                value="piece",
                semantic_id=_ref("0173-1#02-ABG856#003"),
            ),
            model.Property(
                "QuantityOfMeasureForCalculation",
                model.datatypes.Double,
                value=1.0,
                semantic_id=_ref("0173-1#02-ABG857#003"),
            ),
            _decimal("CO2eqAvoided", figures["co2e_avoided_kg"], CO2E_AVOIDED_SEMANTIC_ID),
            *(
                [_decimal("MaterialKept", figures["material_kept_kg"], MATERIAL_KEPT_SEMANTIC_ID)]
                if figures.get("material_kept_kg") is not None
                else []
            ),
            *_method(figures.get("method")),
        ],
        semantic_id=_ref(_PCF + "ProductCarbonFootprint/1/0"),
    )
    footprints = model.SubmodelElementList(
        "ProductCarbonFootprints",
        model.SubmodelElementCollection,
        value=[footprint],
        semantic_id=_ref(_PCF + "ProductCarbonFootprints/1/0"),
        semantic_id_list_element=_ref(_PCF + "ProductCarbonFootprint/1/0"),
    )
    return [
        model.Submodel(
            _child_id(asset_id, "sm/CarbonFootprint"),
            submodel_element=[footprints],
            id_short="CarbonFootprint",
            semantic_id=_ref(CARBON_FOOTPRINT_SEMANTIC_ID),
            administration=model.AdministrativeInformation(
                version="1", revision="0", template_id=CARBON_FOOTPRINT_TEMPLATE_ID
            ),
        )
    ]


def _method(method: Mapping[str, Any] | None) -> list[model.SubmodelElement]:
    """The figures' method beside them: formula, sources, and each figure's range with its
    source (our own properties; the template has none for an avoided figure)."""
    if not method:
        return []
    elements: list[model.SubmodelElement] = [
        model.Property(
            "ImpactMethod",
            model.datatypes.String,
            value=method["formula"],
            semantic_id=_ref(IMPACT_METHOD_SEMANTIC_ID),
        )
    ]
    if method.get("sources"):
        elements.append(
            model.SubmodelElementList(
                "ImpactSources",
                model.Property,
                value=[
                    model.Property(None, model.datatypes.String, value=t) for t in method["sources"]
                ],
                value_type_list_element=model.datatypes.String,
                semantic_id=_ref(IMPACT_SOURCES_SEMANTIC_ID),
            )
        )
    for key, name, semantic_id in (
        ("co2e_avoided", "CO2eqAvoided", CO2E_AVOIDED_SEMANTIC_ID),
        ("material_kept", "MaterialKept", MATERIAL_KEPT_SEMANTIC_ID),
    ):
        if method.get(key):
            elements += _figure_range(name, method[key], semantic_id)
    return elements


def _figure_range(
    name: str, given: Mapping[str, Any], semantic_id: str
) -> list[model.SubmodelElement]:
    return [
        model.Range(
            f"{name}Range",
            model.datatypes.Decimal,
            min=Decimal(repr(given["low_kg"])),
            max=Decimal(repr(given["high_kg"])),
            semantic_id=_ref(semantic_id.replace(":1", ":range:1")),
        ),
        model.Property(
            f"{name}Source",
            model.datatypes.String,
            value=given["source"],
            semantic_id=_ref(semantic_id.replace(":1", ":source:1")),
        ),
    ]


def _decimal(name: str, kg: float, semantic_id: str) -> model.Property:
    return model.Property(
        name, model.datatypes.Decimal, value=Decimal(repr(kg)), semantic_id=_ref(semantic_id)
    )


# ---------------------------------------------------------------- the remanufacturing record


def _record(asset_id: str, passport: Mapping[str, Any], issuer: Issuer) -> model.Submodel:
    values = {
        **{k: v for k, v in passport.items() if k != "battery"},  # the battery has its own
        "operator": {
            **passport["operator"],
            "operator_id": issuer.operator_id,
            "facility_id": issuer.facility_id,
        },
        "unique_identifier": {**passport["unique_identifier"], "persistent_id": asset_id},
    }
    return model.Submodel(
        _child_id(asset_id, "sm/RemanufacturingRecord"),
        submodel_element=_members(values),
        id_short="RemanufacturingRecord",
        semantic_id=_ref(RECORD_SEMANTIC_ID),
    )


def _members(values: Mapping[str, Any]) -> list[model.SubmodelElement]:
    found = ((id_short(k), _element(v, id_short(k))) for k, v in values.items())
    return [e for _, e in found if e is not None]


def _element(value: Any, name: str | None) -> model.SubmodelElement | None:
    """One element for a JSON value; None for null and for empty lists and dicts."""
    if isinstance(value, dict):
        members = _members(value)
        return model.SubmodelElementCollection(name, value=members) if members else None
    if isinstance(value, list):
        return _list(value, name)
    if value is None:
        return None
    kind, typed = _typed(value)
    return model.Property(name, kind, value=typed)


def _list(values: Sequence[Any], name: str | None) -> model.SubmodelElement | None:
    members = [e for e in (_element(v, None) for v in values) if e is not None]
    if not members:
        return None
    kinds = {type(m) for m in members}
    if len(kinds) > 1:  # mixed lists do not occur in a passport; keep them as collections
        return model.SubmodelElementCollection(name, value=_members(_numbered(values)))
    kind = kinds.pop()
    value_type = members[0].value_type if isinstance(members[0], model.Property) else None
    if value_type is not None and any(
        m.value_type is not value_type for m in members if isinstance(m, model.Property)
    ):
        return model.SubmodelElementCollection(name, value=_members(_numbered(values)))
    return model.SubmodelElementList(
        name, kind, value=members, value_type_list_element=value_type, order_relevant=True
    )


def _numbered(values: Sequence[Any]) -> dict[str, Any]:
    return {f"item{i}": v for i, v in enumerate(values, start=1)}


def _typed(value: Any) -> tuple[type, Any]:
    """The XSD type and the typed value of a JSON scalar (RFC 3339 strings are xs:dateTime)."""
    if isinstance(value, bool):
        return model.datatypes.Boolean, value
    if isinstance(value, int):
        return model.datatypes.Long, value
    if isinstance(value, float):
        return model.datatypes.Double, value
    moment = _datetime(value) if isinstance(value, str) else None
    if moment is not None:
        return model.datatypes.DateTime, moment
    return model.datatypes.String, str(value)


def _datetime(text: str) -> datetime | None:
    if len(text) < 20 or text[10] != "T" or not text.endswith(("Z", "+00:00")):
        return None
    try:
        return datetime.fromisoformat(
            text.removesuffix("Z") + ("+00:00" if text[-1] == "Z" else "")
        )
    except ValueError:
        return None
