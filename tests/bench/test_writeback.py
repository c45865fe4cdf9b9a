"""Write-back of results into the bench (the PLC's tags) and the PLC's ack over OPC UA."""

from __future__ import annotations

import asyncio

import pytest

from edge.bench.client import BenchClient
from edge.contract import AckCommand
from edge.events import Events
from edge.mqtt.handshake import Handshake
from tests.bench.conftest import NSU, sim_config

pytestmark = pytest.mark.asyncio(loop_scope="module")

FULL = {
    "code": NSU + "Disposition",
    "credit": NSU + "Credit",
    "seq": NSU + "Seq",
    "err": NSU + "Err",
    "revision": NSU + "Revision",
    "core_id": NSU + "ResultCoreId",
    "result_ready": NSU + "DispositionReady",
}


async def wait_acknowledged(handshake: Handshake, seq: int, timeout_s: float = 10.0) -> None:
    async def loop() -> None:
        while not handshake.acknowledged(seq):
            await asyncio.sleep(0.02)  # polling our own state, changed by the bench's ack

    await asyncio.wait_for(loop(), timeout_s)


async def test_the_whole_set_is_written_with_result_ready_last(sim, client_factory):
    client = await client_factory(sim_config(sim, writeback=FULL))
    await sim.set_value("DispositionReady", True)
    assert await client.write_back(3, 3, 77, err=1, core_id="HPC-000077", revision=2)
    written = {
        k: await sim.get_value(k)
        for k in ("Disposition", "Credit", "Seq", "Err", "Revision", "ResultCoreId")
    }
    assert written == {
        "Disposition": 3,
        "Credit": 3,
        "Seq": 77,
        "Err": 1,
        "Revision": 2,
        "ResultCoreId": "HPC-000077",
    }
    assert await sim.get_value("DispositionReady") is True


@pytest.mark.parametrize("mode", ["subscribe", "poll"])
async def test_the_plcs_ack_on_the_ack_node_reaches_the_handshake(sim_factory, event_log, mode):
    sim = await sim_factory(auto_ack_s=0.02)
    events = Events("test-station", [event_log])
    handshake = Handshake(events, ack_timeout_s=0.5, source="opcua")
    config = sim_config(sim, writeback=FULL, ack_node=NSU + "Ack", mode=mode)
    client = BenchClient(config, events, handshake=handshake)
    await client.start()
    try:
        await client.wait_connected(10)
        for seq in (5, 6):
            assert await client.write_back(1, 1, seq, core_id=f"HGP-00000{seq}")
            await wait_acknowledged(handshake, seq)
        await asyncio.sleep(0.6)  # beyond ack_timeout_s: no timeout may follow an ack
    finally:
        await client.stop()
        handshake.close()
    assert sim.acks == [5, 6]
    assert "ack_timeout" not in event_log.codes() and "ack_unknown" not in event_log.codes()


async def test_an_ack_over_mqtt_is_ignored_when_acks_come_over_opcua(event_log):
    handshake = Handshake(Events("test-station", [event_log]), 5.0, source="opcua")
    handshake.result_written(9)
    assert handshake.ack(AckCommand(seq=9)) is False
    assert event_log.codes() == ["ack_ignored"] and handshake.waiting == [9]
    assert handshake.ack(AckCommand(seq=9), source="opcua") and not handshake.waiting
    handshake.close()


@pytest.mark.expect_errors("Publish iteration crashed", "bench_connect_failed")
async def test_a_write_to_a_bench_that_is_down_is_retried_until_it_is_back(
    sim_factory, client_factory, event_log
):
    sim = await sim_factory()
    config = sim_config(sim, writeback=FULL, writeback_attempts=20, writeback_retry_max_s=0.5)
    client = await client_factory(config)
    seen = len(event_log.events)
    await sim.stop()
    await event_log.wait_for("bench_disconnected", timeout_s=10, after=seen)
    started = asyncio.get_running_loop().time()
    assert await client.write_back(2, 1, 31, core_id="HGP-000031") is False
    assert asyncio.get_running_loop().time() - started < 1.0  # never waits on a dead bench
    failed = await event_log.wait_for("bench_writeback_failed", after=seen)
    await sim.start()
    recovered = await event_log.wait_for("bench_writeback_recovered", timeout_s=20, after=seen)
    assert failed.level == "warning" and recovered.detail["seq"] == 31
    assert await sim.get_value("Seq") == 31 and await sim.get_value("DispositionReady") is True
