"""Fixtures for the bench client: the bench simulator, clients, and an event log to wait on.

An asyncua server takes a second or two to build its address space, so the tests of a module
share one event loop (`pytestmark = pytest.mark.asyncio(loop_scope="module")`) and one simulator
(`sim`, reset before each test); a test that stops its server makes its own (`sim_factory`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import pytest_asyncio

from edge.bench.client import BenchClient
from edge.bench.simulator import NAMESPACE_URI, BenchSimulator
from edge.config.station import BenchConfig
from edge.contract import Event
from edge.events import Events

NSU = f"nsu={NAMESPACE_URI};s=Bench."
ALL_MEASUREMENTS = {
    "leak_rate_ml_min": ("LeakRate", "ml/min"),
    "flow_l_min": ("Flow", "l/min"),
    "current_a": ("Current", "A"),
    "discharge_pressure_bar": ("DischargePressure", "bar"),
    "insulation_resistance_mohm": ("InsulationResistance", "MOhm"),
    "capacity_pct": ("CapacityPct", "%"),
    "internal_resistance_mohm": ("InternalResistance", "mOhm"),
}


def sim_config(sim: BenchSimulator, **overrides: Any) -> BenchConfig:
    """A bench config for the simulator: every measurement by namespace URI, fast timings."""
    settings: dict[str, Any] = {
        "endpoint": sim.endpoint,
        "sampling_interval_ms": 20,
        "poll_interval_s": 0.05,
        "timeout_s": 3.0,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 0.5,
        "nodes": {
            name: {"node_id": NSU + node, "unit": unit}
            for name, (node, unit) in ALL_MEASUREMENTS.items()
        },
        "trigger_node": NSU + "ResultReady",
        "core_id_node": NSU + "CoreId",
        "part_number_node": NSU + "PartNumber",
        "result_ready_node": NSU + "ResultReady",
        "result_ready_timeout_s": 5.0,
        "writeback": {"code": NSU + "Disposition", "credit": NSU + "Credit", "seq": NSU + "Seq"},
    }
    settings.update(overrides)
    return BenchConfig(**settings)


class EventLog:
    """An Events sink that tests can wait on."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()
        self._changed = asyncio.Event()

    def codes(self) -> list[str]:
        """Event codes in order."""
        return [e.code for e in self.events]

    async def wait_for(self, code: str, timeout_s: float = 10.0, after: int = 0) -> Event:
        """The first event with `code` at index `after` or later, waiting up to timeout_s."""

        async def first() -> Event:
            while True:
                changed = self._changed
                for event in self.events[after:]:
                    if event.code == code:
                        return event
                await changed.wait()

        return await asyncio.wait_for(first(), timeout_s)


@pytest.fixture
def event_log() -> EventLog:
    """Events recorded by the clients of one test."""
    return EventLog()


@pytest_asyncio.fixture(loop_scope="module")
async def client_factory(event_log: EventLog):
    """Start BenchClients that report to event_log; all stopped at the end."""
    clients: list[BenchClient] = []

    async def make(config: BenchConfig, connect: bool = True) -> BenchClient:
        client = BenchClient(config, Events("test-station", [event_log]))
        clients.append(client)
        await client.start()
        if connect:
            await client.wait_connected(10.0)
        return client

    yield make
    for client in clients:
        await client.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_sim():
    """One simulator for a module's tests."""
    sim = BenchSimulator(step_s=0.05, seed=7)
    await sim.start()
    yield sim
    await sim.close()


@pytest_asyncio.fixture(loop_scope="module")
async def sim(shared_sim: BenchSimulator) -> BenchSimulator:
    """The module's simulator with every value back at its start."""
    shared_sim.step_s = 0.05
    shared_sim.scenario = "normal"
    await shared_sim.reset()
    return shared_sim


@pytest_asyncio.fixture(loop_scope="module")
async def sim_factory():
    """Start bench simulators a test may stop and restart; all closed at the end."""
    sims: list[BenchSimulator] = []

    async def make(**kwargs: Any) -> BenchSimulator:
        sim = BenchSimulator(step_s=0.05, seed=7, **kwargs)
        sims.append(sim)
        await sim.start()
        return sim

    yield make
    for sim in sims:
        await sim.close()
