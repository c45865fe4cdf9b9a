"""Benchmark the bench client: write-to-notification latency and reads per second, as JSON.

    .venv/bin/python bench/opcua.py [--samples 300] [--interval-ms 10] [--reads 1000]

Runs the bench simulator on a free loopback port and, in the same process, the BenchClient and a
bare asyncua subscription side by side, so that load from other processes hits both alike.

- latency: from a server-side write of Bench.LeakRate to the moment the client has the value
  (BenchClient: the reading is in its cache; bare: asyncua's handler ran). p50 and p99 in ms.
  It includes the subscription's publishing interval (--interval-ms), as it does on a station.
- reads: sequential Read requests of one node, and of all seven measurements in one request,
  per second; and BenchClient.snapshot() calls per second (served from memory).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import time
from pathlib import Path

from asyncua import Client, ua

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.bench.client import BenchClient  # noqa: E402
from edge.bench.simulator import MEASUREMENTS, NAMESPACE_URI, BenchSimulator  # noqa: E402
from edge.config.station import BenchConfig  # noqa: E402
from edge.events import Events  # noqa: E402

NSU = f"nsu={NAMESPACE_URI};s=Bench."


class _Bare:
    """A bare asyncua subscription handler that resolves a future per expected value."""

    def __init__(self) -> None:
        self.waiting: dict[float, asyncio.Future[float]] = {}

    def datachange_notification(self, node, val, data) -> None:  # noqa: ANN001 - asyncua API
        future = self.waiting.pop(val, None)
        if future is not None and not future.done():
            future.set_result(time.perf_counter())


def percentile(values: list[float], pct: float) -> float:
    """The pct-th percentile (nearest rank) of values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))]


async def latency(sim: BenchSimulator, client: BenchClient, bare: _Bare, samples: int) -> dict:
    """Write a new value server-side; time until each client has it."""
    ours, theirs = [], []
    for i in range(samples):
        value = 1000.0 + i
        seen = bare.waiting[value] = asyncio.get_running_loop().create_future()
        start = time.perf_counter()
        await sim.set_value("LeakRate", value)
        await client.wait_reading("leak", lambda r, v=value: r.value == v, timeout_s=10)
        ours.append((time.perf_counter() - start) * 1000)
        theirs.append((await asyncio.wait_for(seen, 10) - start) * 1000)
    return {
        "latency_p50_ms": round(statistics.median(ours), 3),
        "latency_p99_ms": round(percentile(ours, 99), 3),
        "bare_latency_p50_ms": round(statistics.median(theirs), 3),
        "bare_latency_p99_ms": round(percentile(theirs, 99), 3),
        "latency_ratio_p50": round(statistics.median(ours) / statistics.median(theirs), 3),
    }


async def reads(raw: Client, client: BenchClient, count: int) -> dict:
    """Sequential reads per second: one node, seven nodes per request; snapshots per second."""
    ns = await raw.get_namespace_index(NAMESPACE_URI)
    one = [ua.NodeId("Bench.LeakRate", ns)]
    seven = [ua.NodeId(f"Bench.{key}", ns) for key in MEASUREMENTS]
    figures = {}
    for label, ids in (("reads_per_s", one), ("batched_reads_per_s", seven)):
        start = time.perf_counter()
        for _ in range(count):
            await raw.uaclient.read_attributes(ids, ua.AttributeIds.Value)
        figures[label] = round(count / (time.perf_counter() - start), 1)
    figures["values_per_s_batched"] = round(figures["batched_reads_per_s"] * len(seven), 1)
    start = time.perf_counter()
    for _ in range(count):
        await client.snapshot()
    figures["snapshots_per_s"] = round(count / (time.perf_counter() - start), 1)
    return figures


async def main(args: argparse.Namespace) -> dict:
    """Run the benchmark; return the figures."""
    async with BenchSimulator(step_s=0.01) as sim:
        config = BenchConfig(
            endpoint=sim.endpoint,
            sampling_interval_ms=args.interval_ms,
            nodes={"leak": {"node_id": NSU + "LeakRate"}}
            | {k.lower(): {"node_id": NSU + k} for k in MEASUREMENTS if k != "LeakRate"},
        )
        client = BenchClient(config, Events("bench"))
        await client.start()
        await client.wait_connected(10)
        raw = Client(sim.endpoint)
        await raw.connect()
        bare = _Bare()
        sim_ns = await raw.get_namespace_index(NAMESPACE_URI)
        sub = await raw.create_subscription(args.interval_ms, bare)
        await sub.subscribe_data_change(
            raw.get_node(ua.NodeId("Bench.LeakRate", sim_ns)), sampling_interval=args.interval_ms
        )
        try:
            figures = await latency(sim, client, bare, args.samples)
            figures |= await reads(raw, client, args.reads)
        finally:
            await raw.disconnect()
            await client.stop()
    return {
        "samples": args.samples,
        "interval_ms": args.interval_ms,
        **figures,
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=300, help="Writes timed for latency.")
    parser.add_argument(
        "--interval-ms", type=float, default=10.0, help="Sampling and publishing interval."
    )
    parser.add_argument("--reads", type=int, default=1000, help="Read requests timed per kind.")
    logging.basicConfig(level=logging.ERROR)
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
