"""`reman gateway --config FILE` serves the dashboard and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx

from tests.conftest import REPO
from tests.support.broker import free_port, wait_for_port


def test_gateway_command_serves_and_stops_on_sigterm(tmp_path, mosquitto):
    port = free_port()
    config = tmp_path / "gateway.yaml"
    config.write_text(f"""http:
  host: 127.0.0.1
  port: {port}
mqtt:
  host: 127.0.0.1
  port: {mosquitto.port}
store:
  path: {tmp_path / "gateway.db"}
  snapshots_dir: {tmp_path / "snapshots"}
users: []
""")
    proc = subprocess.Popen(
        [sys.executable, "-m", "reman", "gateway", "--config", str(config)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout_s=30)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "ephemeral" in err  # no session secret configured: warned, not refused
    assert f"dashboard at http://127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_gateway_command_reports_a_bad_config(tmp_path):
    config = tmp_path / "gateway.yaml"
    config.write_text("http:\n  port: 99999\n")
    proc = subprocess.run(
        [sys.executable, "-m", "reman", "gateway", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "gateway.yaml:2: http.port" in proc.stderr
