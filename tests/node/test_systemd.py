"""sd_notify over a real Unix datagram socket, as systemd provides it."""

from __future__ import annotations

import asyncio
import os
import socket

import pytest

from edge.contract import systemd


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
