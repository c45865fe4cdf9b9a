"""sd_notify over a real Unix datagram socket, as systemd provides it; log lines for journald."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from edge.contract import systemd

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def notify_socket(tmp_path, monkeypatch):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    path = tmp_path / "notify.sock"
    sock.bind(str(path))
    sock.settimeout(5)
    monkeypatch.setenv("NOTIFY_SOCKET", str(path))
    yield sock
    sock.close()


def test_ready_stopping_and_watchdog_reach_systemd(notify_socket):
    assert systemd.ready("grading")
    assert notify_socket.recv(256) == b"READY=1\nSTATUS=grading"
    assert systemd.watchdog()
    assert notify_socket.recv(256) == b"WATCHDOG=1"
    assert systemd.stopping()
    assert notify_socket.recv(256) == b"STOPPING=1"


def test_abstract_socket_names_work(monkeypatch):
    name = f"reman-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert systemd.ready()
        assert sock.recv(64) == b"READY=1"


def test_without_systemd_nothing_is_sent(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert systemd.ready() is False


def test_watchdog_interval_is_half_of_watchdog_usec():
    pid = str(os.getpid())
    assert systemd.watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": pid}) == 15
    assert systemd.watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert systemd.watchdog_interval_s({}) is None


async def test_watchdog_loop_pings_until_stopped(notify_socket):
    stop = asyncio.Event()
    task = asyncio.create_task(systemd.watchdog_loop(stop, interval_s=0.01))
    loop = asyncio.get_running_loop()
    assert await loop.run_in_executor(None, notify_socket.recv, 64) == b"WATCHDOG=1"
    assert await loop.run_in_executor(None, notify_socket.recv, 64) == b"WATCHDOG=1"
    stop.set()
    await asyncio.wait_for(task, 5)


# ---------------------------------------------------------------- log lines for journald

# The real `reman` root group (its logging set-up) with one quick command that logs twice.
LOGGING_CLI = """
import logging
from reman.cli import cli

@cli.command("log-twice")
def log_twice():
    logging.getLogger("reman.test").warning("bench is slow")
    logging.getLogger("reman.test").info("graded HGP-000123")

cli(["log-twice"], prog_name="reman")
"""
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def reman_stderr(tmp_path, journal_stream: str | None) -> list[str]:
    """Run the CLI with stderr to a file; JOURNAL_STREAM "file" names that file's inode."""
    log = tmp_path / "stderr.log"
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    with log.open("wb") as stderr:
        if journal_stream is not None:
            info = os.fstat(stderr.fileno())
            own = f"{info.st_dev}:{info.st_ino}"
            env["JOURNAL_STREAM"] = own if journal_stream == "file" else journal_stream
        subprocess.run(
            [sys.executable, "-c", LOGGING_CLI],
            stderr=stderr,
            env=env,
            cwd=REPO,
            timeout=60,
            check=True,
        )
    return log.read_text().splitlines()


def test_under_journald_log_lines_carry_priorities_and_no_timestamp(tmp_path):
    lines = reman_stderr(tmp_path, "file")
    assert lines == [
        "<4>WARNING reman.test: bench is slow",
        "<6>INFO reman.test: graded HGP-000123",
    ]


@pytest.mark.parametrize("journal_stream", [None, "1:1", "garbage"])
def test_elsewhere_log_lines_keep_their_timestamp(tmp_path, journal_stream):
    # None: a terminal or a pipe; "1:1": a child that inherited the variable, not the stream.
    lines = reman_stderr(tmp_path, journal_stream)
    assert len(lines) == 2
    assert TIMESTAMP.match(lines[0]) and lines[0].endswith(" WARNING reman.test: bench is slow")
    assert TIMESTAMP.match(lines[1]) and lines[1].endswith(" INFO reman.test: graded HGP-000123")


def test_every_line_of_a_traceback_carries_the_records_priority():
    try:
        raise ValueError("bad frame")
    except ValueError:
        record = logging.LogRecord(
            "reman.x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )
    lines = systemd.JournalFormatter().format(record).splitlines()
    assert lines[0] == "<3>ERROR reman.x: failed" and len(lines) > 2
    assert all(line.startswith("<3>") for line in lines)
    assert [systemd.journal_priority(level) for level in (50, 40, 30, 20, 10, 5)] == [
        2,
        3,
        4,
        6,
        7,
        7,
    ]
