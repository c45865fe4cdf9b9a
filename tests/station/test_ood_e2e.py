"""End to end with the shipped model: a photograph unlike its training images goes to a person.

A node with models/reman-seg.onnx on the test broker: it says at start that the model was trained
on synthetic data only, a flat grey plate comes out REVIEW with reason `out_of_distribution` and
an `image_out_of_distribution` warning, and a generated core is decided without that reason.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.contract import Disposition, InspectionRecord
from tests.station.test_station_e2e import bench_sim, publish, wait_topic  # noqa: F401 - fixture
from tests.support.stations import REPO, start_node, station_config, write_folder
from vision.synth import generate_core

REFERENCE_MODEL = REPO / "models" / "reman-seg.onnx"

pytestmark = pytest.mark.skipif(
    not REFERENCE_MODEL.exists(), reason="the reference model is not in this checkout"
)


async def test_a_grey_plate_is_review_out_of_distribution(
    tmp_path,
    mosquitto,
    listener_factory,
    bench_sim,  # noqa: F811 - the fixture imported above
):
    plate = np.full((480, 640, 3), 128, np.uint8)
    camera = write_folder(tmp_path / "views", [plate, generate_core(seed=2_200_001).image])
    data = station_config(
        tmp_path, mosquitto, camera=camera, bench=bench_sim, model={"path": str(REFERENCE_MODEL)}
    )
    node, watch = await start_node(data)
    topics = node.station.topics
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    records = []
    try:
        started = await watch.wait_for("model_synthetic_only")
        for seq in (1, 2):
            publish(listener, topics.topic("trigger/set"), json.dumps({"core": f"HGP-00090{seq}"}))
            message = await wait_topic(
                listener,
                topics.inspection,
                lambda m, s=seq: InspectionRecord.model_validate_json(m.payload).seq == s,
            )
            records.append(InspectionRecord.model_validate_json(message.payload))
        warning = json.loads(
            (
                await wait_topic(
                    listener,
                    topics.event,
                    lambda m: json.loads(m.payload)["code"] == "image_out_of_distribution",
                )
            ).payload
        )
    finally:
        await node.shutdown()
    plate_record, core_record = records
    assert plate_record.decision.code == Disposition.REVIEW
    reasons = {r.code: r.text for r in plate_record.decision.reasons}
    assert "out of distribution" in reasons["out_of_distribution"]
    assert all(d.confidence < 0.6 for d in plate_record.defects.values())
    assert warning["level"] == "warning" and warning["detail"]["view"] == 1
    assert warning["detail"]["distance"] > 0
    # emitted before the listener subscribed, so it is checked on the node's own event sink
    assert started.level == "warning" and "generated images only" in started.message
    assert "out_of_distribution" not in [r.code for r in core_record.decision.reasons]
    assert plate_record.model is not None and plate_record.model.synthetic_only is True
    assert "model_without_input_summary" not in watch.codes()


async def test_a_model_without_a_summary_runs_without_the_guard_and_says_so(
    tmp_path,
    mosquitto,
    listener_factory,
    bench_sim,  # noqa: F811 - the fixture imported above
):
    """The toy model's card (an older site model's) has no summary: the node says so once."""
    plate = np.full((480, 640, 3), 128, np.uint8)
    camera = write_folder(tmp_path / "views", [plate])
    node, watch = await start_node(
        station_config(tmp_path, mosquitto, camera=camera, bench=bench_sim)
    )
    topics = node.station.topics
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    try:
        notice = await watch.wait_for("model_without_input_summary")
        publish(listener, topics.topic("trigger/set"), json.dumps({"core": "HGP-000911"}))
        record = InspectionRecord.model_validate_json(
            (await wait_topic(listener, topics.inspection)).payload
        )
    finally:
        await node.shutdown()
    assert notice.level == "info" and "no out-of-distribution guard" in notice.message
    assert watch.codes().count("model_without_input_summary") == 1
    assert "model_synthetic_only" not in watch.codes()
    assert "out_of_distribution" not in [r.code for r in record.decision.reasons]
    assert record.model is not None and record.model.synthetic_only is None
