"""`model/set` while the node runs: a promoted model decides from the next inspection, rollback
restores the one before, a shadow starts and stops live, a refused change changes nothing; the
retained `models` state follows every change and each shadow-graded inspection is on `shadow`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from edge.contract import InspectionRecord, ModelsState, ShadowReport
from edge.journal.journal import Journal
from reman.cli import cli
from tests.station.test_station_e2e import publish, wait_topic
from tests.support.stations import (
    clean_core,
    start_node,
    station_config,
    write_config,
    write_folder,
)
from tests.vision.toy_models import colour_segmenter, segmentation_card


@pytest.fixture
def station(tmp_path, mosquitto):
    """A station config whose registry holds versions 2 and 3 (the config's model is 1)."""
    camera = write_folder(tmp_path / "cores", [clean_core()])
    data = station_config(tmp_path, mosquitto, camera=camera)
    config = write_config(tmp_path / "station.yaml", data)
    for version in ("2", "3"):
        model = colour_segmenter(tmp_path / f"v{version}.onnx", segmentation_card(version=version))
        done = CliRunner().invoke(cli, ["model", "add", str(model), "--config", str(config)])
        assert done.exit_code == 0, done.output
    return data


class Bench:
    """A started node, its event watch and a listener on all its topics."""

    def __init__(self, node, watch, listener):
        self.node, self.watch, self.listener = node, watch, listener
        self.topics = node.station.topics
        self.cores = 0

    def send(self, action: str, version: str | None = None, **extra) -> None:
        command = {"action": action, "reason": "test", "user": "ada", **extra}
        if version is not None:
            command["version"] = version
        publish(self.listener, self.topics.model_set, json.dumps(command))

    async def inspect(self) -> InspectionRecord:
        self.cores += 1
        core = f"HGP-{self.cores:06d}"
        publish(self.listener, self.topics.topic("trigger/set"), json.dumps({"core": core}))
        message = await wait_topic(
            self.listener,
            self.topics.inspection,
            lambda m: json.loads(m.payload)["core_id"] == core,
        )
        return InspectionRecord.model_validate_json(message.payload)

    async def state(self, nth: int) -> ModelsState:
        """The nth `models` message of the node (0: the one published at start)."""
        count = iter(range(nth + 1))

        def matches(message) -> bool:
            return next(count, None) == nth

        message = await wait_topic(self.listener, self.topics.models, matches)
        return ModelsState.model_validate_json(message.payload)


@pytest.fixture
async def running(station, mosquitto, listener_factory):
    node, watch = await start_node(station)
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    try:
        yield Bench(node, watch, listener)
    finally:
        await node.shutdown()


def roles(state: ModelsState) -> dict[str, str | None]:
    return {model.version: model.role for model in state.models}


async def test_promote_decides_from_the_next_inspection_and_rollback_restores(
    running, mosquitto, listener_factory
):
    start = await running.state(0)
    assert start.active is None and start.shadow is None and not start.can_roll_back
    assert roles(start) == {"2": None, "3": None}
    first = await running.inspect()
    running.send("promote", "2", command_id="p2")
    promoted = await running.state(1)
    second = await running.inspect()
    running.send("promote", "3")
    third_state = await running.state(2)
    third = await running.inspect()
    running.send("rollback", command_id="r1")
    rolled_back = await running.state(3)
    fourth = await running.inspect()
    running.send("rollback", command_id="r2")  # to the configured model, which graded first
    configured = await running.state(4)
    fifth = await running.inspect()
    versions = [r.model.version for r in (first, second, third, fourth, fifth)]
    assert versions == ["1", "2", "3", "2", "1"]
    assert third.model.sha256 != "" and third.model.sha256 == third_state.models[1].sha256
    assert promoted.active == "2" and promoted.can_roll_back  # to the configured model
    assert roles(promoted) == {"2": "active", "3": None}
    assert third_state.active == "3" and third_state.can_roll_back
    assert roles(third_state) == {"2": None, "3": "active"}
    assert rolled_back.active == "2" and rolled_back.can_roll_back
    assert roles(rolled_back) == {"2": "active", "3": None}
    assert configured.active is None and not configured.can_roll_back
    assert roles(configured) == {"2": None, "3": None}
    assert running.node.station.model.version == "1"  # what `stats` reports too
    promote = await running.watch.wait_for("model_promoted")
    assert promote.detail["command_id"] == "p2" and promote.detail["user"] == "ada"
    late = await wait_topic(
        listener_factory(mosquitto, running.topics.models), running.topics.models
    )
    assert late.retain and ModelsState.model_validate_json(late.payload).active is None
    # a dashboard that connects later knows the registry


async def test_a_refused_change_is_an_event_and_changes_nothing(running):
    await running.state(0)
    registry = running.node.registry
    registry.file_of("3").write_bytes(b"not an onnx model")  # the file rots after `model add`
    colour_segmenter(registry.file_of("2"), segmentation_card(version="2", name="swapped"))
    running.send("promote", "9")
    running.send("rollback")
    running.send("end_shadow")
    running.send("promote", "3")
    running.send("shadow", "2")
    refused = [await running.watch.wait_for("model_refused", index=i) for i in range(5)]
    record = await running.inspect()
    assert record.model.version == "1"  # the configured model still grades
    assert [e.level for e in refused] == ["warning"] * 5
    assert "no model 9 in the registry (known: 2, 3)" in refused[0].message
    assert "nothing to roll back to" in refused[1].message
    assert "no model runs in shadow" in refused[2].message
    assert "promote 3 refused" in refused[3].message and "cannot load" in refused[3].message
    assert "changed since it was added" in refused[4].message
    changed = {"model_promoted", "model_rolled_back", "model_shadowed", "model_shadow_ended"}
    assert not changed & set(running.watch.codes())
    assert [e.role for e in registry.entries()] == [None, None]
    assert running.node.station.shadow is None


async def test_a_repeated_command_id_changes_nothing_and_unlisted_users_are_refused(
    station, mosquitto, listener_factory, tmp_path
):
    station["commands"] = {"override_users": ["ada"]}
    node, watch = await start_node(station)
    running = Bench(node, watch, listener_factory(mosquitto, f"reman/{node.config.station_id}/#"))
    try:
        running.send("promote", "2", command_id="c1")
        running.send("promote", "3", command_id="c2")
        running.send("rollback", command_id="c3")
        running.send("rollback", command_id="c3")  # QoS 1 delivered it twice
        running.send("promote", "3", user="mallory")
        rejected = await watch.wait_for("command_rejected")
        running.send("promote", "3", command_id="c1")  # a new command reusing an old id
        running.send("shadow", "3", command_id="c4")
        assert (await running.state(4)).shadow == "3"
        record = await running.inspect()
    finally:
        await node.shutdown()
    assert record.model.version == "2"
    assert "user 'mallory' may not change models" in rejected.message
    changes = {"model_promoted", "model_rolled_back", "model_shadowed", "model_refused"}
    codes = [c for c in watch.codes() if c in changes]
    assert codes == ["model_promoted", "model_promoted", "model_rolled_back", "model_shadowed"]
    with Journal.open(node.config.journal.path) as journal:
        assert journal.event_codes_for_command("c3") == ["model_rolled_back"]


async def test_a_shadow_started_live_reports_each_inspection_beside_the_active_model(running):
    await running.state(0)
    running.send("shadow", "3", command_id="s1")
    started = await running.state(1)
    first = await running.inspect()
    report = ShadowReport.model_validate_json(
        (await wait_topic(running.listener, running.topics.shadow)).payload
    )
    second = await running.inspect()
    await wait_topic(
        running.listener, running.topics.shadow, lambda m: json.loads(m.payload)["id"] == second.id
    )
    running.send("promote", "2")
    during = await running.state(2)
    running.send("end_shadow")
    ended = await running.state(3)
    await running.watch.wait_for("model_shadow_ended")
    assert running.node.station.shadow is None
    assert (report.id, report.candidate, report.active) == (first.id, "3", "1")
    assert set(report.defects) == set(report.active_defects) == set(first.defects)
    assert report.active_defects == first.defects
    assert report.code == report.active_code == first.decision.code  # the same weights
    assert started.shadow == "3" and started.shadow_seen == 0
    assert (during.active, during.shadow) == ("2", "3")
    assert during.shadow_seen == 2 and during.shadow_skipped == 0
    assert roles(during) == {"2": "active", "3": "shadow"}
    assert (ended.active, ended.shadow, ended.shadow_seen) == ("2", None, 0)
    assert roles(ended) == {"2": "active", "3": None}


async def test_reman_model_beside_a_running_node_takes_effect_without_a_restart(
    running, station, tmp_path
):
    """An engineer on the node's machine runs `reman model shadow 3`, then `promote 3`: the
    node follows the registry file, so the shadow runs and the promoted model decides."""
    await running.state(0)
    config = str(tmp_path / "station.yaml")

    def model(*args: str) -> None:
        done = CliRunner().invoke(cli, ["model", *args, "--config", config])
        assert done.exit_code == 0, done.output

    model("shadow", "3")
    shadowed = await running.state(1)
    first = await running.inspect()
    report = ShadowReport.model_validate_json(
        (await wait_topic(running.listener, running.topics.shadow)).payload
    )
    # with `stats`, the node republishes the state when the shadow's counts moved, only then
    assert running.node.models.publish_if_changed()
    counted = await running.state(2)
    assert not running.node.models.publish_if_changed()
    model("promote", "3", "--reason", "agrees on the test cores")
    promoted = await running.state(3)
    second = await running.inspect()
    assert (shadowed.active, shadowed.shadow, shadowed.shadow_seen) == (None, "3", 0)
    assert counted.shadow_seen == 1
    assert (report.id, report.candidate) == (first.id, "3")
    assert (promoted.active, promoted.shadow) == ("3", None)
    assert (first.model.version, second.model.version) == ("1", "3")
    assert running.node.station.shadow is None
