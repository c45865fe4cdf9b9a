"""`reman demo` end to end: the README's main job, driven as an operator and engineer would.

Real mosquitto, bench simulator, edge node (reference model, folder camera) and dashboard, all
started by `reman demo`; Chromium logs in, watches inspections arrive, overrides one through the
real node, and sees the station go offline when its node is killed (and back when restarted).
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import REPO
from tests.support.broker import free_port
from tests.support.browser import CHROMIUM, chromium, log_in, shot

pytestmark = [pytest.mark.browser, pytest.mark.slow]


class DemoProcess:
    """`reman demo` as a child process, its output read line by line."""

    def __init__(self, data_dir: Path, http_port: int):
        self.data_dir = data_dir
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "reman.cli",
                "demo",
                "--data-dir",
                str(data_dir),
                "--http-port",
                str(http_port),
                "--interval",
                "1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=REPO,
            start_new_session=True,  # its children share its process group: see close()
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_line(self, pattern: str, timeout_s: float = 120) -> re.Match:
        """The first output line matching pattern."""
        while True:
            try:
                line = self.lines.get(timeout=timeout_s)
            except queue.Empty:
                raise AssertionError(
                    f"no line matching {pattern!r}; output so far:\n" + "\n".join(self.output)
                ) from None
            self.output.append(line)
            if match := re.search(pattern, line):
                return match

    def child_pid(self, marker: str) -> int:
        """pid of the demo's child process whose command line contains marker."""
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline and str(self.data_dir) in cmdline:
                return int(entry.name)
        raise AssertionError(f"no process with {marker!r}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def close(self) -> None:
        """After a failed test: stop the demo and whatever it started (broker, bench, node,
        gateway), so that nothing outlives the test."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


@pytest.fixture
def demo(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed")
    process = DemoProcess(tmp_path / "demo", free_port())
    yield process
    process.close()


def test_demo_runs_the_station_end_to_end_and_stops_on_sigterm(demo):
    url = demo.wait_line(r"Dashboard: (http://\S+)").group(1)
    password = demo.wait_line(r"log in as engineer / (\S+)").group(1)
    assert httpx.get(url + "healthz", timeout=10).status_code == 200

    # Started twice on one data folder: the second says so in one line and leaves the first be.
    second = DemoProcess(demo.data_dir, free_port())
    try:
        assert second.proc.wait(timeout=60) != 0
        second.wait_line(
            rf"another reman demo runs with {re.escape(str(demo.data_dir))} \(pid \d+\): stop "
            r"it \(Ctrl-C where it runs\), or start this one with --data-dir OTHER"
        )
    finally:
        second.close()
    assert httpx.get(url + "healthz", timeout=10).status_code == 200

    with chromium() as browser:
        page = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=url).new_page()
        log_in(page, "engineer", password)

        # Inspections graded by the real node arrive on the live view without a reload.
        page.goto("/live/demo-1")
        expect(page.locator("#live-panel")).to_contain_text(
            re.compile(r"(HGP|HPC|BAT)-\d+"), timeout=60_000
        )
        expect(page.locator("#live-panel")).to_contain_text(
            re.compile("REUSE|REMANUFACTURE|RECYCLE|REVIEW")
        )
        shot(page, "demo-live")

        # Override round trip through the real node: journaled there, republished, shown here.
        page.goto("/history?station=demo-1")
        page.locator("a[href^='/inspections/']").first.click()
        page.select_option("#override-form select[name=code]", "4")
        page.fill("#override-form textarea[name=reason]", "seal face needs a second look")
        page.click("#override-form button[type=submit]")
        expect(page.locator("#override-note")).to_contain_text(
            "Overridden by engineer", timeout=20_000
        )
        expect(page.locator("#override-note")).to_contain_text("seal face needs a second look")
        expect(page.locator("#audit")).to_contain_text("override applied by station")
        shot(page, "demo-override")

        # The node killed outright: its Last Will shows the station offline; the demo restarts it.
        page.goto("/health")
        row = page.locator("#health tr[data-station=demo-1]")
        expect(row).to_contain_text("online", timeout=20_000)
        os.kill(demo.child_pid("node --config"), signal.SIGKILL)
        expect(row.locator("td").nth(1)).to_have_text("offline", timeout=30_000)
        shot(page, "demo-health-offline")
        demo.wait_line(r"edge node stopped unexpectedly; restarting it")
        expect(row.locator("td").nth(1)).to_have_text("online", timeout=60_000)
        browser.close()

    assert demo.stop() == 0
    demo.wait_line(r"stopped mosquitto")
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "healthz", timeout=5)
