"""The whole station: trigger-to-result latency, sustained inspections per second, node memory.

    .venv/bin/python bench/station.py [--latency-n 200] [--burst 400] [--size 480x640] [--cpus 2] [--model PATH]

Runs `reman node` as its own process (pinned to `--cpus` cores) against a mosquitto of its own
on a free loopback port and the bench simulator, with a folder camera of generated cores
(vision.synth) and the reference model (models/reman-seg.onnx; the toy colour model from the
tests when the reference model is not there, which the output says). The driver publishes
`trigger/set` and takes the time until the `result` arrives, so the figure covers MQTT in and
out, capture from the folder (no exposure), core id, frame checks, grading, overlay, bench
snapshot, rules, the journal commit (WAL, synchronous=FULL) and the outbox drain.

- latency: one trigger at a time, p50 and p99 (budget: p99 at most 150 ms);
- throughput: `--burst` triggers at once into a queue that holds them all, inspections per
  second from the first trigger to the last result (budget: at least 20 on 2 cores);
- memory: the node's peak RSS (VmHWM) with the model loaded (budget: at most 300 MB);
- ratio: latency p50 over the bare `Grader.grade` of one image in this process, the same
  images, in the same run (how much the station adds to the model). The bare grades are taken
  between the latency triggers, one after each inspection once the node is idle again (its
  snapshot arrived), so both figures see the machine under the same load.

Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import paho.mqtt.client as paho

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.bench.simulator import BenchSimulator  # noqa: E402
from edge.mqtt.mosquitto import start_mosquitto  # noqa: E402
from edge.station.health import percentile  # noqa: E402
from vision.synth import generate_core  # noqa: E402

REFERENCE_MODEL = ROOT / "models" / "reman-seg.onnx"
BUDGETS = {"latency_p99_ms": 150.0, "inspections_per_s": 20.0, "rss_mb": 300.0}
STATION = "bench-station"
WARM_UP = 10  # inspections before the latency figures count
NSU = "nsu=urn:reman-edge:bench-sim;s=Bench."


# ---------------------------------------------------------------- set-up


def model_path(work: Path, chosen: Path | None = None) -> tuple[Path, str]:
    """The chosen model, else the reference model, else the tests' toy model."""
    if chosen is not None:
        return chosen, str(chosen)
    if REFERENCE_MODEL.exists():
        return REFERENCE_MODEL, "reference"
    from tests.vision.toy_models import colour_segmenter

    return colour_segmenter(work / "toy-seg.onnx"), "toy (models/reman-seg.onnx not found)"


def write_cores(folder: Path, count: int, size: tuple[int, int]) -> list[Path]:
    """Generated core photographs as JPEG files, as a camera would deliver them."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"core-{i:03d}.jpg"
        cv2.imwrite(
            str(path),
            generate_core(seed=50_000 + i, size=size).image,
            [cv2.IMWRITE_JPEG_QUALITY, 90],
        )
        paths.append(path)
    return paths


def station_yaml(work: Path, model: Path, mqtt_port: int, endpoint: str) -> Path:
    """The node's config (JSON is YAML)."""
    config = {
        "station_id": STATION,
        "mqtt": {"host": "127.0.0.1", "port": mqtt_port},
        "bench": {
            "enabled": True,
            "endpoint": endpoint,
            "max_age_s": 3600,
            "nodes": {
                "leak_rate_ml_min": {"node_id": NSU + "LeakRate", "unit": "ml/min"},
                "flow_l_min": {"node_id": NSU + "Flow", "unit": "l/min"},
            },
        },
        "camera": {"source": "folder", "path": str(work / "cores")},
        "model": {"path": str(model), "threads": 1},
        "families_dir": str(ROOT / "config" / "families"),
        "trigger": {"queue_size": 1000, "overflow": "drop_new"},
        "journal": {"path": str(work / "journal.db"), "images_dir": str(work / "images")},
        "stats": {"interval_s": 3600},
    }
    path = work / "station.yaml"
    path.write_text(json.dumps(config, indent=2))
    return path


class BenchThread:
    """The bench simulator on its own event loop in a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sim = BenchSimulator(host="127.0.0.1")
        asyncio.run_coroutine_threadsafe(self.sim.start(), self.loop).result(30)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.sim.close(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class Driver:
    """Publishes triggers and takes the arrival time of each result."""

    def __init__(self, port: int):
        self.results: queue.Queue[tuple[float, dict]] = queue.Queue()
        self.snapshots: queue.Queue[float] = queue.Queue()
        self.online = threading.Event()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id="bench-driver", protocol=paho.MQTTv5
        )
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", port)
        # Small messages go out at once, as the node's client sends them (no Nagle delay).
        sock = self.client.socket()
        assert isinstance(sock, socket.socket)  # connected just now
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.client.subscribe(
            [
                (f"reman/{STATION}/result", 1),
                (f"reman/{STATION}/available", 1),
                (f"reman/{STATION}/snapshot", 1),
            ]
        )
        self.client.loop_start()

    def _message(self, client, userdata, msg) -> None:
        if msg.topic.endswith("/available"):
            if msg.payload == b"online":
                self.online.set()
            return
        if msg.topic.endswith("/snapshot"):
            self.snapshots.put(time.perf_counter())
            return
        if not msg.retain:
            self.results.put((time.perf_counter(), json.loads(msg.payload)))

    def trigger(self, core: str) -> float:
        sent = time.perf_counter()
        self.client.publish(f"reman/{STATION}/trigger/set", json.dumps({"core": core}), qos=1)
        return sent

    def result(self, timeout_s: float = 30.0) -> tuple[float, dict]:
        return self.results.get(timeout=timeout_s)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


# ---------------------------------------------------------------- measurements


def measure_latency(
    driver: Driver, count: int, bare: BareGrade | None = None
) -> tuple[list[float], list[float]]:
    """Trigger-to-result milliseconds, one trigger at a time, each once the node is idle again
    (the last inspection's snapshot arrived); with `bare`, one bare grade after each."""
    out, grades = [], []
    for i in range(count):
        sent = driver.trigger(f"HGP-{i:06d}")
        arrived, _ = driver.result()
        out.append((arrived - sent) * 1000)
        driver.snapshots.get(timeout=30)
        if bare is not None:
            grades.append(bare.once(i))
    return out, grades


def measure_throughput(driver: Driver, count: int) -> float:
    """Inspections per second for `count` triggers sent at once."""
    first = driver.trigger("HGP-900000")
    for i in range(1, count):
        driver.trigger(f"HGP-9{i:05d}")
    last = first
    for _ in range(count):
        last, _ = driver.result(120)
    return count / (last - first)


class BareGrade:
    """Grader.grade on the same images in this process (one thread), one at a time."""

    def __init__(self, model: Path, images: list[Path]):
        from vision.grader import Grader
        from vision.imageio import read_image

        self.grader = Grader.load(model, threads=1)
        self.frames = [read_image(p) for p in images]
        for frame in self.frames[:3]:  # warm-up
            self.grader.grade(frame)

    def once(self, i: int) -> float:
        """Milliseconds to grade the i-th image (cycling through them)."""
        start = time.perf_counter()
        self.grader.grade(self.frames[i % len(self.frames)])
        return (time.perf_counter() - start) * 1000


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (peak resident memory) of a process, MB."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def stage_p50(journal_path: Path, last_seq: int) -> dict[str, float]:
    """p50 per stage from the timings_ms of the records up to `last_seq` (the latency phase,
    where no trigger waited in the queue)."""
    from edge.journal.journal import Journal

    with Journal.open(journal_path, check=False) as journal:
        records = [r for r in journal.find(limit=None) if r.seq <= last_seq]
    stages: dict[str, list[float]] = {}
    for record in records:
        for stage, ms in record.timings_ms.items():
            stages.setdefault(stage, []).append(ms)
    return {stage: round(statistics.median(v), 2) for stage, v in stages.items()}


# ---------------------------------------------------------------- the run


def start_node(config: Path, cpus: int) -> subprocess.Popen:
    """`reman node` pinned to the first `cpus` cores, its log beside the config."""
    cores = sorted(os.sched_getaffinity(0))[:cpus]
    with open(config.parent / "node.log", "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "reman", "node", "--config", str(config)],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=log,
            preexec_fn=lambda: os.sched_setaffinity(0, cores),
        )


def run(args: argparse.Namespace) -> dict:
    height, width = (int(x) for x in args.size.split("x"))
    size = (height, width)
    with tempfile.TemporaryDirectory(prefix="reman-bench-station-") as tmp:
        work = Path(tmp)
        model, model_kind = model_path(work, args.model)
        images = write_cores(work / "cores", 24, size)
        broker = start_mosquitto(work / "mosquitto")
        bench = BenchThread()
        node = start_node(station_yaml(work, model, broker.port, bench.sim.endpoint), args.cpus)
        driver = Driver(broker.port)
        bare = BareGrade(model, images)
        try:
            if not driver.online.wait(120):
                raise SystemExit(
                    "the node did not come online within 120 s:\n" + (work / "node.log").read_text()
                )
            try:
                measure_latency(driver, WARM_UP)
            except queue.Empty:
                raise SystemExit(
                    "no result within 30 s:\n" + (work / "node.log").read_text()[-3000:]
                ) from None
            latency, grades = measure_latency(driver, args.latency_n, bare)
            rate = measure_throughput(driver, args.burst)
            rss = peak_rss_mb(node.pid)
        finally:
            driver.close()
            node.terminate()
            node.wait(60)
            bench.close()
            broker.stop()
        grade_ms = statistics.median(grades)
        stages = stage_p50(work / "journal.db", last_seq=WARM_UP + args.latency_n)
    ordered = sorted(latency)
    p50 = percentile(ordered, 50)
    assert p50 is not None  # there were latency samples
    figures = {
        "model": model_kind,
        "image_size": list(size),
        "cpus": args.cpus,
        "latency_ms": {
            "n": len(latency),
            "p50": percentile(ordered, 50),
            "p99": percentile(ordered, 99),
            "max": round(ordered[-1], 3),
        },
        "inspections_per_s": round(rate, 1),
        "burst": args.burst,
        "rss_mb": rss,
        "bare_grade_p50_ms": round(grade_ms, 2),
        "latency_over_bare_grade": round(p50 / grade_ms, 2),
        "stage_p50_ms": stages,  # latency phase; "total" is trigger received to decision
        "budgets": BUDGETS,
    }
    figures["within_budget"] = {
        "latency_p99_ms": figures["latency_ms"]["p99"] <= BUDGETS["latency_p99_ms"],
        "inspections_per_s": figures["inspections_per_s"] >= BUDGETS["inspections_per_s"],
        "rss_mb": rss is not None and rss <= BUDGETS["rss_mb"],
    }
    return figures


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--latency-n", type=int, default=200, help="triggers for the latency figures"
    )
    parser.add_argument(
        "--burst", type=int, default=400, help="triggers sent at once for throughput (<= 1000)"
    )
    parser.add_argument("--size", default="480x640", help="generated image size, HEIGHTxWIDTH")
    parser.add_argument("--cpus", type=int, default=2, help="cores the node process may use")
    parser.add_argument(
        "--model", type=Path, default=None, help="ONNX model (default: models/reman-seg.onnx)"
    )
    args = parser.parse_args(argv)
    print(json.dumps(run(args), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
