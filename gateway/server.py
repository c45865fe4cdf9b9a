"""The gateway as one object: store, batch writer, MQTT ingest and the web server, in order.

    gw = Gateway(config)           # or Gateway(config, store=Store(...)) to share a store
    gw.start()                     # returns once the web server listens; gw.url says where
    ...
    gw.stop()                      # parts stopped in reverse order

    run_gateway(config, stop)      # the same, blocking until `stop` (a threading.Event) is set

run_gateway is what `reman gateway` runs: under systemd (`Type=notify`) it sends READY=1 once
the dashboard listens, WATCHDOG=1 while `Gateway.healthy()` holds (the web server answers its
own /healthz and the writer thread runs), and STOPPING=1 when it begins to stop. A broker that
is away does not make the gateway unhealthy: the ingest reconnects by itself.

uvicorn runs in a thread of its own on a socket the Gateway binds first, so port 0 works (the
chosen port is in `gw.port`) and a caller never races the server for the port.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import uvicorn

from edge.contract import systemd
from gateway.app import create_app
from gateway.clock import ClockWatch
from gateway.config import GatewayConfig
from gateway.errors import GatewayError
from gateway.frames import FrameCache
from gateway.gaps import SeqGaps
from gateway.ingest import BatchWriter, IngestCounters, MqttIngest
from gateway.live import Broadcaster
from gateway.store import Store

log = logging.getLogger("reman.gateway")


class Gateway:
    """Every part of a running gateway; see the module docstring."""

    def __init__(self, config: GatewayConfig, *, store: Store | None = None, mqtt: bool = True):
        self.config = config
        self.store = store or Store.from_config(config.store)
        self.counters = IngestCounters()
        self.broadcaster = Broadcaster()
        self.writer = BatchWriter(
            self.store,
            config.store.snapshots_dir,
            batch_size=config.store.batch_size,
            batch_interval_s=config.store.batch_interval_s,
            snapshot_max_files=config.store.snapshot_max_files,
            counters=self.counters,
            on_written=self.broadcaster.on_written,
        )
        self.frames = FrameCache()
        self.clocks = ClockWatch(config.clock.max_offset_s)
        self.ingest = (
            MqttIngest(
                config.mqtt, self.writer, self.counters, frames=self.frames, clocks=self.clocks
            )
            if mqtt
            else None
        )
        self.gaps: SeqGaps | None = None
        if self.ingest is not None and config.gaps.enabled:
            self.gaps = SeqGaps(
                self.store.max_seq_below,
                self.ingest.ask_records,
                self.writer.submit_event,
                grace_s=config.gaps.grace_s,
                retry_s=config.gaps.retry_s,
                tries=config.gaps.tries,
            )
            self.writer.add_listener(self.gaps.observe)
        self._gaps_stop = threading.Event()
        self._gaps_thread: threading.Thread | None = None
        self.app = create_app(
            config,
            self.store,
            publisher=self.ingest,
            counters=self.counters,
            broadcaster=self.broadcaster,
            frames=self.frames,
            clocks=self.clocks,
        )
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The dashboard's base URL (once started)."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(
            self.config.http.host, self.config.http.host
        )
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    def healthy(self, timeout_s: float = 5.0) -> bool:
        """The writer thread runs and the web server answers /healthz within `timeout_s`."""
        if not (self._thread and self._thread.is_alive() and self.writer.running):
            return False
        try:
            with urllib.request.urlopen(f"{self.url}/healthz", timeout=timeout_s) as resp:
                return resp.status == 200
        except OSError as exc:
            log.warning("the dashboard does not answer its health check: %s", exc)
            return False

    def start(self, timeout_s: float = 15.0) -> Gateway:
        """Start writer, ingest and web server; return once the server accepts connections."""
        Path(self.config.store.snapshots_dir).mkdir(parents=True, exist_ok=True)
        self.writer.start()
        if self.ingest is not None:
            self.ingest.start()
        if self.gaps is not None:
            self._gaps_stop.clear()
            self._gaps_thread = threading.Thread(
                target=self.gaps.run, args=(self._gaps_stop,), name="gateway-gaps", daemon=True
            )
            self._gaps_thread.start()
        sock = self._bind()
        self._server = uvicorn.Server(self._uvicorn_config())
        self._thread = threading.Thread(
            target=self._serve, args=(sock,), name="gateway-http", daemon=True
        )
        self._thread.start()
        self._wait_started(timeout_s)
        log.info("dashboard at %s", self.url)
        return self

    def _uvicorn_config(self) -> uvicorn.Config:
        # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise, so any local
        # client could pick the address that login throttling counts: only `trusted_proxies`.
        proxies = [str(ip) for ip in self.config.http.trusted_proxies]
        return uvicorn.Config(
            self.app,
            log_level="warning",
            timeout_graceful_shutdown=3,
            lifespan="on",
            proxy_headers=bool(proxies),
            forwarded_allow_ips=proxies,
        )

    def _bind(self) -> socket.socket:
        http = self.config.http
        # proto=IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY on accepted connections only when
        # the socket says so; without it every keep-alive response waits ~40 ms for a delayed ACK
        family = socket.AF_INET6 if ":" in http.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((http.host, http.port))
        except OSError as exc:
            sock.close()
            self.stop()
            raise GatewayError(
                f"cannot listen on {http.host}:{http.port}: {exc.strerror or exc}"
            ) from exc
        sock.listen(128)
        self.port = sock.getsockname()[1]
        return sock

    def _serve(self, sock: socket.socket) -> None:
        assert self._server is not None
        try:
            asyncio.run(self._server.serve(sockets=[sock]))
        except Exception:  # noqa: BLE001 - root of the web server thread
            log.exception("web server stopped with an error")
        finally:
            sock.close()

    def _wait_started(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while not (self._server and self._server.started):
            if not (self._thread and self._thread.is_alive()) or time.monotonic() > deadline:
                self.stop()
                raise GatewayError(f"the web server did not start within {timeout_s} s")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the web server, the ingest and the writer (which writes what it holds)."""
        self.broadcaster.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self._gaps_stop.set()
        if self._gaps_thread is not None:
            self._gaps_thread.join(10)
            self._gaps_thread = None
        if self.ingest is not None:
            self.ingest.stop()
        self.writer.stop()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def run_gateway(
    config: GatewayConfig,
    stop: threading.Event,
    *,
    store: Store | None = None,
    started: Callable[[Gateway], None] | None = None,
) -> None:
    """Run a gateway until `stop` is set, then stop it cleanly; tells systemd how it goes.

    `started(gateway)` is called once the dashboard listens.
    """
    gateway = Gateway(config, store=store).start()
    try:
        if started is not None:
            started(gateway)
        systemd.ready(f"dashboard at {gateway.url}")
        interval = systemd.watchdog_interval_s()
        missed = 0  # systemd restarts the service after two missed pings (a whole WATCHDOG_USEC)
        while not stop.wait(interval):
            if gateway.healthy(timeout_s=min(5.0, interval or 5.0)):
                systemd.watchdog()
                missed = 0
                continue
            missed += 1
            if missed == 1:
                log.warning("gateway unhealthy: one watchdog ping skipped")
            else:
                log.error("gateway unhealthy: not pinging the systemd watchdog")
    finally:
        systemd.stopping()
        gateway.stop()
