"""systemd notify and watchdog, without a dependency.

Under `Type=notify` systemd passes `$NOTIFY_SOCKET`, a Unix datagram socket (a path, or an
abstract name starting with `@`). The node sends `READY=1` once started, `WATCHDOG=1` at half
of `$WATCHDOG_USEC` while its loop is healthy, and `STOPPING=1` when it begins to shut down.
Outside systemd every call is a no-op that returns False.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Mapping

log = logging.getLogger("reman.systemd")


def notify(state: str, env: Mapping[str, str] | None = None) -> bool:
    """Send `state` (e.g. "READY=1") to systemd; False when not run under systemd or on failure."""
    env = os.environ if env is None else env
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            sock.sendall(state.encode("utf-8"))
    except OSError as exc:
        log.warning("systemd notify %r failed: %s", state, exc)
        return False
    return True


def ready(status: str | None = None) -> bool:
    """Tell systemd the service is up."""
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def stopping() -> bool:
    """Tell systemd the service is shutting down."""
    return notify("STOPPING=1")


def watchdog() -> bool:
    """Pet the watchdog."""
    return notify("WATCHDOG=1")


def status(text: str) -> bool:
    """A one-line status for `systemctl status`."""
    return notify(f"STATUS={text}")


def watchdog_interval_s(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between watchdog pings (half of $WATCHDOG_USEC), None when no watchdog is set.

    `$WATCHDOG_PID`, when present, must name this process (systemd sets it for the main PID).
    """
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 2_000_000 if value > 0 else None


async def watchdog_loop(
    stop: asyncio.Event, interval_s: float, healthy: Callable[[], bool] = lambda: True
) -> None:
    """Ping the watchdog every `interval_s` while `healthy()` holds, until `stop` is set.

    An unhealthy node stops pinging, so systemd restarts it (Restart=on-failure).
    """
    while not stop.is_set():
        if healthy():
            watchdog()
        else:
            log.error("node unhealthy: not pinging the systemd watchdog")
        try:
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
        except asyncio.TimeoutError:
            pass
