"""A real mosquitto broker on a free loopback port for tests (edge.mqtt.mosquitto does the work)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from edge.mqtt.mosquitto import MosquittoProcess
from edge.ports import free_port

__all__ = ["Mosquitto", "free_port", "wait_for_port"]


class Mosquitto(MosquittoProcess):
    """One mosquitto process in its own folder; `stop()` and `start()` simulate an outage."""

    def __init__(self, workdir: Path, extra_config: str = "", port: int | None = None):
        super().__init__(Path(workdir), port or free_port(), extra_config=extra_config)

    def log(self) -> str:
        """The broker's log so far (for assertion messages)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def wait_for_port(host: str, port: int, timeout_s: float = 10.0) -> None:
    """Block until a TCP connect to host:port succeeds, or raise TimeoutError."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"nothing listening on {host}:{port} after {timeout_s} s"
                ) from None
            time.sleep(0.05)  # polling a port that is coming up
