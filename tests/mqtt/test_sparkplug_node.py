"""A whole node with Sparkplug enabled: each inspection goes out as JSON and as DDATA."""

from __future__ import annotations

import asyncio
import json

from tests.support.sparkplug import metrics_by_name, tahu_decode
from tests.support.stations import clean_core, start_node, station_config, write_folder


async def test_node_publishes_births_and_a_ddata_per_inspection(
    mosquitto, listener_factory, tmp_path
):
    camera = write_folder(tmp_path / "frames", [clean_core(0)])
    data = station_config(
        tmp_path,
        mosquitto,
        camera=camera,
        trigger={"interval_s": 0.2},
        sparkplug={"enabled": True, "group_id": "node-test"},
    )
    station = data["station_id"]
    listener = listener_factory(mosquitto, ["spBv1.0/node-test/#", f"reman/{station}/inspection"])
    node, _watch = await start_node(data)
    try:
        ddata = await asyncio.to_thread(listener.wait_for, lambda m: "/DDATA/" in m.topic, 20)
        inspection = await asyncio.to_thread(
            listener.wait_for, lambda m: m.topic.endswith("/inspection"), 20
        )
    finally:
        await node.shutdown()
    assert ddata.topic == f"spBv1.0/node-test/DDATA/{station}/{station}"
    births = [m for m in listener.seen if "BIRTH" in m.topic]
    assert [m.topic.split("/")[2] for m in births][:2] == ["NBIRTH", "DBIRTH"]
    metrics = metrics_by_name(tahu_decode([ddata.payload])[0])
    record = json.loads(inspection.payload)
    assert metrics["Inspection/Id"]["value"] == record["id"]
    assert metrics["Core/Id"]["value"] == record["core_id"]
    assert metrics["Decision/Code"]["value"] == record["decision"]["code"]
    death = await asyncio.to_thread(listener.wait_for, lambda m: "/NDEATH/" in m.topic, 10)
    assert death.qos == 1  # published on the clean stop
