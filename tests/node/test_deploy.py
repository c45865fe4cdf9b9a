"""deploy/raspberrypi: install.sh into a temporary root, the systemd units, shellcheck."""

from __future__ import annotations

import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from reman.configcheck import check_file

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "raspberrypi"
UNITS = ("reman-node.service", "reman-gateway.service")


def install(root: Path) -> str:
    done = subprocess.run(
        [str(DEPLOY / "install.sh"), "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def test_install_lays_out_config_data_units_and_secrets(tmp_path):
    out = install(tmp_path)
    etc = tmp_path / "etc" / "reman"
    for path in (
        "station.yaml",
        "gateway.yaml",
        "families/hydraulic-gear-pump.yaml",
        "mqtt-password",
        "gateway-mqtt-password",
        "session-secret",
    ):
        assert (etc / path).is_file(), path
    for unit in UNITS:
        assert (tmp_path / "etc/systemd/system" / unit).read_bytes() == (DEPLOY / unit).read_bytes()
    assert (tmp_path / "var/lib/reman/images").is_dir()
    secret = etc / "mqtt-password"
    assert len(secret.read_text()) >= 24
    assert stat.S_IMODE(secret.stat().st_mode) & 0o007 == 0, "a secret must not be world-readable"
    for step in (
        "apt-get install",
        "create system user reman",
        "python3 -m venv",
        "systemctl enable",
    ):
        assert f"skipped (--root): {step}" in out.replace("env DEBIAN_FRONTEND=noninteractive ", "")


def test_installed_station_config_validates_and_points_at_installed_model(tmp_path):
    install(tmp_path)
    station = tmp_path / "etc/reman/station.yaml"
    assert "path: /opt/reman/models/" in station.read_text()
    assert check_file(station, "station") == "station"


def test_install_again_keeps_the_integrators_config_and_secrets(tmp_path):
    install(tmp_path)
    station = tmp_path / "etc/reman/station.yaml"
    station.write_text(station.read_text().replace("pump-line-1", "pump-line-7"))
    secret = (tmp_path / "etc/reman/mqtt-password").read_text()
    out = install(tmp_path)
    assert "pump-line-7" in station.read_text()
    assert (tmp_path / "etc/reman/mqtt-password").read_text() == secret
    assert f"kept existing {station}" in out
    assert "created" not in out and "installed" not in out


def test_install_sets_up_mosquitto_authentication_when_the_config_is_there(tmp_path):
    conf = DEPLOY / "mosquitto" / "reman.conf"
    if not conf.exists():
        pytest.skip("deploy/raspberrypi/mosquitto/reman.conf is not in this checkout yet")
    out = install(tmp_path)
    assert (tmp_path / "etc/mosquitto/conf.d/reman.conf").read_bytes() == conf.read_bytes()
    assert (tmp_path / "etc/mosquitto/reman.passwd").exists()
    assert "mosquitto_passwd -b" in out and "<" in out, "the password itself must not be printed"
    certs = tmp_path / "etc/mosquitto/certs"
    if shutil.which("openssl"):
        done = subprocess.run(
            ["openssl", "verify", "-CAfile", str(certs / "ca.crt"), str(certs / "server.crt")],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
    assert stat.S_IMODE((certs / "server.key").stat().st_mode) & 0o007 == 0
    assert stat.S_IMODE((certs / "ca.key").stat().st_mode) == 0o600


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shell_scripts_pass_shellcheck():
    scripts = sorted(DEPLOY.glob("*.sh"))
    assert scripts
    done = subprocess.run(
        ["shellcheck", *map(str, scripts)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout


def test_units_pass_systemd_analyze_verify(tmp_path):
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart exists: point it at a stand-in for the venv's `reman`.
    reman = tmp_path / "reman"
    reman.write_text("#!/bin/sh\n")
    reman.chmod(0o755)
    paths = []
    for unit in UNITS:
        text = (DEPLOY / unit).read_text().replace("/opt/reman/venv/bin/reman", str(reman))
        (tmp_path / unit).write_text(text)
        paths.append(str(tmp_path / unit))
    done = subprocess.run(
        ["systemd-analyze", "verify", *paths], capture_output=True, text=True, timeout=60
    )
    if done.returncode != 0 and "Failed to" in done.stderr and "reman" not in done.stderr:
        pytest.skip(f"systemd-analyze cannot run in this container: {done.stderr.strip()[:200]}")
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr


@pytest.mark.parametrize("unit", UNITS)
def test_units_are_hardened(unit):
    text = (DEPLOY / unit).read_text()
    for line in (
        "User=reman",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ReadWritePaths=/var/lib/reman",
        "Restart=on-failure",
    ):
        assert line in text, line


@pytest.mark.parametrize("unit", UNITS)
def test_units_tell_systemd_when_ready_and_are_watched(unit):
    text = (DEPLOY / unit).read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "KillSignal=SIGTERM" in text
