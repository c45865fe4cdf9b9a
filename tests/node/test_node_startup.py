"""Start-up checks: each part that cannot start stops the node with a message naming it."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from edge.config.station import StationConfig
from edge.contract.errors import ConfigError
from edge.node import Node, StartupError
from tests.station.test_station_e2e import publish, wait_topic
from tests.support.stations import clean_core, start_node, station_config, write_folder


async def start(data: dict) -> None:
    node = Node(StationConfig.model_validate(data))
    try:
        await node.start()
    finally:
        await node.shutdown()


async def test_a_corrupt_journal_stops_the_start(tmp_path, mosquitto):
    data = station_config(
        tmp_path, mosquitto, camera=write_folder(tmp_path / "cores", [clean_core()])
    )
    (tmp_path / "journal.db").write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(StartupError, match="journal"):
        await start(data)


async def test_a_second_node_on_one_journal_is_refused_and_the_first_carries_on(
    tmp_path, mosquitto, listener_factory
):
    data = station_config(
        tmp_path, mosquitto, camera=write_folder(tmp_path / "cores", [clean_core()])
    )
    first, _ = await start_node(data)
    try:
        with pytest.raises(StartupError) as refused:
            await start(data)  # `reman node` again with the station's config
        assert str(refused.value) == (
            f"journal: {tmp_path / 'journal.db'} is in use by another node (pid {os.getpid()}); "
            "one node per journal: stop that one, or give this station its own journal.path"
        )
        listener = listener_factory(mosquitto, f"reman/{first.config.station_id}/#")
        topics = first.station.topics
        publish(listener, topics.topic("trigger/set"), json.dumps({"core": "HGP-000901"}))
        record = await wait_topic(listener, topics.inspection)
        assert json.loads(record.payload)["seq"] == 1  # the first still inspects and journals
    finally:
        await first.shutdown()
    await start(data)  # once it has stopped, the journal is free again


async def test_a_model_whose_card_does_not_match_stops_the_start(tmp_path, mosquitto):
    data = station_config(
        tmp_path, mosquitto, camera=write_folder(tmp_path / "cores", [clean_core()])
    )
    card = tmp_path / "toy-seg.card.json"
    card.write_text(card.read_text().replace('"probs"', '"scores"'))  # an output the graph lacks
    with pytest.raises(StartupError, match="model: .*toy-seg"):
        await start(data)


async def test_an_empty_camera_folder_stops_the_start(tmp_path, mosquitto):
    (tmp_path / "cores").mkdir()
    with pytest.raises(StartupError, match="camera: .*holds no images"):
        await start(station_config(tmp_path, mosquitto, camera=tmp_path / "cores"))


async def test_a_bad_family_file_stops_the_start_with_its_line(tmp_path, mosquitto):
    families = tmp_path / "families"
    families.mkdir()
    (families / "pump.yaml").write_text(
        "name: Pump\nmatch:\n  core_id_pattern: '^P-'\ngrades:\n  rust: {}\n"
    )
    data = station_config(
        tmp_path,
        mosquitto,
        camera=write_folder(tmp_path / "cores", [clean_core()]),
        families_dir=str(families),
    )
    with pytest.raises(ConfigError) as info:
        await start(data)
    assert any(p.file.endswith("pump.yaml") and p.line == 4 for p in info.value.problems), (
        info.value
    )


@pytest.mark.expect_errors("broker_refused")
async def test_a_broker_that_refuses_the_password_stops_the_start(tmp_path, broker_factory):
    passwd = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", str(passwd), "st", "right"], check=True, timeout=30
    )
    as_invoker = (
        "user root\n" if os.geteuid() == 0 else ""
    )  # root's mosquitto would drop to `mosquitto`
    broker = broker_factory(f"allow_anonymous false\npassword_file {passwd}\n{as_invoker}")
    data = station_config(tmp_path, broker, camera=write_folder(tmp_path / "cores", [clean_core()]))
    data["mqtt"].update(username="st", password="wrong")
    with pytest.raises(StartupError, match="broker: the broker refused"):
        await start(data)


async def test_an_unreachable_broker_or_bench_is_only_a_warning(tmp_path, mosquitto, caplog):
    from tests.support.broker import free_port

    data = station_config(
        tmp_path, mosquitto, camera=write_folder(tmp_path / "cores", [clean_core()])
    )
    data["mqtt"]["port"] = free_port()
    data["bench"] = {
        "enabled": True,
        "endpoint": f"opc.tcp://127.0.0.1:{free_port()}/none",
        "timeout_s": 0.5,
    }
    node = Node(StationConfig.model_validate(data))
    try:
        await node.start()
        assert node.healthy()
    finally:
        await node.shutdown()
    assert "results wait in the journal" in caplog.text and "inspections get REVIEW" in caplog.text
