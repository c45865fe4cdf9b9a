"""systemd notify, watchdog and journal log lines, without a dependency.

Under `Type=notify` systemd passes `$NOTIFY_SOCKET`, a Unix datagram socket (a path, or an
abstract name starting with `@`). The node sends `READY=1` once started, `WATCHDOG=1` at half
of `$WATCHDOG_USEC` while its loop is healthy, and `STOPPING=1` when it begins to shut down.
Outside systemd every call is a no-op that returns False.

A service whose stderr goes to the journal gets `$JOURNAL_STREAM` (that stream's device and
inode). Its log lines then start with an sd-daemon priority (`<4>` for a warning), which
journald stores as the entry's priority (`journalctl -p warning`), and carry no timestamp of
their own: the journal has one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from collections.abc import Callable, Mapping
from typing import TextIO

log = logging.getLogger("reman.systemd")

# sd-daemon(3) priorities (syslog's) for Python's levels; a level between two takes the lower's.
_PRIORITIES = (
    (logging.CRITICAL, 2),
    (logging.ERROR, 3),
    (logging.WARNING, 4),
    (logging.INFO, 6),
)
_DEBUG_PRIORITY = 7


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


def stderr_is_journal(stream: TextIO | None = None, env: Mapping[str, str] | None = None) -> bool:
    """True when `stream` (stderr by default) is the journal stream `$JOURNAL_STREAM` names.

    A process started by the service inherits the variable with a stderr of its own (a pipe, a
    file); comparing the device and inode keeps its output in the usual format.
    """
    env = os.environ if env is None else env
    stream = sys.stderr if stream is None else stream
    device, _, inode = env.get("JOURNAL_STREAM", "").partition(":")
    try:
        wanted = (int(device), int(inode))
        found = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        # Not "device:inode", or a stream without a file descriptor (a test's capture).
        return False
    return (found.st_dev, found.st_ino) == wanted


def journal_priority(levelno: int) -> int:
    """The sd-daemon priority (0 emergency .. 7 debug) for a logging level."""
    for level, priority in _PRIORITIES:
        if levelno >= level:
            return priority
    return _DEBUG_PRIORITY


class JournalFormatter(logging.Formatter):
    """Log lines for journald: `<N>LEVEL logger: message`, without a timestamp.

    journald reads each line as an entry of its own, so every line of a record (a traceback's
    too) carries the record's priority.
    """

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The record's lines, each with its priority prefix."""
        prefix = f"<{journal_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())
