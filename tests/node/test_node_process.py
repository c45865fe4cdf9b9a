"""`reman node --config ...` as a process: start-up checks, SIGTERM mid-inspection loses nothing."""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time

from edge.bench.simulator import BenchSimulator
from edge.journal.journal import Journal
from tests.support.stations import (
    NSU,
    REPO,
    clean_core,
    station_config,
    write_config,
    write_folder,
)


class NodeProcess:
    """`reman node` in a child process, its log lines collected as they come."""

    def __init__(
        self, config_path, env: dict[str, str] | None = None, expect_errors: tuple[str, ...] = ()
    ):
        self.expect_errors = expect_errors  # texts of ERROR lines this test provokes on purpose
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "reman", "node", "--config", str(config_path)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self._queue.put(line.rstrip())

    def wait_line(self, text: str, timeout_s: float = 60.0) -> str:
        """The first log line containing `text`."""
        for line in self.lines:
            if text in line:
                return line
        deadline = time.monotonic() + timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            self.lines.append(line)
            if text in line:
                return line
        raise TimeoutError(
            f"no log line with {text!r}; log so far:\n" + "\n".join(self.lines[-40:])
        )

    def log(self) -> str:
        while not self._queue.empty():
            self.lines.append(self._queue.get())
        return "\n".join(self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        self.proc.stderr.close()
        unexpected = [
            line
            for line in self.log().splitlines()
            if " ERROR " in line and not any(text in line for text in self.expect_errors)
        ]
        assert not unexpected, "the node logged errors:\n" + "\n".join(unexpected[:5])


def notify_socket(path) -> socket.socket:
    """A Unix datagram socket like the one systemd hands a Type=notify service."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(60)
    return sock


def test_sigterm_mid_inspection_loses_nothing(tmp_path, mosquitto, listener_factory):
    camera = write_folder(tmp_path / "cores", [clean_core(i) for i in range(3)])
    data = station_config(tmp_path, mosquitto, camera=camera)
    data["camera"]["views"] = 4  # a longer inspection, so the signal lands while one runs
    config = write_config(tmp_path / "station.yaml", data)
    prefix = f"reman/{data['station_id']}"
    listener = listener_factory(mosquitto, f"{prefix}/#")
    systemd = notify_socket(tmp_path / "notify.sock")
    node = NodeProcess(
        config, env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "2000000"}
    )
    try:
        assert systemd.recv(256).startswith(b"READY=1"), node.log()
        assert systemd.recv(256) == b"WATCHDOG=1"
        for i in range(3):
            listener.client.publish(
                f"{prefix}/trigger/set", json.dumps({"core": f"HGP-00090{i}"}), qos=1
            )
        node.wait_line("inspection started")
        node.proc.send_signal(signal.SIGTERM)
        assert node.proc.wait(60) == 0, node.log()
        assert listener.wait_for(
            lambda m: m.topic == f"{prefix}/available" and m.payload == b"offline", 10
        )
        assert b"STOPPING=1" in _datagrams(systemd)
    finally:
        node.stop()
        systemd.close()
    log = node.log()
    assert "check ok: model: toy-seg" in log and "stopping:" in log
    with Journal.open(data["journal"]["path"]) as journal:
        records = journal.find()
        undelivered = journal.outbox.depth()[0]
        dropped = journal.db.conn.execute(
            "SELECT count(*) FROM events WHERE code = 'trigger_dropped'"
        ).fetchone()[0]
    assert records and undelivered == 0, "every journaled message was delivered before exit"
    received = log.count("mqtt trigger received")
    assert received >= 1 and len(records) + dropped == received, (
        "each trigger taken was inspected or reported"
    )
    results = [json.loads(m.payload) for m in listener.drain() if m.topic == f"{prefix}/result"]
    assert [r["seq"] for r in results] == [r.seq for r in records]


def _datagrams(sock: socket.socket) -> list[bytes]:
    """Every datagram already waiting on the socket."""
    sock.setblocking(False)
    out = []
    while True:
        try:
            out.append(sock.recv(256))
        except BlockingIOError:
            return out


def test_a_wrong_model_stops_the_start_with_a_clear_message(tmp_path, mosquitto):
    camera = write_folder(tmp_path / "cores", [clean_core()])
    data = station_config(tmp_path, mosquitto, camera=camera)
    data["model"]["path"] = str(tmp_path / "missing.onnx")
    config = write_config(tmp_path / "station.yaml", data)
    done = subprocess.run(
        [sys.executable, "-m", "reman", "node", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert "error: model:" in done.stderr and "missing.onnx" in done.stderr
    assert "Traceback" not in done.stderr


def test_validate_config_names_file_line_and_key(tmp_path, mosquitto):
    camera = write_folder(tmp_path / "cores", [clean_core()])
    good = write_config(
        tmp_path / "station.yaml", station_config(tmp_path, mosquitto, camera=camera)
    )
    done = subprocess.run(
        [sys.executable, "-m", "reman", "node", "--config", str(good), "--validate-config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "ok:" in done.stdout
    data = json.loads(good.read_text())
    data["stats"]["interval_s"] = -1
    bad = write_config(tmp_path / "bad.yaml", data)
    line = next(
        i for i, text in enumerate(bad.read_text().splitlines(), 1) if '"interval_s": -1' in text
    )
    done = subprocess.run(
        [sys.executable, "-m", "reman", "node", "--config", str(bad), "--validate-config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert f"bad.yaml:{line}: stats.interval_s: Input should be greater than 0" in done.stderr


async def test_sigkill_mid_inspection_is_recorded_as_interrupted_at_restart(
    tmp_path, mosquitto, listener_factory
):
    """The trigger in hand when the node is killed is journaled; the restart records it."""
    camera = write_folder(tmp_path / "cores", [clean_core()])
    async with BenchSimulator(host="127.0.0.1", scenario="normal", step_s=0.02) as sim:
        data = station_config(tmp_path, mosquitto, camera=camera, bench=sim)
        del data["bench"]["trigger_node"]  # only MQTT triggers here
        # The bench never says its result is ready: the inspection waits in the bench stage.
        data["bench"].update(result_ready_node=NSU + "ResultReady", result_ready_timeout_s=300)
        config = write_config(tmp_path / "station.yaml", data)
        prefix = f"reman/{data['station_id']}"
        listener = listener_factory(mosquitto, f"{prefix}/#")
        node = NodeProcess(config)
        try:
            await asyncio.to_thread(node.wait_line, "node_started")  # subscribed, bench up
            listener.client.publish(f"{prefix}/trigger/set", '{"core":"HGP-000777"}', qos=1)
            await asyncio.to_thread(node.wait_line, "inspection started")
            node.proc.kill()
            node.proc.wait(10)
        finally:
            node.stop()
        node = NodeProcess(config)
        try:
            interrupted = json.loads(
                (
                    await asyncio.to_thread(
                        listener.wait_for, lambda m: m.topic == f"{prefix}/inspection", 60
                    )
                ).payload
            )
            event = json.loads(
                (
                    await asyncio.to_thread(
                        listener.wait_for,
                        lambda m: (
                            m.topic == f"{prefix}/event"
                            and json.loads(m.payload)["code"] == "inspection_interrupted"
                        ),
                        30,
                    )
                ).payload
            )
            await sim.set_value("ResultReady", True)
            listener.client.publish(f"{prefix}/trigger/set", '{"core":"HGP-000778"}', qos=1)
            results = await asyncio.to_thread(
                listener.wait_for,
                lambda m: m.topic == f"{prefix}/result" and b"HGP-000778" in m.payload,
                60,
            )
        finally:
            node.stop()
    assert interrupted["core_id"] == "HGP-000777" and interrupted["seq"] == 1
    assert interrupted["decision"]["code"] == 0
    assert interrupted["decision"]["reasons"][0]["code"] == "inspection_interrupted"
    assert event["level"] == "warning" and event["detail"]["core_id"] == "HGP-000777"
    assert json.loads(results.payload)["seq"] == 2  # no seq was burned by the kill
    with Journal.open(data["journal"]["path"]) as journal:
        assert sorted(r.seq for r in journal.find()) == [1, 2]
        assert journal.interrupted_triggers() == []
