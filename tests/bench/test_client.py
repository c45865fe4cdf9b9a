"""The bench client against the bench simulator on a free loopback port."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta

import pytest

from edge.bench import tools as benchtools
from edge.bench.client import BenchClient
from edge.bench.clock import ClockWatch
from edge.contract.timefmt import UTC
from edge.errors import BenchUnavailable, UnknownNode
from edge.events import Events
from tests.bench.conftest import NSU, sim_config
from tests.support.broker import free_port
from tests.support.opcua import start_server

pytestmark = pytest.mark.asyncio(loop_scope="module")

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def test_reads_every_mapped_value_with_unit_status_and_time(sim, client_factory):
    client = await client_factory(sim_config(sim))
    assert client.state.state == "connected" and client.mode == "subscribe"
    snap = await client.snapshot()
    assert snap.usable, snap.problems()
    leak = snap.readings["leak_rate_ml_min"]
    assert leak.value == pytest.approx(2.2) and leak.unit == "ml/min" and leak.status == "Good"
    assert RFC3339.match(leak.source_ts)
    assert snap.measurements()["flow_l_min"].status == "Good"


async def test_node_ids_by_index_and_by_namespace_uri_read_the_same_node(sim, client_factory):
    nodes = {"by_uri": {"node_id": NSU + "Flow"}, "by_index": {"node_id": "ns=2;s=Bench.Flow"}}
    client = await client_factory(sim_config(sim, nodes=nodes))
    await sim.set_value("Flow", 21.5)
    for name in nodes:
        reading = await client.wait_reading(name, lambda r: r.value == 21.5, timeout_s=10)
        assert reading.usable


async def test_subscription_delivers_server_side_changes(sim, client_factory):
    client = await client_factory(sim_config(sim))
    await sim.set_value("Current", 11.25)
    reading = await client.wait_reading("current_a", lambda r: r.value == 11.25, timeout_s=10)
    assert reading.status == "Good" and reading.unit == "A"


async def test_rising_edge_of_the_trigger_node_queues_core_id_and_part_number(sim, client_factory):
    client = await client_factory(sim_config(sim))
    await sim.start_test("HPC-000042")
    trigger = await asyncio.wait_for(client.triggers.get(), 10)
    assert (trigger.core_id, trigger.part_number) == ("HPC-000042", "HPC-SC-5K")
    assert await client.identity() == ("HPC-000042", "HPC-SC-5K")
    snap = await client.snapshot(wait_ready=True)
    assert snap.ready is True
    assert snap.readings["current_a"].usable and snap.readings["current_a"].value < 12.5
    await sim.start_test("BAT-000043")  # a second edge: ResultReady fell and rose again
    trigger = await asyncio.wait_for(client.triggers.get(), 10)
    assert trigger.core_id == "BAT-000043"


async def test_start_test_method_runs_a_cycle(sim, client_factory):
    sim.scenario = "out_of_spec"
    client = await client_factory(sim_config(sim))
    link = client._link  # the method call goes over the client's own session
    bench = link.client.get_node("ns=2;s=Bench")
    await bench.call_method("2:StartTest", "HGP-000099")
    trigger = await asyncio.wait_for(client.triggers.get(), 10)
    assert trigger.core_id == "HGP-000099"
    snap = await client.snapshot(wait_ready=True)
    assert snap.readings["leak_rate_ml_min"].value > 5.0  # beyond the gear pump's limit


async def test_a_value_older_than_max_age_is_stale_not_usable(sim, client_factory):
    config = sim_config(sim)
    config.nodes["discharge_pressure_bar"].max_age_s = 60
    client = await client_factory(config)
    await sim.set_value("DischargePressure", 20.0, source_ts=datetime.now(UTC) - timedelta(hours=1))
    reading = await client.wait_reading(
        "discharge_pressure_bar", lambda r: r.status == "Stale", timeout_s=10
    )
    assert not reading.usable and reading.value == 20.0
    assert "old" in reading.reason


async def test_bad_and_uncertain_status_are_kept_and_not_usable(sim, client_factory):
    client = await client_factory(sim_config(sim))
    await sim.set_value("InsulationResistance", None, status="BadSensorFailure")
    bad = await client.wait_reading(
        "insulation_resistance_mohm", lambda r: r.status != "Good", timeout_s=10
    )
    assert (bad.status, bad.value, bad.usable) == ("BadSensorFailure", None, False)
    await sim.set_value("CapacityPct", 91.0, status="UncertainLastUsableValue")
    odd = await client.wait_reading("capacity_pct", lambda r: r.status != "Good", timeout_s=10)
    assert (odd.status, odd.value, odd.usable) == ("UncertainLastUsableValue", 91.0, False)
    assert not (await client.snapshot()).usable


@pytest.mark.expect_errors("bench_unknown_node")
async def test_unknown_nodes_are_named_and_the_client_keeps_running(sim, client_factory, event_log):
    nodes = {
        "leak": {"node_id": NSU + "LeakRate"},
        "ghost": {"node_id": "ns=2;s=Bench.Ghost"},
        "foreign": {"node_id": "nsu=urn:no-such-bench;s=Bench.LeakRate"},
    }
    client = await client_factory(sim_config(sim, nodes=nodes))
    named = " ".join(e.message for e in event_log.events if e.code == "bench_unknown_node")
    assert "Bench.Ghost" in named and "urn:no-such-bench" in named
    snap = await client.snapshot()
    assert snap.readings["ghost"].status == "BadNodeIdUnknown" and not snap.readings["ghost"].usable
    assert "Bench.Ghost" in snap.readings["ghost"].reason
    assert not snap.readings["foreign"].usable
    assert snap.readings["leak"].usable and client.state.state == "connected"


async def test_a_unit_other_than_the_benchs_is_not_used(sim, client_factory, event_log):
    nodes = {
        "leak": {"node_id": NSU + "LeakRate", "unit": "l/h"},
        "flow": {"node_id": NSU + "Flow", "unit": "l/min"},
    }
    client = await client_factory(sim_config(sim, nodes=nodes))
    mismatch = await event_log.wait_for("bench_unit_mismatch")
    assert "ml/min" in mismatch.message and "l/h" in mismatch.message
    snap = await client.snapshot()
    assert (
        snap.readings["leak"].status == "BadConfigurationError"
        and snap.readings["leak"].value is None
    )
    assert snap.readings["flow"].usable


async def test_probe_raises_unknown_node_naming_it(sim):
    config = sim_config(
        sim, nodes={"leak": {"node_id": NSU + "LeakRate"}, "ghost": {"node_id": NSU + "Ghost"}}
    )
    with pytest.raises(UnknownNode, match="Bench.Ghost"):
        await benchtools.probe(config)


async def test_write_back_reaches_the_bench(sim, client_factory):
    client = await client_factory(sim_config(sim))
    assert await client.write_back(code=2, credit=1, seq=42)
    assert [await sim.get_value(n) for n in ("Disposition", "Credit", "Seq")] == [2, 1, 42]


@pytest.mark.expect_errors("bench_writeback_failed", "BadUserAccessDenied")
async def test_write_back_failure_is_an_event_not_a_crash(sim, client_factory, event_log):
    writeback = {"code": NSU + "LeakRate", "seq": NSU + "Seq"}  # LeakRate is read-only
    client = await client_factory(sim_config(sim, writeback=writeback))
    assert await client.write_back(code=2, credit=1, seq=5) is False
    failed = await event_log.wait_for("bench_writeback_failed")
    assert "Bench.LeakRate" in failed.message and client.state.state == "connected"


@pytest.mark.expect_errors("bench_connect_failed")
async def test_wrong_endpoint_gives_a_clear_error_without_hanging(sim, client_factory, event_log):
    nobody = f"opc.tcp://127.0.0.1:{free_port()}/reman/bench"
    client = await client_factory(sim_config(sim, endpoint=nobody, timeout_s=0.5), connect=False)
    failed = await event_log.wait_for("bench_connect_failed")
    assert nobody in failed.message and "cannot be reached" in failed.message
    with pytest.raises(BenchUnavailable, match=re.escape(nobody)):
        await client.wait_connected(timeout_s=0.1)
    assert client.state.state == "disconnected"
    assert (await client.snapshot()).readings["leak_rate_ml_min"].status == "Missing"


async def test_a_server_that_never_answers_times_out(sim):
    silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)  # accepts, says nothing
    port = silent.sockets[0].getsockname()[1]
    try:
        config = sim_config(sim, endpoint=f"opc.tcp://127.0.0.1:{port}/x", timeout_s=0.5)
        with pytest.raises(BenchUnavailable, match="did not answer"):
            await asyncio.wait_for(benchtools.probe(config), 10)
    finally:
        silent.close()


async def test_poll_mode_reads_and_triggers(sim, client_factory):
    client = await client_factory(sim_config(sim, mode="poll", sampling_interval_ms=20))
    assert client.mode == "poll"
    await sim.set_value("LeakRate", 3.5)
    await client.wait_reading("leak_rate_ml_min", lambda r: r.value == 3.5, timeout_s=10)
    # Hold each step longer than a poll so the edge is seen between two reads.
    sim.step_s = 0.3
    await sim.start_test("HGP-000007")
    trigger = await asyncio.wait_for(client.triggers.get(), 10)
    assert trigger.core_id == "HGP-000007"


@pytest.mark.expect_errors("BadTooManySubscriptions", "processing message from client")
async def test_falls_back_to_polling_when_subscriptions_are_refused(client_factory, event_log):
    server, nodes = await start_server()  # a plain asyncua server, not the simulator
    try:
        server.iserver.max_subscriptions = (
            0  # it answers CreateSubscription with BadTooManySubscriptions
        )
        client = await client_factory(sim_config_for_fixture(server.endpoint_url))
        assert client.mode == "poll"
        assert "bench_poll_fallback" in event_log.codes()
        await nodes["leak_rate_ml_min"].write_value(4.5)
        await client.wait_reading("leak", lambda r: r.value == 4.5, timeout_s=10)
        await client.stop()
    finally:
        await server.stop()


async def test_disabled_bench_does_nothing():
    from edge.config.station import BenchConfig

    client = BenchClient(BenchConfig(enabled=False), Events("test-station"))
    await client.start()
    assert client.state.state == "disabled"
    await client.stop()


def sim_config_for_fixture(endpoint: str):
    """A config for the plain asyncua test server of tests/support/opcua.py."""
    from edge.config.station import BenchConfig

    return BenchConfig(
        endpoint=endpoint,
        poll_interval_s=0.05,
        timeout_s=3.0,
        nodes={"leak": {"node_id": "nsu=urn:reman-edge:test-bench;s=Bench.LeakRate"}},
    )


async def test_simulator_cycles_on_its_own_with_cycle_s(sim_factory, client_factory):
    own = await sim_factory(cycle_s=0.5)
    client = await client_factory(sim_config(own))
    first = await asyncio.wait_for(client.triggers.get(), 10)
    second = await asyncio.wait_for(client.triggers.get(), 10)
    assert first.core_id != second.core_id
    assert {first.core_id[:4], second.core_id[:4]} <= {"HGP-", "HPC-", "BAT-"}


async def test_probe_measures_a_bench_clock_a_minute_behind(sim_factory):
    sim = await sim_factory(clock_offset_s=-60)
    result = await benchtools.probe_bench(
        sim_config(sim, nodes={"flow": {"node_id": NSU + "Flow"}})
    )
    assert result.readings["flow"]["status"] == "Good"
    assert 59 < result.clock_skew_s < 61


async def test_a_value_stamped_by_a_slow_bench_clock_is_fresh_and_one_event(
    sim_factory, client_factory, event_log
):
    sim = await sim_factory(clock_offset_s=-60)
    client = await client_factory(sim_config(sim, max_age_s=5))
    skew = await event_log.wait_for("clock_skew")
    await sim.set_value("Flow", 23.5)  # stamped a minute ago by the bench's clock
    reading = await client.wait_reading("flow_l_min", lambda r: r.value == 23.5, timeout_s=10)
    assert reading.usable, reading.reason
    assert reading.source_ts < reading.received_ts
    assert skew.level == "warning" and event_log.codes().count("clock_skew") == 1


async def test_an_old_value_is_stale_on_the_nodes_clock_whatever_the_bench_says(
    sim_factory, client_factory
):
    sim = await sim_factory(clock_offset_s=-60)
    await sim.set_value("Flow", 23.5, source_ts=sim.now() - timedelta(seconds=30))
    client = await client_factory(sim_config(sim, max_age_s=5))
    reading = (await client.snapshot()).readings["flow_l_min"]
    assert reading.status == "Stale" and "limit 5 s" in reading.reason


async def test_clock_skew_is_raised_once_and_again_after_it_recovered():
    seen: list = []
    watch = ClockWatch(5.0, Events("test-station", [seen.append]))
    for skew_s in (60, 61, 59, 4, 1, 0.5, 30, 31):
        watch.update(skew_s)
    assert [e.code for e in seen] == ["clock_skew", "clock_skew_recovered", "clock_skew"]
