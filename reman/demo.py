"""`reman demo`: the whole station on one machine.

A flat list of parts, started in order and stopped in reverse: Debian's mosquitto on a loopback
port with a config of its own, the OPC UA bench simulator cycling through cores of the example
families, an edge node grading generated core images from a folder camera, and the dashboard.
Each part is its own process (`reman bench-sim`, `reman node`, `reman gateway`), so a part that
fails is reported by name and the others are stopped cleanly.
"""

from __future__ import annotations

import json
import logging
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt

from edge.contract import AVAILABLE_ONLINE, Topics
from edge.errors import BrokerError
from edge.journal.lock import ProcessLock
from edge.mqtt.mosquitto import MosquittoProcess
from edge.ports import free_port
from reman.errors import DemoError

log = logging.getLogger("reman.demo")

REPO = Path(__file__).resolve().parent.parent
DEMO_USER = "engineer"
DEMO_ADMIN = "admin"  # promotes and rolls back models, manages accounts
STATION = "demo-1"
MAX_RESTARTS = 5
DEMO_CORES = 24
MEASUREMENT_NODES = {
    "leak_rate_ml_min": ("Bench.LeakRate", "ml/min"),
    "flow_l_min": ("Bench.Flow", "l/min"),
    "current_a": ("Bench.Current", "A"),
    "discharge_pressure_bar": ("Bench.DischargePressure", "bar"),
    "insulation_resistance_mohm": ("Bench.InsulationResistance", "MOhm"),
    "capacity_pct": ("Bench.CapacityPct", "%"),
    "internal_resistance_mohm": ("Bench.InternalResistance", "mOhm"),
}
NAMESPACE = "urn:reman-edge:bench-sim"


def wait_for_port(port: int, timeout_s: float, part: Part) -> None:
    """Block until 127.0.0.1:port accepts connections; fail early if the part's process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if part.proc is not None and part.proc.poll() is not None:
            raise DemoError(
                f"{part.name} exited with code {part.proc.returncode}; see {part.log_path}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)  # polling a port that is coming up
    raise DemoError(
        f"{part.name} did not listen on 127.0.0.1:{port} within {timeout_s:.0f} s; see {part.log_path}"
    )


@dataclass
class Part:
    """One process of the demo."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    ready_timeout_s: float = 60.0
    proc: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the process and wait until it listens on its port."""
        log_file = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log_file.close()
        wait_for_port(self.port, self.ready_timeout_s, self)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after timeout_s; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s; killing it", self.name, timeout_s)
            self.proc.kill()
            return self.proc.wait()


@dataclass
class BrokerPart:
    """Debian's mosquitto with the demo's own config."""

    broker: MosquittoProcess
    name: str = "mosquitto"

    @property
    def log_path(self) -> Path:
        return self.broker.log_path

    def start(self) -> None:
        try:
            self.broker.start()
        except BrokerError as exc:
            raise DemoError(str(exc)) from exc

    def alive(self) -> bool:
        return self.broker.running

    def stop(self) -> int | None:
        self.broker.stop()
        return 0


class PlcSimulator:
    """Stands in for the PLC: acknowledges every result on ack/set, as docs/mqtt.md describes.

    It also tells the demo when the node is online (its retained `available` message).
    """

    name = "PLC simulator"

    def __init__(self, port: int, station: str):
        self.topics = Topics(station)
        self.online = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"demo-plc-{station}", protocol=mqtt.MQTTv5
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.port = port

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        client.subscribe([(self.topics.result, 1), (self.topics.available, 1)])

    def _on_message(self, client, userdata, message):
        if message.topic == self.topics.available:
            if message.payload.decode(errors="replace") == AVAILABLE_ONLINE:
                self.online.set()
            return
        try:
            seq = json.loads(message.payload)["seq"]
        except (ValueError, KeyError, TypeError):
            return
        client.publish(self.topics.ack_set, json.dumps({"seq": seq}, separators=(",", ":")), qos=1)

    def start(self) -> None:
        self.client.connect("127.0.0.1", self.port)
        self.client.loop_start()

    def alive(self) -> bool:
        return True

    def stop(self) -> int | None:
        self.client.loop_stop()
        self.client.disconnect()
        return 0


@dataclass
class Demo:
    """The demo's parts, files and ports."""

    data_dir: Path
    http_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    opcua_port: int = field(default_factory=free_port)
    interval_s: float = 5.0
    parts: list[Part] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/"

    def prepare(self) -> str:
        """Write images, configs and the demo account; return the account's password."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "logs").mkdir(exist_ok=True)
        make_core_images(self.data_dir / "cores", DEMO_CORES)
        (self.data_dir / "station.yaml").write_text(self.station_config())
        (self.data_dir / "gateway.yaml").write_text(self.gateway_config())
        return self.ensure_user()

    def station_config(self) -> str:
        nodes = "".join(
            f'    {name}:\n      node_id: nsu={NAMESPACE};s={node}\n      unit: "{unit}"\n'
            for name, (node, unit) in MEASUREMENT_NODES.items()
        )
        return f"""# Written by reman demo.
station_id: {STATION}
site: reman-edge demo
mqtt:
  host: 127.0.0.1
  port: {self.mqtt_port}
bench:
  enabled: true
  endpoint: opc.tcp://127.0.0.1:{self.opcua_port}/reman/bench
  max_age_s: {max(30.0, self.interval_s * 3)}
  nodes:
{nodes}  trigger_node: nsu={NAMESPACE};s=Bench.ResultReady
  core_id_node: nsu={NAMESPACE};s=Bench.CoreId
  part_number_node: nsu={NAMESPACE};s=Bench.PartNumber
  writeback:
    code: nsu={NAMESPACE};s=Bench.Disposition
    credit: nsu={NAMESPACE};s=Bench.Credit
    seq: nsu={NAMESPACE};s=Bench.Seq
camera:
  source: folder
  path: cores
model:
  path: {REPO / "models" / "reman-seg.onnx"}
families_dir: {REPO / "config" / "families"}
core_id:
  sources: [trigger, bench, label]
  policy: review
journal:
  path: journal.db
  images_dir: images
stats:
  interval_s: 5
"""

    def gateway_config(self) -> str:
        existing = self.data_dir / "gateway.yaml"
        users = ""
        if existing.exists():
            text = existing.read_text()
            users = text[text.index("users:") :] if "users:" in text else ""
        return f"""# Written by reman demo.
http:
  host: 127.0.0.1
  port: {self.http_port}
  session_secret_file: {self.data_dir / "session-secret"}
mqtt:
  host: 127.0.0.1
  port: {self.mqtt_port}
store:
  path: {self.data_dir / "gateway.db"}
  snapshots_dir: {self.data_dir / "snapshots"}
kiosk:
  enabled: true
{users or "users: []"}
"""

    def ensure_user(self) -> str:
        """Create the demo engineer and admin accounts once; return the engineer's password."""
        secret = self.data_dir / "session-secret"
        if not secret.exists():
            secret.write_text(secrets.token_urlsafe(32))
            secret.chmod(0o600)
        self.ensure_account(DEMO_ADMIN, "admin", "demo-admin-password")
        return self.ensure_account(DEMO_USER, "engineer", "demo-password")

    def ensure_account(self, username: str, role: str, file_name: str) -> str:
        """The password of a demo account, made (with the password in `file_name`) if missing."""
        password_file = self.data_dir / file_name
        users = (self.data_dir / "gateway.yaml").read_text()
        if password_file.exists() and f"username: {username}\n" in users:
            return password_file.read_text().strip()
        password = secrets.token_urlsafe(9)
        password_file.write_text(password + "\n")
        password_file.chmod(0o600)
        config = str(self.data_dir / "gateway.yaml")
        run_reman(
            [
                "gateway",
                "adduser",
                "--config",
                config,
                username,
                "--role",
                role,
                "--password-file",
                str(password_file),
            ]
        )
        return password

    def admin_password(self) -> str:
        """The demo admin's password (prepare() made it)."""
        return (self.data_dir / "demo-admin-password").read_text().strip()

    def build_parts(self) -> list:
        """Every part in start order."""
        logs = self.data_dir / "logs"
        reman = [sys.executable, "-m", "reman"]
        return [
            BrokerPart(MosquittoProcess(self.data_dir / "mosquitto", self.mqtt_port)),
            PlcSimulator(self.mqtt_port, STATION),
            Part(
                "bench simulator",
                [
                    *reman,
                    "bench-sim",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.opcua_port),
                    "--scenario",
                    "normal",
                    "--cycle-s",
                    str(self.interval_s),
                ],
                self.opcua_port,
                logs / "bench-sim.log",
            ),
            Part(
                "gateway",
                [*reman, "gateway", "--config", str(self.data_dir / "gateway.yaml")],
                self.http_port,
                logs / "gateway.log",
            ),
            Part(
                "edge node",
                [*reman, "node", "--config", str(self.data_dir / "station.yaml")],
                self.mqtt_port,
                logs / "node.log",
            ),
        ]

    def wait_node_online(self, timeout_s: float = 60.0) -> None:
        """Wait for the node's retained `online`; fail early when its process died."""
        plc = next(p for p in self.parts if isinstance(p, PlcSimulator))
        node = self.parts[-1]
        deadline = time.monotonic() + timeout_s
        while not plc.online.wait(0.2):
            if not node.alive():
                code = node.proc.returncode if node.proc is not None else None
                raise DemoError(f"{node.name} exited with code {code}; see {node.log_path}")
            if time.monotonic() > deadline:
                raise DemoError(
                    f"{node.name} did not come online within {timeout_s:.0f} s; see {node.log_path}"
                )

    def start(self) -> None:
        """Start every part in order; on failure stop what started and raise DemoError."""
        self.parts = []
        for part in self.build_parts():
            log.info("starting %s", part.name)
            self.parts.append(part)
            try:
                part.start()
            except DemoError:
                self.stop()
                raise
        try:
            self.wait_node_online()
        except DemoError:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop every part in reverse order."""
        for part in reversed(self.parts):
            code = part.stop()
            log.info("stopped %s (exit %s)", part.name, code)

    def watch(self, stop: threading.Event, echo=print) -> None:
        """Wait for stop; restart a part that died, as systemd's Restart=on-failure would.

        A part that dies more than MAX_RESTARTS times ends the demo with an error.
        """
        restarts: dict[str, int] = {}
        while not stop.wait(0.5):
            for part in self.parts:
                if part.alive():
                    continue
                restarts[part.name] = restarts.get(part.name, 0) + 1
                if restarts[part.name] > MAX_RESTARTS:
                    raise DemoError(f"{part.name} keeps stopping; see {part.log_path}")
                echo(f"{part.name} stopped unexpectedly; restarting it (see {part.log_path})")
                part.start()


def run_reman(args: list[str]) -> None:
    """Run a reman command in a child process; raise DemoError with its output on failure."""
    done = subprocess.run([sys.executable, "-m", "reman", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise DemoError(
            f"reman {' '.join(args[:2])} failed: {done.stderr.strip() or done.stdout.strip()}"
        )


def make_core_images(folder: Path, count: int) -> None:
    """Generated core photographs for the folder camera (made once)."""
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.jpg"))) >= count:
        return
    import cv2

    from vision.synth import generate_core

    for i in range(count):
        core = generate_core(seed=10_000 + i)
        cv2.imwrite(str(folder / f"core-{i:03d}.jpg"), core.image, [cv2.IMWRITE_JPEG_QUALITY, 90])


def run_demo(demo: Demo, stop: threading.Event, echo=print) -> None:
    """Prepare, start, print how to use it, run until stop is set, then stop everything.

    Raises DemoError, before anything starts, when another demo runs with the same data folder.
    """
    demo.data_dir.mkdir(parents=True, exist_ok=True)
    lock = ProcessLock(demo.data_dir / ".demo.lock")
    holder = lock.acquire()
    if holder is not None:
        pid = f" (pid {holder})" if holder else ""
        raise DemoError(
            f"another reman demo runs with {demo.data_dir}{pid}: stop it (Ctrl-C where it runs), "
            "or start this one with --data-dir OTHER"
        )
    try:
        _run(demo, stop, echo)
    finally:
        lock.release()


def _run(demo: Demo, stop: threading.Event, echo) -> None:
    password = demo.prepare()
    demo.start()
    try:
        echo(f"reman-edge demo is running. Dashboard: {demo.url}")
        echo(f"  log in as {DEMO_USER} / {password}   (kiosk view: {demo.url}kiosk/{STATION})")
        echo(f"  or as {DEMO_ADMIN} / {demo.admin_password()}   (models page: promote, roll back)")
        echo(f"  MQTT: mqtt://127.0.0.1:{demo.mqtt_port}  (topics reman/{STATION}/#)")
        echo(f"  OPC UA bench: opc.tcp://127.0.0.1:{demo.opcua_port}/reman/bench")
        echo(f"  data and logs: {demo.data_dir}")
        echo("  Ctrl-C stops everything.")
        demo.watch(stop, echo)
    finally:
        demo.stop()
