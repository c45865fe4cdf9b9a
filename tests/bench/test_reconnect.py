"""The bench goes away mid-run and comes back on the same port."""

from __future__ import annotations

import asyncio

import pytest

from edge.contract.timefmt import utc_now
from tests.bench.conftest import NSU, sim_config

pytestmark = pytest.mark.asyncio(loop_scope="module")

RETURN_BOUND_S = 5.0  # the bound: back within 5 s of the server's return


@pytest.mark.expect_errors(
    "Publish iteration crashed", "bench_connect_failed", "bench_writeback_failed"
)
async def test_server_restart_marks_the_gap_and_restores_subscriptions(
    sim_factory, client_factory, event_log
):
    sim = await sim_factory()
    client = await client_factory(sim_config(sim))
    await sim.set_value("LeakRate", 2.4)
    await client.wait_reading(
        "leak_rate_ml_min", lambda r: r.value == 2.4 and r.usable, timeout_s=10
    )

    seen = len(event_log.events)
    await sim.stop()
    await event_log.wait_for("bench_disconnected", timeout_s=10, after=seen)
    gap = await client.snapshot()
    assert gap.link == "disconnected" and not gap.usable
    for name, reading in gap.readings.items():
        assert reading.status in ("Stale", "Missing"), name
        assert reading.value is None and not reading.usable, name
    assert await client.write_back(code=1, credit=1, seq=9) is False  # an event, not a crash

    sim.extra_namespaces = ("urn:example:another-vendor",)  # the bench namespace's index moves
    await sim.start()

    async def back():
        await client.wait_connected(timeout_s=RETURN_BOUND_S)
        await sim.set_value("LeakRate", 7.75)  # after the restart: only a live subscription sees it
        return await client.wait_reading(
            "leak_rate_ml_min", lambda r: r.value == 7.75, timeout_s=RETURN_BOUND_S
        )

    reading = await asyncio.wait_for(back(), RETURN_BOUND_S)
    assert reading.usable and reading.status == "Good"
    assert event_log.codes()[seen:].count("bench_connected") == 1
    assert client._link.nodes[NSU + "LeakRate"].NamespaceIndex == 3  # resolved again at connect


@pytest.mark.expect_errors(
    "Publish iteration crashed", "bench_connect_failed", "bench_writeback_failed"
)
async def test_triggers_work_again_after_the_bench_dropped_the_connection(
    sim, client_factory, event_log
):
    client = await client_factory(sim_config(sim))
    seen = len(event_log.events)
    assert sim.drop_connections() >= 1
    await event_log.wait_for("bench_disconnected", timeout_s=10, after=seen)
    await event_log.wait_for("bench_connected", timeout_s=10, after=seen)
    await sim.start_test("HGP-000123")
    trigger = await asyncio.wait_for(client.triggers.get(), 10)
    assert trigger.core_id == "HGP-000123"


@pytest.mark.expect_errors(
    "Publish iteration crashed",
    "bench_connect_failed",
    "bench_writeback_failed",
    "processing message from client",
)
async def test_flaky_scenario_never_crashes_the_client(sim, client_factory):
    sim.scenario = "flaky"
    client = await client_factory(sim_config(sim))
    statuses = set()
    for n in range(6):
        started = utc_now()
        await sim.start_test(f"BAT-{n:06d}")
        # This cycle's value arrives by notification, or by the first read after a dropped link.
        reading = await client.wait_reading(
            "capacity_pct",
            lambda r, t=started: r.source_ts is not None and r.source_ts >= t,
            timeout_s=10,
        )
        statuses.add(reading.status)
        for name, reading in (await client.snapshot()).readings.items():
            assert reading.usable == (reading.status == "Good"), name
            if name in ("capacity_pct", "internal_resistance_mohm"):
                statuses.add(reading.status)
    await client.wait_connected(timeout_s=10)
    assert statuses - {"Good"}, "the flaky bench sent no bad status in six cycles"


@pytest.mark.expect_errors(
    "Publish iteration crashed", "bench_connect_failed", "bench_writeback_failed"
)
async def test_an_edge_made_while_the_link_was_down_still_triggers(sim, client_factory, event_log):
    client = await client_factory(sim_config(sim))
    await client.wait_reading(
        "leak_rate_ml_min", lambda r: r.usable, timeout_s=10
    )  # ResultReady false seen
    seen = len(event_log.events)
    sim.drop_connections()
    await sim.set_value("CoreId", "HGP-000555")
    await sim.set_value("ResultReady", True)  # the bench finished while we were away
    await event_log.wait_for("bench_connected", timeout_s=10, after=seen)
    trigger = await asyncio.wait_for(client.triggers.get(), 10)
    assert trigger.core_id == "HGP-000555"
