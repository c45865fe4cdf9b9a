"""End to end, in one event loop: a node on the test broker, the bench simulator, a folder camera.

Each test starts a real node (`edge.node.Node`) with the toy colour model, so the disposition of
each test image is known in advance, and watches what a PLC and a dashboard would see on MQTT.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime

import cv2
import numpy as np
import pytest

from edge.bench.simulator import BenchSimulator
from edge.contract import Disposition, InspectionRecord, Result, Stats, TriggerCommand
from edge.contract.timefmt import UTC
from edge.decision.rules import decide
from edge.journal.journal import Journal
from tests.station.test_coreid import label
from tests.support.stations import (
    REPO,
    clean_core,
    corroded_core,
    start_node,
    station_config,
    write_folder,
)
from vision.imageio import read_image
from vision.synth import generate_core


@pytest.fixture
async def bench_sim():
    """The bench simulator on a free loopback port, measurements in spec."""
    async with BenchSimulator(host="127.0.0.1", scenario="normal", step_s=0.02) as sim:
        yield sim


async def wait_topic(listener, topic: str, where=lambda m: True, timeout_s: float = 20.0):
    return await asyncio.to_thread(
        listener.wait_for, lambda m: m.topic == topic and where(m), timeout_s
    )


def publish(listener, topic: str, payload: bytes | str) -> None:
    listener.client.publish(topic, payload, qos=1).wait_for_publish(10)


@pytest.mark.parametrize(
    "image,code,reason,deciding",
    [
        (clean_core(), Disposition.REUSE, "in_spec", []),
        (corroded_core(), Disposition.RECYCLE, "corrosion_grade", ["grades.corrosion.recycle_at"]),
    ],
)
async def test_mqtt_trigger_gives_result_and_full_record(
    tmp_path, mosquitto, listener_factory, bench_sim, image, code, reason, deciding
):
    camera = write_folder(tmp_path / "cores", [image])
    node, _ = await start_node(station_config(tmp_path, mosquitto, camera=camera, bench=bench_sim))
    topics = node.station.topics
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    try:
        publish(listener, topics.topic("trigger/set"), json.dumps({"core": "HGP-000123"}))
        result = await wait_topic(listener, topics.result)
        record = InspectionRecord.model_validate_json(
            (await wait_topic(listener, topics.inspection)).payload
        )
        snapshot = await wait_topic(listener, topics.snapshot)
    finally:
        await node.shutdown()
    late = await wait_topic(listener_factory(mosquitto, topics.result), topics.result)
    assert late.retain and late.payload == result.payload, (
        "a PLC that connects later still reads the result"
    )
    assert json.loads(result.payload) == {
        "seq": 1,
        "core": "HGP-000123",
        "code": int(code),
        "credit": int(record.decision.credit),
        "err": 0,
    }
    assert Result.model_validate_json(result.payload).code == code
    assert record.core_id == "HGP-000123" and record.core_id_source == "trigger"
    assert record.family == "hydraulic-gear-pump"
    assert set(record.defects) == {"wear", "corrosion", "coating_damage"}
    assert record.measurements["leak_rate_ml_min"].status == "Good"
    assert record.decision.code == code and reason in [r.code for r in record.decision.reasons]
    assert record.model.name == "toy-seg" and len(record.model.sha256) == 64
    assert record.rules.version and record.impact.known
    limits = record.limits
    assert limits is not None, "the record carries the family's limits that decided it"
    assert set(limits.measurements) == {"leak_rate_ml_min", "flow_l_min"}
    assert limits.measurements["leak_rate_ml_min"].max == 5.0
    assert limits.measurements["leak_rate_ml_min"].unit == "ml/min"
    assert limits.grades["corrosion"].recycle_at == 4
    assert [d.rule for d in limits.deciding] == deciding
    assert {"capture", "core_id", "quality", "grade", "bench", "decide", "total"} <= set(
        record.timings_ms
    )
    assert snapshot.payload[:2] == b"\xff\xd8"
    assert all((tmp_path / "images" / name).is_file() for name in record.images)
    with Journal.open(tmp_path / "journal.db") as journal:
        assert journal.get(record.id) == record
        assert journal.outbox.depth()[0] == 0, "everything was delivered before shutdown"


async def test_bench_trigger_gives_result_and_writes_back(
    tmp_path, mosquitto, listener_factory, bench_sim
):
    camera = write_folder(tmp_path / "cores", [clean_core()])
    node, _ = await start_node(station_config(tmp_path, mosquitto, camera=camera, bench=bench_sim))
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    done = asyncio.get_running_loop().create_future()
    node.station.listeners.append(lambda inspected: done.done() or done.set_result(inspected))
    try:
        await bench_sim.start_test("HGP-000777")
        inspected = await asyncio.wait_for(done, 20)
        result = await wait_topic(listener, node.station.topics.result)
        written = [await bench_sim.get_value(k) for k in ("Disposition", "Credit", "Seq")]
    finally:
        await node.shutdown()
    assert json.loads(result.payload) == {
        "seq": 1,
        "core": "HGP-000777",
        "code": 1,
        "credit": 1,
        "err": 0,
    }
    assert inspected.record.core_id_source == "bench" and inspected.record.part_number == "HGP-2-22"
    assert written == [1, 1, 1]


@pytest.mark.expect_errors(
    "Publish iteration crashed", "bench_connect_failed", "bench_writeback_failed"
)
async def test_bench_stopped_gives_review_with_that_reason(
    tmp_path, mosquitto, listener_factory, bench_sim
):
    camera = write_folder(tmp_path / "cores", [clean_core()])
    node, watch = await start_node(
        station_config(tmp_path, mosquitto, camera=camera, bench=bench_sim)
    )
    topics = node.station.topics
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    try:
        await bench_sim.stop()
        await watch.wait_for("bench_disconnected")
        publish(listener, topics.topic("trigger/set"), json.dumps({"core": "HGP-000124"}))
        result = json.loads((await wait_topic(listener, topics.result)).payload)
        record = InspectionRecord.model_validate_json(
            (await wait_topic(listener, topics.inspection)).payload
        )
    finally:
        await node.shutdown()
    assert result["code"] == Disposition.REVIEW and result["err"] == 0
    reasons = {r.code: r.text for r in record.decision.reasons}
    assert reasons["bench_unavailable"].startswith("bench disconnected since")
    assert {"leak_rate_ml_min", "flow_l_min"} <= {
        r.text.split(":")[0] for r in record.decision.reasons if r.code.startswith("measurement_")
    }
    assert record.measurements["flow_l_min"].status == "Stale"


def corrupt_jpeg(image) -> bytes:
    """A JPEG of `image` with 200 bytes of its entropy-coded data overwritten (a bad card, a
    flipped sector): OpenCV prints libjpeg's warning and returns a garbled image."""
    data = bytearray(cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    start = data.find(b"\xff\xda") + 600
    data[start : start + 200] = np.random.default_rng(0).integers(0, 256, 200, np.uint8).tobytes()
    return bytes(data)


@pytest.mark.parametrize("bad", ["truncated.png", "corrupt.jpg"])
async def test_corrupt_image_gives_event_and_review_and_the_node_keeps_running(
    tmp_path, mosquitto, listener_factory, bench_sim, bad
):
    camera = write_folder(tmp_path / "cores", [clean_core(1), clean_core(2), clean_core(3)])
    (camera / "001.png").unlink()
    if bad == "truncated.png":
        (camera / "001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    else:
        (camera / "001.jpg").write_bytes(corrupt_jpeg(clean_core(2)))
    name = "001.png" if bad == "truncated.png" else "001.jpg"
    node, _ = await start_node(station_config(tmp_path, mosquitto, camera=camera, bench=bench_sim))
    topics = node.station.topics
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    codes = []
    try:
        for seq in (1, 2, 3):
            publish(listener, topics.topic("trigger/set"), json.dumps({"core": f"HGP-00020{seq}"}))
            result = await wait_topic(
                listener, topics.result, lambda m, s=seq: json.loads(m.payload)["seq"] == s
            )
            codes.append(json.loads(result.payload)["code"])
        event = json.loads(
            (
                await wait_topic(
                    listener,
                    topics.event,
                    lambda m: json.loads(m.payload)["code"] == "image_unreadable",
                )
            ).payload
        )
        second = await wait_topic(
            listener,
            topics.inspection,
            lambda m: InspectionRecord.model_validate_json(m.payload).seq == 2,
        )
    finally:
        await node.shutdown()
    assert codes == [Disposition.REUSE, Disposition.REVIEW, Disposition.REUSE]
    assert event["detail"]["path"].endswith(name) and name in event["message"]
    reasons = InspectionRecord.model_validate_json(second.payload).decision.reasons
    assert any(r.code == "image_corrupt" and name in r.text for r in reasons)


async def test_core_id_read_from_a_qr_code_on_a_generated_core(
    tmp_path, mosquitto, listener_factory, bench_sim
):
    image = generate_core(seed=7).image.copy()
    tag = label("HGP-000555", "QRCode", scale=3)
    image[8 : 8 + tag.shape[0], 8 : 8 + tag.shape[1]] = tag[..., None]
    camera = write_folder(tmp_path / "cores", [image])
    node, _ = await start_node(station_config(tmp_path, mosquitto, camera=camera, bench=bench_sim))
    topics = node.station.topics
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    try:
        publish(
            listener, topics.topic("trigger/set"), b""
        )  # no core id in the trigger; none on the bench
        record = InspectionRecord.model_validate_json(
            (await wait_topic(listener, topics.inspection)).payload
        )
        result = json.loads((await wait_topic(listener, topics.result)).payload)
    finally:
        await node.shutdown()
    assert (record.core_id, record.core_id_source, record.family) == (
        "HGP-000555",
        "label",
        "hydraulic-gear-pump",
    )
    assert result["core"] == "HGP-000555"


async def test_no_core_id_under_reject_policy_gives_code_0(tmp_path, mosquitto, listener_factory):
    camera = write_folder(tmp_path / "cores", [clean_core()])
    node, _ = await start_node(
        station_config(tmp_path, mosquitto, camera=camera, core_id={"policy": "reject"})
    )
    topics = node.station.topics
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    try:
        publish(listener, topics.topic("trigger/set"), b"")
        result = json.loads((await wait_topic(listener, topics.result)).payload)
    finally:
        await node.shutdown()
    assert result["code"] == 0 and result["err"] == 2 and result["core"].startswith("UNREAD-")


@pytest.mark.parametrize(
    "overflow,inspected_core", [("drop_new", "HGP-000001"), ("drop_oldest", "HGP-000005")]
)
async def test_triggers_faster_than_the_station_follow_the_overflow_policy(
    tmp_path, mosquitto, listener_factory, overflow, inspected_core
):
    camera = write_folder(tmp_path / "cores", [clean_core()])
    node, watch = await start_node(
        station_config(
            tmp_path, mosquitto, camera=camera, trigger={"queue_size": 1, "overflow": overflow}
        )
    )
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    try:
        # Five trigger/set commands in one turn of the loop: the station cannot take any of
        # them before all five are in, so the queue of one overflows four times.
        taken = [
            node.station.on_trigger_command(TriggerCommand(core=f"HGP-00000{i}"))
            for i in range(1, 6)
        ]
        result = json.loads((await wait_topic(listener, node.station.topics.result)).payload)
        dropped = await asyncio.to_thread(
            listener.wait_for,
            lambda m: (
                m.topic.endswith("/event") and json.loads(m.payload)["code"] == "trigger_dropped"
            ),
            20,
        )
    finally:
        await node.shutdown()
    assert taken == ([True, False, False, False, False] if overflow == "drop_new" else [True] * 5)
    assert result["core"] == inspected_core
    assert watch.codes().count("trigger_dropped") == 4
    assert json.loads(dropped.payload)["detail"]["policy"] == overflow
    with Journal.open(tmp_path / "journal.db") as journal:
        assert [r.core_id for r in journal.find()] == [inspected_core]


async def test_override_republishes_record_and_result(tmp_path, mosquitto, listener_factory):
    camera = write_folder(tmp_path / "cores", [clean_core()])
    node, watch = await start_node(station_config(tmp_path, mosquitto, camera=camera))
    topics = node.station.topics
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    try:
        publish(listener, topics.topic("trigger/set"), json.dumps({"core": "HGP-000321"}))
        first = InspectionRecord.model_validate_json(
            (await wait_topic(listener, topics.inspection)).payload
        )
        override = {
            "id": first.id,
            "code": 2,
            "reason": "scored bore seen by hand",
            "user": "anna",
            "command_id": "c1",
        }
        publish(listener, topics.topic("override/set"), json.dumps(override))
        updated = await wait_topic(
            listener,
            topics.inspection,
            lambda m: InspectionRecord.model_validate_json(m.payload).override is not None,
        )
        result = await wait_topic(
            listener, topics.result, lambda m: json.loads(m.payload)["code"] == 2
        )
        applied = await watch.wait_for("override_applied")
    finally:
        await node.shutdown()
    assert applied.detail["user"] == "anna" and applied.level == "info"
    assert not [e for e in watch.seen if e.level == "error"], watch.codes()
    record = InspectionRecord.model_validate_json(updated.payload)
    assert (
        first.decision.code == Disposition.REVIEW
    )  # no bench on this station: measurements missing
    assert record.id == first.id and record.decision == first.decision
    assert record.override.user == "anna" and record.effective_code() == Disposition.REMANUFACTURE
    assert json.loads(result.payload)["seq"] == first.seq


async def test_a_records_request_publishes_the_journaled_record_again(
    tmp_path, mosquitto, listener_factory
):
    camera = write_folder(tmp_path / "cores", [clean_core()])
    node, watch = await start_node(station_config(tmp_path, mosquitto, camera=camera))
    topics = node.station.topics
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    try:
        publish(listener, topics.topic("trigger/set"), json.dumps({"core": "HGP-000322"}))
        first = InspectionRecord.model_validate_json(
            (await wait_topic(listener, topics.inspection)).payload
        )
        listener.drain()
        listener.seen.clear()  # what follows is the answer
        ask = {"from_seq": first.seq, "to_seq": first.seq + 2, "user": "plant-gw-1"}
        publish(listener, topics.topic("records/get"), json.dumps(ask))
        again = await wait_topic(listener, topics.inspection)
        resent = await watch.wait_for("records_resent")
    finally:
        await node.shutdown()
    assert InspectionRecord.model_validate_json(again.payload) == first
    assert resent.level == "info" and resent.detail["queued"] == 1
    assert resent.detail["not_in_journal"] == 2  # seqs after the last inspection do not exist
    assert "plant-gw-1 asked for inspections" in resent.message
    assert not [e for e in watch.seen if e.level == "error"], watch.codes()


async def test_records_requests_beyond_the_budget_are_refused_and_the_node_carries_on(
    tmp_path, mosquitto, listener_factory
):
    camera = write_folder(tmp_path / "cores", [clean_core()])
    config = station_config(
        tmp_path, mosquitto, camera=camera, commands={"records_per_minute": 1000}
    )
    node, watch = await start_node(config)
    topics = node.station.topics
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    try:
        publish(listener, topics.topic("trigger/set"), json.dumps({"core": "HGP-000323"}))
        await wait_topic(listener, topics.inspection)
        ask = json.dumps({"from_seq": 1, "to_seq": 999, "user": "looping-gw"})
        for _ in range(5):  # the first fits the budget; the next ones would flood
            publish(listener, topics.topic("records/get"), ask)
        resent = await watch.wait_for("records_resent")
        refused = await watch.wait_for("command_rejected")
        await asyncio.sleep(0.5)  # the other three arrive and are only counted
        publish(listener, topics.topic("trigger/set"), json.dumps({"core": "HGP-000324"}))
        later = await wait_topic(
            listener, topics.inspection, lambda m: json.loads(m.payload)["core_id"] == "HGP-000324"
        )
    finally:
        await node.shutdown()
    assert resent.detail["queued"] == 1
    assert refused.level == "warning" and refused.detail["refused_since_last"] == 0
    assert refused.message == (
        "refused records/get: looping-gw asked for 999 inspections, over the budget of 1000 a "
        "minute (commands.records_per_minute); ask again later"
    )
    assert (
        watch.codes().count("command_rejected") == 1 and watch.codes().count("records_resent") == 1
    )
    assert node.commands.rejected == 4
    assert InspectionRecord.model_validate_json(later.payload).seq == 2  # it carries on


async def test_stats_report_inspections_links_and_circularity(
    tmp_path, mosquitto, listener_factory, bench_sim
):
    camera = write_folder(tmp_path / "cores", [clean_core()])
    node, _ = await start_node(station_config(tmp_path, mosquitto, camera=camera, bench=bench_sim))
    topics = node.station.topics
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    try:
        publish(listener, topics.topic("trigger/set"), json.dumps({"core": "HGP-000400"}))
        await wait_topic(listener, topics.result)
        node.publish_stats()  # what the stats task does every stats.interval_s
        stats = Stats.model_validate_json((await wait_topic(listener, topics.stats)).payload)
    finally:
        await node.shutdown()
    assert stats.station == node.config.station_id and stats.inspections == 1
    assert stats.last_seq == 1  # the gateway asks for what it lacks up to here
    assert stats.decisions == {"REUSE": 1}
    assert stats.latency_ms["p50"] > 0
    assert stats.bench.state == "connected" and stats.broker.state == "connected"
    assert stats.model.name == "toy-seg" and stats.disk_free_mb > 0
    assert stats.circularity["material_kept_kg"] == 4.6  # one hydraulic gear pump reused


async def test_interval_triggers_for_demos(tmp_path, mosquitto, listener_factory):
    camera = write_folder(tmp_path / "cores", [clean_core()])
    node, _ = await start_node(
        station_config(tmp_path, mosquitto, camera=camera, trigger={"interval_s": 0.05})
    )
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    try:
        second = await wait_topic(
            listener, node.station.topics.result, lambda m: json.loads(m.payload)["seq"] == 2
        )
    finally:
        await node.shutdown()
    assert json.loads(second.payload)["core"].startswith("UNREAD-")  # no id anywhere: review policy


async def test_a_result_the_plc_does_not_acknowledge_is_an_event(
    tmp_path, mosquitto, listener_factory
):
    camera = write_folder(tmp_path / "cores", [clean_core()])
    node, watch = await start_node(
        station_config(tmp_path, mosquitto, camera=camera, handshake={"ack_timeout_s": 0.2})
    )
    topics = node.station.topics
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    try:
        publish(listener, topics.topic("trigger/set"), json.dumps({"core": "HGP-000501"}))
        result = json.loads((await wait_topic(listener, topics.result)).payload)
        timeout = await watch.wait_for("ack_timeout")
        publish(listener, topics.topic("ack/set"), json.dumps({"seq": result["seq"]}))
        late = await watch.wait_for("ack_late")
    finally:
        await node.shutdown()
    assert timeout.detail["seq"] == late.detail["seq"] == result["seq"]


REFERENCE_MODEL = REPO / "models" / "reman-seg.onnx"


@pytest.mark.skipif(
    not REFERENCE_MODEL.exists(), reason="the reference model is not in this checkout"
)
async def test_the_shipped_model_grades_generated_cores_as_offline(
    tmp_path, mosquitto, listener_factory, bench_sim
):
    """The node with models/reman-seg.onnx gives each generated core the grades and the code
    that the grader and the rules give the same image offline."""
    cores = [generate_core(seed=seed).image for seed in (11, 12, 13)]
    camera = write_folder(tmp_path / "cores", cores)
    data = station_config(
        tmp_path, mosquitto, camera=camera, bench=bench_sim, model={"path": str(REFERENCE_MODEL)}
    )
    node, _ = await start_node(data)
    topics = node.station.topics
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    records = []
    try:
        for seq in (1, 2, 3):
            publish(listener, topics.topic("trigger/set"), json.dumps({"core": f"HGP-00070{seq}"}))
            message = await wait_topic(
                listener,
                topics.inspection,
                lambda m, s=seq: InspectionRecord.model_validate_json(m.payload).seq == s,
            )
            records.append(InspectionRecord.model_validate_json(message.payload))
        grader, family = node.grader, node.families.get("hydraulic-gear-pump")
    finally:
        await node.shutdown()
    for record, path in zip(records, sorted(camera.iterdir()), strict=True):
        graded = grader.grade_views([read_image(path)])
        assert {k: v.grade for k, v in record.defects.items()} == {
            k: v.grade for k, v in graded.defects.items()
        }
        offline = decide(
            family,
            {k: d.to_dict() | {"scale": d.scale} for k, d in graded.defects.items()},
            record.measurements,
            [],
            now=datetime.now(UTC),
        )
        assert record.decision.code == offline.code, record.decision.reasons
        assert record.model.name == "reman-seg"
