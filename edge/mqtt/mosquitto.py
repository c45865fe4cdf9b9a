"""Start Debian's mosquitto with a config of our own on a loopback port (demo and benchmarks).

    broker = start_mosquitto(Path("/tmp/demo-broker"))   # a free port on 127.0.0.1
    ... broker.host, broker.port ...
    broker.stop()

On a Pi the packaged mosquitto runs as a service with deploy/raspberrypi/mosquitto/reman.conf;
this module is for the places where nothing runs yet (`reman demo`, `bench/`).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import BrokerError
from edge.ports import free_port

DEFAULT_BINARY = "/usr/sbin/mosquitto"


def find_mosquitto() -> str:
    """Path of the mosquitto binary; BrokerError when it is not installed."""
    path = shutil.which("mosquitto") or (DEFAULT_BINARY if Path(DEFAULT_BINARY).exists() else None)
    if path is None:
        raise BrokerError("mosquitto is not installed (apt install mosquitto)")
    return path


@dataclass
class MosquittoProcess:
    """A mosquitto we started; `stop()` ends it, `start()` starts it again on the same port."""

    config_dir: Path
    port: int
    host: str = "127.0.0.1"
    extra_config: str = ""
    persistence: bool = False
    full_config: str | None = None  # a complete config to run as it is (it must listen on `port`)
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def config_path(self) -> Path:
        return self.config_dir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        return self.config_dir / "mosquitto.log"

    def config_text(self) -> str:
        """The config file this broker runs with."""
        if self.full_config is not None:
            return self.full_config
        lines = [
            f"listener {self.port} {self.host}",
            # As root, mosquitto would switch to the `mosquitto` user, which cannot read or write
            # files in our folder; this broker runs as whoever started it, like every other part.
            "user root" if os.geteuid() == 0 and "user " not in self.extra_config else "",
            "allow_anonymous true" if "allow_anonymous" not in self.extra_config else "",
            f"persistence {'true' if self.persistence else 'false'}",
            "set_tcp_nodelay true",  # PUBACKs go out at once, not coalesced (Nagle)
            f"persistence_location {self.config_dir}/" if self.persistence else "",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            self.extra_config,
        ]
        return "\n".join(line for line in lines if line) + "\n"

    def start(self, timeout_s: float = 10.0) -> MosquittoProcess:
        """Start the broker and wait until it accepts TCP connections.

        A restart on the same port can find it briefly taken: a client retrying a connection to
        a loopback port nobody listens on may be given that very port as its own source port
        (a TCP self-connect) until it gives up. mosquitto then exits with "Address already in
        use"; the start is retried until `timeout_s` has passed.
        """
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.config_text(), encoding="utf-8")
        deadline = time.monotonic() + timeout_s
        while True:
            logged = self.log_path.stat().st_size if self.log_path.exists() else 0
            try:
                self.proc = subprocess.Popen(
                    [find_mosquitto(), "-c", str(self.config_path)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            except OSError as exc:
                raise BrokerError(f"cannot start mosquitto: {exc}") from exc
            try:
                self._wait_listening(max(deadline - time.monotonic(), 0.5))
                return self
            except BrokerError:
                self.stop()
                if not self._port_was_taken(logged) or time.monotonic() > deadline:
                    raise
            time.sleep(0.3)  # the port's other user gives up within a second or two

    def _port_was_taken(self, logged_before: int) -> bool:
        try:
            with self.log_path.open("rb") as fh:
                fh.seek(logged_before)
                return b"Address already in use" in fh.read()
        except OSError:
            return False

    def _wait_listening(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise BrokerError(
                    f"mosquitto exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise BrokerError(
                        f"mosquitto not listening on {self.host}:{self.port} after {timeout_s} s"
                    ) from None
                time.sleep(0.05)  # polling a port that is coming up

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL); a no-op when it is not running."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


def start_mosquitto(
    config_dir: Path,
    port: int | None = None,
    *,
    host: str = "127.0.0.1",
    extra_config: str = "",
    persistence: bool = False,
) -> MosquittoProcess:
    """Start mosquitto with its own config in `config_dir` on `port` (a free one by default)."""
    broker = MosquittoProcess(
        Path(config_dir),
        port or free_port(host),
        host=host,
        extra_config=extra_config,
        persistence=persistence,
    )
    return broker.start()
