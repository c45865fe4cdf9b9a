"""The OPC UA handshake end to end: a node writes each result into a PLC's tags (result_ready
last), the PLC acknowledges by writing the seq to its ack tag, and an override reaches the PLC.

Two PLCs: the asyncua bench simulator acting as one (`auto_ack_s`), and an independent
node-opcua server (tests/peers/opcua_plc.js, started with Node.js). And the clocks: a bench whose
clock is a minute behind sends no core to REVIEW and raises one `clock_skew` event.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from edge.bench.simulator import BenchSimulator
from edge.contract import Disposition, InspectionRecord
from tests.bench.conftest import NSU
from tests.station.test_station_e2e import publish, wait_topic
from tests.support.broker import free_port
from tests.support.stations import REPO, clean_core, start_node, station_config, write_folder

PEERS = REPO / "tests" / "peers"
PLC_NS = "nsu=urn:reman-edge:test-plc;s=PLC."

SIM_WRITEBACK = {
    "code": NSU + "Disposition",
    "credit": NSU + "Credit",
    "seq": NSU + "Seq",
    "err": NSU + "Err",
    "revision": NSU + "Revision",
    "core_id": NSU + "ResultCoreId",
    "result_ready": NSU + "DispositionReady",
}


def opcua_station(
    tmp_path, mosquitto, bench: BenchSimulator | dict, writeback: dict, ack_node: str, **sections
) -> dict[str, Any]:
    """A station config whose bench is the simulator or the given bench section."""
    camera = write_folder(tmp_path / "cores", [clean_core()])
    sim = bench if isinstance(bench, BenchSimulator) else None
    data = station_config(tmp_path, mosquitto, camera=camera, bench=sim, **sections)
    if sim is None:
        data["bench"] = bench
    data["bench"]["writeback"] = writeback
    data["bench"]["ack_node"] = ack_node
    data["handshake"] = {"ack": "opcua", "ack_timeout_s": 5, **data.get("handshake", {})}
    return data


async def inspect(node, listener, core: str) -> InspectionRecord:
    topics = node.station.topics
    publish(listener, topics.topic("trigger/set"), json.dumps({"core": core}))
    message = await wait_topic(
        listener, topics.inspection, lambda m: json.loads(m.payload)["core_id"] == core
    )
    return InspectionRecord.model_validate_json(message.payload)


async def override(node, listener, record: InspectionRecord, code: int) -> None:
    command = {"id": record.id, "code": code, "reason": "seen by hand", "user": "anna"}
    publish(listener, node.station.topics.topic("override/set"), json.dumps(command))


async def wait_until(predicate, timeout_s: float = 15.0) -> None:
    async def loop() -> None:
        while not predicate():
            await asyncio.sleep(0.02)  # polling the node's own state, changed by OPC UA traffic

    await asyncio.wait_for(loop(), timeout_s)


async def wait_value(sim: BenchSimulator, name: str, value: Any, timeout_s: float = 15.0) -> None:
    async def loop() -> None:
        while await sim.get_value(name) != value:
            await asyncio.sleep(0.02)  # polling the server's address space, written by the node

    await asyncio.wait_for(loop(), timeout_s)


# ---------------------------------------------------------------- asyncua as the PLC


async def test_asyncua_plc_acknowledges_over_opcua_and_sees_the_override(
    tmp_path, mosquitto, listener_factory
):
    async with BenchSimulator(step_s=0.02, auto_ack_s=0.05) as sim:
        data = opcua_station(tmp_path, mosquitto, sim, SIM_WRITEBACK, NSU + "Ack")
        node, watch = await start_node(data)
        listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
        try:
            record = await inspect(node, listener, "HGP-000910")
            await wait_until(lambda: sim.acks == [record.seq])
            await wait_until(lambda: node.handshake.acknowledged(record.seq))
            written = {k: await sim.get_value(k) for k in ("Seq", "ResultCoreId", "Revision")}
            await override(node, listener, record, code=3)
            await wait_until(lambda: len(sim.acks) == 2)
            after = {k: await sim.get_value(k) for k in ("Disposition", "Seq", "Revision")}
            await asyncio.sleep(0)  # the handshake takes the second ack in this loop pass
        finally:
            await node.shutdown()
    assert written == {"Seq": record.seq, "ResultCoreId": "HGP-000910", "Revision": 1}
    assert after == {"Disposition": 3, "Seq": record.seq, "Revision": 2}
    assert "ack_timeout" not in watch.codes() and "ack_ignored" not in watch.codes()
    assert not [e for e in watch.seen if e.level == "error"], watch.codes()


async def test_ack_none_turns_the_ack_check_off(tmp_path, mosquitto, listener_factory):
    async with BenchSimulator(step_s=0.02) as sim:
        data = opcua_station(
            tmp_path, mosquitto, sim, SIM_WRITEBACK, NSU + "Ack", handshake={"ack_timeout_s": 0.1}
        )
        data["handshake"]["ack"] = "none"
        node, watch = await start_node(data)
        listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
        try:
            record = await inspect(node, listener, "HGP-000911")
            await wait_value(sim, "Seq", record.seq)
            await wait_value(sim, "DispositionReady", True)
            await asyncio.sleep(0.3)  # longer than ack_timeout_s: proving an absence
        finally:
            await node.shutdown()
    assert "ack_timeout" not in watch.codes() and not node.handshake.waiting


# ---------------------------------------------------------------- clocks


async def test_a_bench_clock_a_minute_behind_is_one_event_and_no_review(
    tmp_path, mosquitto, listener_factory
):
    async with BenchSimulator(step_s=0.02, clock_offset_s=-60) as sim:
        camera = write_folder(tmp_path / "cores", [clean_core()])
        data = station_config(tmp_path, mosquitto, camera=camera, bench=sim)
        data["bench"]["max_age_s"] = 10
        data["bench"]["trigger_node"] = None  # the test triggers over MQTT, after each cycle
        node, watch = await start_node(data)
        listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
        try:
            skew = await watch.wait_for("clock_skew")
            records = []
            for n in range(3):
                await sim.start_test(f"HGP-00092{n}")  # fresh values, stamped a minute ago
                records.append(await inspect(node, listener, f"HGP-00092{n}"))
        finally:
            await node.shutdown()
    assert [r.decision.code for r in records] == [Disposition.REUSE] * 3, records[0].decision
    assert watch.codes().count("clock_skew") == 1
    assert skew.level == "warning" and 59 < skew.detail["skew_s"] < 61
    leak = records[0].measurements["leak_rate_ml_min"]
    assert leak.source_ts < leak.received_ts  # the bench's stamp is kept, a minute earlier


# ---------------------------------------------------------------- node-opcua as the PLC


@dataclass
class NodePlc:
    """The node-opcua PLC stand-in and the JSON lines it printed."""

    process: subprocess.Popen[str]
    endpoint: str
    lines: list[dict] = field(default_factory=list)

    async def wait_for(self, predicate, timeout_s: float = 20.0) -> dict:
        """The first line (printed before or after the call) that satisfies predicate."""

        async def first() -> dict:
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                line = await asyncio.to_thread(read_line, self.process)
                if line is None:
                    raise AssertionError(f"the PLC stand-in ended; it printed {self.lines}")
                self.lines.append(line)

        return await asyncio.wait_for(first(), timeout_s)


def read_line(process: subprocess.Popen[str]) -> dict | None:
    """The stand-in's next event line ("PLC " and JSON), skipping node-opcua's own log lines;
    None when it ended."""
    assert process.stdout is not None
    while True:
        text = process.stdout.readline()
        if not text:
            return None
        if text.startswith("PLC "):
            return json.loads(text[4:])


@pytest.fixture
def node_plc() -> Iterator[NodePlc]:
    """tests/peers/opcua_plc.js on a free loopback port, acking 50 ms after result_ready."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js (node) is not installed")
    if not (PEERS / "node_modules" / "node-opcua-server").is_dir():
        pytest.fail("node-opcua-server is missing: run scripts/bootstrap test")
    port = free_port()
    process = subprocess.Popen(
        [node, str(PEERS / "opcua_plc.js"), str(port), "50"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        first = read_line(process)
        assert first is not None and first["event"] == "listening", first
        yield NodePlc(process, f"opc.tcp://127.0.0.1:{port}/plc")
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def test_node_opcua_plc_completes_the_handshake_and_sees_the_override(
    tmp_path, mosquitto, listener_factory, node_plc
):
    writeback = {
        key: PLC_NS + tag
        for key, tag in {
            "code": "Code",
            "credit": "Credit",
            "seq": "Seq",
            "err": "Err",
            "revision": "Revision",
            "core_id": "CoreId",
            "result_ready": "ResultReady",
        }.items()
    }
    bench = {
        "enabled": True,
        "endpoint": node_plc.endpoint,
        "timeout_s": 5,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 1,
    }
    data = opcua_station(tmp_path, mosquitto, bench, writeback, PLC_NS + "Ack")
    node, watch = await start_node(data)
    listener = listener_factory(mosquitto, f"reman/{node.config.station_id}/#")
    try:
        record = await inspect(node, listener, "HGP-000930")
        seen = await node_plc.wait_for(lambda line: line["event"] == "result")
        await node_plc.wait_for(lambda line: line["event"] == "ack")
        await wait_until(lambda: node.handshake.acknowledged(record.seq))
        await override(node, listener, record, code=3)
        changed = await node_plc.wait_for(
            lambda line: line["event"] == "result" and line["revision"] == 2
        )
    finally:
        await node.shutdown()
    code = int(record.decision.code)
    assert seen == {
        "event": "result",
        "code": code,
        "credit": int(record.decision.credit),
        "err": 0,
        "revision": 1,
        "core": "HGP-000930",
        "seq": record.seq,
    }
    assert (changed["code"], changed["seq"], changed["core"]) == (3, record.seq, "HGP-000930")
    assert "ack_timeout" not in watch.codes()
    assert not [e for e in watch.seen if e.level == "error"], watch.codes()
