"""The Last Will: `offline` (retained) when the node's process dies; `online` after each connect."""

from __future__ import annotations

import signal
import subprocess
import sys

from tests.conftest import REPO
from tests.support.nodes import Subscriber


def start_node(port: int, station: str, db_path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.node_proc", str(port), station, str(db_path)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    return proc


def wait_line(proc: subprocess.Popen, text: str) -> None:
    for line in proc.stdout:
        if line.strip() == text:
            return
    raise AssertionError(f"node process ended before printing {text!r} (rc {proc.wait()})")


def test_will_is_published_when_node_is_killed(mosquitto, tmp_path, subscribers):
    topic = "reman/will-st/available"
    sub = Subscriber(mosquitto.port, [topic])
    subscribers.append(sub)
    proc = start_node(mosquitto.port, "will-st", tmp_path / "j.db")
    try:
        wait_line(proc, "connected")
        sub.collect(lambda seen: any(m.payload == b"online" for m in seen))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        seen = sub.collect(lambda seen: seen[-1].payload == b"offline")
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert seen[-1].topic == topic
    # The Will is retained: a client that subscribes later still reads `offline`.
    late = Subscriber(mosquitto.port, [topic])
    subscribers.append(late)
    assert late.collect(lambda s: len(s) >= 1)[0] == type(seen[-1])(topic, b"offline", True)
