"""Every passport a short demo run produces, accepted by two independent AAS tools.

The demo's station (its config, bench nodes, reference model and generated core images) runs
in this event loop against the bench simulator and the test broker; the simulator cycles a pump,
a heat-pump compressor and battery modules as `reman demo` does. `reman passport --config` then
exports each core as a user would (AAS JSON and AASX), after an engineer overrode a battery
module and a pump in the journal, and each passport is checked with aas-core3.0's verification,
the BaSyx SDK's strict JSON decoder and its AASX reader.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
from aas_core3 import jsonization, verification
from basyx.aas import model
from basyx.aas.adapter.aasx import AASXReader, DictSupplementaryFileContainer
from basyx.aas.adapter.json import StrictAASFromJsonDecoder, read_aas_json_file
from click.testing import CliRunner
from ruamel.yaml import YAML

from edge.bench.simulator import BenchSimulator
from edge.config.station import StationConfig
from edge.decision.families import load_families
from edge.events import Events
from edge.journal.journal import Journal
from edge.node import Node
from reman.cli import cli
from reman.demo import Demo, make_core_images
from tests.support.stations import REPO, EventWatch, station_id

pytestmark = pytest.mark.slow

ID_TEMPLATE = "https://id.example.com/01/09506000134352/21/{core_id}"
CORES = ["HGP-000001", "HPC-000002", "BAT-000003", "HGP-000004", "HPC-000005", "BAT-000006"]
OVERRIDDEN = {"BAT-000003": (2, "cells balanced, module rebuilt"), "HGP-000004": (3, "cracked")}


def demo_station(tmp_path: Path, broker, bench: BenchSimulator) -> Path:
    """The demo's station config, on the test broker and bench, with a GS1 id template."""
    demo = Demo(tmp_path, mqtt_port=broker.port, opcua_port=bench.port)
    data = YAML(typ="safe").load(demo.station_config())
    data["station_id"] = station_id()  # the session broker keeps other tests' retained messages
    data["mqtt"] |= {"host": broker.host, "reconnect_min_s": 0.2, "reconnect_max_s": 1}
    data["bench"] |= {"max_age_s": 3600, "reconnect_min_s": 0.2, "reconnect_max_s": 1}
    data["passport"] = {
        "id_template": ID_TEMPLATE,
        "operator": "Example Reman GmbH",
        "operator_id": "4012345000009",
        "facility_id": "4012345000016",
    }
    make_core_images(tmp_path / "cores", len(CORES))
    path = tmp_path / "station.yaml"
    path.write_text(json.dumps(data, indent=2))  # JSON is YAML
    return path


async def run_demo_station(config_path: Path, bench: BenchSimulator) -> None:
    """Inspect every core of CORES through the demo's station, one bench cycle each."""
    config = StationConfig.model_validate_json(config_path.read_text())
    node = Node(
        config.resolve_paths(config_path.parent),
        events=Events(config.station_id, sinks=[EventWatch()]),
    )
    inspected: asyncio.Queue = asyncio.Queue()
    await node.start()
    assert node.station is not None
    node.station.listeners.append(inspected.put_nowait)
    try:
        for core in CORES:
            await bench.start_test(core)
            done = await asyncio.wait_for(inspected.get(), 30)
            assert done.record.core_id == core and done.record.core_id_source == "bench"
    finally:
        await node.shutdown()


async def demo_run(folder: Path, broker) -> Path:
    async with BenchSimulator(host="127.0.0.1", scenario="normal", step_s=0.02) as bench:
        config = demo_station(folder, broker, bench)
        await run_demo_station(config, bench)
    return config


@pytest.fixture(scope="module")
def demo_journal(tmp_path_factory, mosquitto):
    """The station config of one demo run whose journal holds CORES, two of them overridden."""
    folder = tmp_path_factory.mktemp("demo")
    config = asyncio.run(demo_run(folder, mosquitto))
    families = load_families(REPO / "config/families")
    with Journal.open(folder / "journal.db", families=families) as journal:
        for core, (code, reason) in OVERRIDDEN.items():
            [record] = journal.find(core=core)
            journal.apply_override(record.id, code, reason, "anna")
    return config


def export(config: Path, core: str, *args: str) -> str:
    result = CliRunner().invoke(cli, ["passport", core, "--config", str(config), *args])
    assert result.exit_code == 0, result.output
    return result.output


def accepted_by_both(text: str) -> model.DictIdentifiableStore:
    """The environment after aas-core3.0 verified it and BaSyx decoded it strictly."""
    document = json.loads(text)
    errors = verification.verify(jsonization.environment_from_jsonable(document))
    assert [f"{e.path}: {e.cause}" for e in errors] == []
    store = read_aas_json_file(io.StringIO(text), failsafe=False)
    # The same decoder class `read_aas_json_file` picks, named: it raises on any deviation.
    strict = json.loads(text, cls=StrictAASFromJsonDecoder)
    assert len(strict["submodels"]) == len(document["submodels"])
    return store


def opened_aasx(path: Path) -> model.DictObjectStore:
    store: model.DictObjectStore = model.DictObjectStore()
    with AASXReader(path, failsafe=False) as reader:
        reader.read_into(store, DictSupplementaryFileContainer())
    return store


def shell(store) -> model.AssetAdministrationShell:
    [found] = [o for o in store if isinstance(o, model.AssetAdministrationShell)]
    return found


def submodels(store) -> dict[str, model.Submodel]:
    return {o.id_short: o for o in store if isinstance(o, model.Submodel)}


def value(element: Any, *path: str) -> Any:
    """The value of the element at `path` (idShorts) under a submodel or collection."""
    for name in path:
        element = element.get_referable(name)
    return element.value


def record_overrides(store) -> list[str]:
    """Who overrode each of the core's inspections, from the RemanufacturingRecord."""
    inspections: Any = submodels(store)["RemanufacturingRecord"].get_referable("inspections")
    users = []
    for inspection in inspections.value:
        overrides = {e.id_short: e for e in inspection.value}.get("overrides")
        users += [o.get_referable("user").value for o in overrides.value] if overrides else []
    return users


def test_every_demo_passport_is_accepted_by_aas_core_and_basyx(demo_journal, tmp_path):
    for core in CORES:
        store = accepted_by_both(export(demo_journal, core, "--format", "aas"))
        aasx = tmp_path / f"{core}.aasx"
        export(demo_journal, core, "--format", "aasx", "--out", str(aasx))
        packaged = opened_aasx(aasx)
        core_uri = ID_TEMPLATE.format(core_id=core)
        for found in (store, packaged):
            assert shell(found).asset_information.global_asset_id == core_uri
            assert shell(found).id == core_uri + "/aas"
            assert {r.get_identifier() for r in shell(found).submodel} == {
                s.id for s in submodels(found).values()
            }
        named = submodels(store)
        assert value(named["Nameplate"], "URIOfTheProduct") == core_uri
        record = named["RemanufacturingRecord"]
        assert value(record, "unique_identifier", "core_id") == core
        assert value(record, "unique_identifier", "persistent_id") == core_uri
        assert value(record, "operator", "facility_id") == "4012345000016"
        assert record_overrides(store) == (["anna"] if core in OVERRIDDEN else [])
        assert submodels(packaged).keys() == named.keys()
        battery = {"BatteryNameplate", "TechnicalData", "ProductCondition"}
        assert (battery <= named.keys()) == core.startswith("BAT-")
        assert (battery & named.keys()) == (battery if core.startswith("BAT-") else set())


def test_the_overridden_battery_module_links_to_its_original_passport(demo_journal):
    store = accepted_by_both(export(demo_journal, "BAT-000003", "--format", "aas"))
    nameplate = submodels(store)["BatteryNameplate"]
    # The new passport's id is the module's persistent id; its stage, the override's REMANUFACTURE.
    assert value(nameplate, "URIOfTheProduct") == ID_TEMPLATE.format(core_id="BAT-000003")
    assert value(nameplate, "LifeCycleStage") == "remanufactured"
    # The module's label (read by the bench) carries the original battery's passport id.
    assert value(nameplate, "OriginalBatteryPassportId") == "BAT-000003"
    assert value(nameplate, "UniqueFacilityIdentifier") == "4012345000016"
    condition = submodels(store)["ProductCondition"]
    soh = value(condition, "StateOfHealth")
    assert soh is not None and 0 < float(soh) <= 100
    assert float(value(condition, "RemainingCapacity", "RemainingCapacityValue")) > 0
    record = json.loads(export(demo_journal, "BAT-000003"))
    assert record["predecessor"]["passport"] == "BAT-000003"
    assert record["status"]["decided_by"] == "override"


def test_the_overridden_pump_says_recycle_and_who_decided(demo_journal):
    record = json.loads(export(demo_journal, "HGP-000004"))
    assert record["status"]["r_strategy"] == "recycle"
    [inspection] = record["inspections"]
    assert [(o["user"], o["reason"]) for o in inspection["overrides"]] == [("anna", "cracked")]
    assert "battery" not in record
    untouched = json.loads(export(demo_journal, "HGP-000001"))
    assert untouched["status"]["decided_by"] == "rules"
    assert untouched["inspections"][0]["measurements"]["leak_rate_ml_min"]["unit"] == "ml/min"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["NOPE-000001"], "error: no inspection of core NOPE-000001"),
        (["BAT-000003", "--format", "aasx"], "error: an AASX package is binary: give --out FILE"),
        (
            ["BAT-000003", "--format", "aasx", "--out", "{missing}/x.aasx"],
            "error: cannot write {missing}/x.aasx: No such file or directory",
        ),
        (
            ["BAT-000003", "--format", "aas", "--out", "{missing}/x.json"],
            "error: cannot write {missing}/x.json: No such file or directory",
        ),
        (
            ["BAT-000003", "--qr", "{missing}/x.png"],
            "error: cannot write {missing}/x.png: No such file or directory",
        ),
        (["BAT-000003", "--qr", "x.jpg"], "error: --qr x.jpg: a label file ends in .png or .svg"),
    ],
    ids=["wrong core", "aasx to the terminal", "aasx", "aas", "qr", "label extension"],
)
def test_a_mistake_is_one_line_not_a_traceback(demo_journal, tmp_path, args, message):
    missing = str(tmp_path / "no-such-folder")
    args = [a.replace("{missing}", missing) for a in args]
    result = CliRunner().invoke(cli, ["passport", *args, "--config", str(demo_journal)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # no traceback
    assert result.output.strip() == message.replace("{missing}", missing)
