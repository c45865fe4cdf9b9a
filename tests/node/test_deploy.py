"""deploy/raspberrypi: install.sh into a temporary root, the systemd units, shellcheck."""

from __future__ import annotations

import ipaddress
import re
import shutil
import socket
import ssl
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from edge.mqtt.mosquitto import MosquittoProcess
from edge.ports import free_port
from reman.configcheck import check_file
from tests.support.nodes import as_invoker
from tests.support.pki import make_pki

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "raspberrypi"
UNITS = ("reman-node.service", "reman-gateway.service")
RESTARTS = ("systemctl restart", "systemctl reload", "systemctl daemon-reload")


def install(root: Path, *args: str) -> str:
    done = subprocess.run(
        [str(DEPLOY / "install.sh"), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


def checkout(tmp_path: Path) -> Path:
    """A checkout to install from (--source): this one's config and models, and a mosquitto
    folder of its own, so that a test can ship a newer version of a file."""
    source = tmp_path / "checkout"
    (source / "deploy/raspberrypi").mkdir(parents=True)
    shutil.copytree(DEPLOY / "mosquitto", source / "deploy/raspberrypi/mosquitto")
    for name in ("config", "models"):
        (source / name).symlink_to(REPO / name)
    return source


def tree(root: Path) -> dict[str, tuple]:
    """Every path under root with its mode, and a file's contents and modification time."""
    found: dict[str, tuple] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        body = path.read_bytes() if path.is_file() else b""
        mtime = info.st_mtime_ns if path.is_file() else 0
        found[str(path.relative_to(root))] = (info.st_mode, mtime, body)
    return found


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


@pytest.mark.parametrize(
    ("unit", "user", "data"),
    [
        ("reman-node.service", "reman", "/var/lib/reman"),
        ("reman-gateway.service", "reman-gateway", "/var/lib/reman-gateway"),
    ],
)
def test_units_are_hardened(unit, user, data):
    lines = (DEPLOY / unit).read_text().splitlines()
    for line in (
        f"User={user}",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        f"ReadWritePaths={data}",
        "Restart=on-failure",
    ):
        assert line in lines, line


@pytest.mark.parametrize("unit", UNITS)
def test_units_tell_systemd_when_ready_and_are_watched(unit):
    text = (DEPLOY / unit).read_text()
    assert "Type=notify" in text and "WatchdogSec=" in text and "KillSignal=SIGTERM" in text


# ---------------------------------------------------------------- conffiles (mosquitto)


def test_install_again_without_changes_changes_nothing_and_restarts_nothing(tmp_path):
    first = install(tmp_path)
    assert "skipped (--root): systemctl restart mosquitto" in first
    before = tree(tmp_path)
    again = install(tmp_path)
    assert tree(tmp_path) == before
    for step in (*RESTARTS, "mosquitto_passwd"):
        assert step not in again, step
    assert "not restarted" in again


def test_an_acl_the_integrator_edited_is_kept_and_the_new_one_written_beside_it(tmp_path):
    source, root = checkout(tmp_path), tmp_path / "root"
    install(root, "--source", str(source))
    acl = root / "etc/mosquitto/reman.acl"
    plc = "\nuser plc-line-1\ntopic write reman/st1/trigger/set\n"
    acl.write_text(acl.read_text() + plc)
    edited = acl.read_text()
    shipped = source / "deploy/raspberrypi/mosquitto/acl"
    shipped.write_text(shipped.read_text() + "\n# a line of a newer version\n")
    out = install(root, "--source", str(source))
    assert acl.read_text() == edited
    assert (root / "etc/mosquitto/reman.acl.reman-new").read_bytes() == shipped.read_bytes()
    assert f"kept your changed {acl}; the new version is {acl}.reman-new" in out
    assert not any(step in out for step in RESTARTS), "nothing the broker reads has changed"
    again = install(root, "--source", str(source))
    assert acl.read_text() == edited and f"kept your changes in {acl}" in again
    assert not any(step in again for step in RESTARTS)


def test_an_unedited_acl_is_upgraded_in_place_and_the_broker_reloaded(tmp_path):
    source, root = checkout(tmp_path), tmp_path / "root"
    install(root, "--source", str(source))
    shipped = source / "deploy/raspberrypi/mosquitto/acl"
    shipped.write_text(shipped.read_text() + "\n# a line of a newer version\n")
    out = install(root, "--source", str(source))
    acl = root / "etc/mosquitto/reman.acl"
    assert acl.read_bytes() == shipped.read_bytes()
    assert not (root / "etc/mosquitto/reman.acl.reman-new").exists()
    assert f"upgraded {acl}" in out
    # A reload keeps the PLC's connection; only listeners and certificates need a restart.
    assert "skipped (--root): systemctl reload-or-restart mosquitto" in out
    assert "systemctl restart mosquitto" not in out


def test_an_unedited_broker_config_is_upgraded_and_the_broker_restarted(tmp_path):
    source, root = checkout(tmp_path), tmp_path / "root"
    install(root, "--source", str(source))
    shipped = source / "deploy/raspberrypi/mosquitto/reman.conf"
    shipped.write_text(shipped.read_text() + "\n# a line of a newer version\n")
    out = install(root, "--source", str(source))
    assert (root / "etc/mosquitto/conf.d/reman.conf").read_bytes() == shipped.read_bytes()
    assert "skipped (--root): systemctl restart mosquitto" in out


def test_an_edited_config_from_an_install_before_the_state_file_is_kept(tmp_path):
    install(tmp_path)
    (tmp_path / "var/lib/reman-install/state").unlink()
    conf = tmp_path / "etc/mosquitto/conf.d/reman.conf"
    conf.write_text(conf.read_text() + "listener 1883 192.168.10.2\n")
    edited = conf.read_text()
    out = install(tmp_path)
    assert conf.read_text() == edited
    assert (tmp_path / "etc/mosquitto/conf.d/reman.conf.reman-new").exists()
    assert f"the new version is {conf}.reman-new" in out


# ---------------------------------------------------------------- the broker's certificate


def global_addresses() -> set[ipaddress.IPv4Address | ipaddress.IPv6Address] | None:
    """This machine's addresses but loopback and link-local ones, as `ip` lists them."""
    if shutil.which("ip") is None:
        return None
    done = subprocess.run(
        ["ip", "-o", "addr", "show", "scope", "global"],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    )
    return {
        ipaddress.ip_address(line.split()[3].split("/")[0]) for line in done.stdout.splitlines()
    }


def host_addresses() -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    found = global_addresses()
    if found is None:
        pytest.skip("ip (iproute2) is not installed")
    return found


def broker_names(root: Path) -> tuple[set, set[str]]:
    cert = x509.load_pem_x509_certificate((root / "etc/mosquitto/certs/server.crt").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.IPAddress)), set(san.get_values_for_type(x509.DNSName))


def test_broker_certificate_names_the_hosts_addresses_and_each_san(tmp_path):
    install(tmp_path, "--san", "10.20.30.40", "--san", "broker.line-1.example", "--san", "fd00::17")
    ips, dns = broker_names(tmp_path)
    wanted = {"127.0.0.1", "10.20.30.40", "fd00::17"}
    assert {ipaddress.ip_address(ip) for ip in wanted} | host_addresses() <= ips
    assert {socket.gethostname(), "localhost", "broker.line-1.example"} <= dns


def test_a_new_san_reissues_the_certificate_from_the_same_ca_and_keeps_earlier_names(tmp_path):
    install(tmp_path, "--san", "broker.line-1.example")
    certs = tmp_path / "etc/mosquitto/certs"
    ca, key = (certs / "ca.crt").read_bytes(), (certs / "server.key").read_bytes()
    out = install(tmp_path, "--san", "192.168.10.2")
    ips, dns = broker_names(tmp_path)
    assert ipaddress.ip_address("192.168.10.2") in ips and "broker.line-1.example" in dns
    assert (certs / "ca.crt").read_bytes() == ca, "clients trust this CA: it stays"
    assert (certs / "server.key").read_bytes() == key
    assert "skipped (--root): systemctl restart mosquitto" in out
    again = install(tmp_path)
    assert f"unchanged {certs / 'server.crt'}" in again
    assert not any(step in again for step in RESTARTS)


def test_a_plants_own_broker_certificate_is_left_alone(tmp_path):
    install(tmp_path)
    pki = make_pki(tmp_path / "plant")
    certs = tmp_path / "etc/mosquitto/certs"
    for name, path in (("ca.crt", pki.ca), ("server.crt", pki.server_cert)):
        shutil.copy(path, certs / name)
    out = install(tmp_path, "--san", "192.168.10.2")
    assert (certs / "server.crt").read_bytes() == pki.server_cert.read_bytes()
    assert "not issued by the local CA" in out


def test_a_bad_san_is_refused(tmp_path):
    done = subprocess.run(
        [str(DEPLOY / "install.sh"), "--root", str(tmp_path), "--san", "not a name"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and "--san not a name" in done.stderr


def tls_addresses() -> list[str]:
    """Loopback, and the first IPv4 address a PLC on the network would connect to."""
    lan = sorted(str(ip) for ip in global_addresses() or () if ip.version == 4)
    return ["127.0.0.1", *lan[:1]]


@pytest.mark.parametrize("address", tls_addresses())
def test_a_tls_client_verifies_the_broker_by_ip_against_the_local_ca(tmp_path, address):
    install(tmp_path / "root")
    certs = tmp_path / "root/etc/mosquitto/certs"
    broker = MosquittoProcess(
        tmp_path / "broker",
        free_port(address),
        host=address,
        extra_config=f"cafile {certs / 'ca.crt'}\ncertfile {certs / 'server.crt'}\n"
        f"keyfile {certs / 'server.key'}\ntls_version tlsv1.2\n" + as_invoker(),
    ).start()
    try:
        context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        # Python 3.13's default: RFC 5280 rules for the CA and the server certificate.
        context.verify_flags |= ssl.VERIFY_X509_STRICT
        with socket.create_connection((address, broker.port), timeout=10) as sock:
            with context.wrap_socket(sock, server_hostname=address) as tls:
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
    finally:
        broker.stop()


# ---------------------------------------------------------------- one user per service

GROUPS = {"reman": {"reman", "video", "render"}, "reman-gateway": {"reman-gateway"}}


def owners(out: str) -> dict[Path, str]:
    """The owner install.sh gives each path, from what it reports under --root."""
    found: dict[Path, str] = {}
    for match in re.finditer(
        r"^reman-install: skipped \(--root\): chown (?:-R )?(\S+) (.+)$", out, re.M
    ):
        for path in match.group(2).split():
            found[Path(path)] = match.group(1)
    return found


def readers(path: Path, owner: str) -> set[str]:
    """The service users that may read `path`, owned by `owner` ("user:group") with its mode."""
    user, group = owner.split(":")
    mode = stat.S_IMODE(path.stat().st_mode)
    return {
        name
        for name, groups in GROUPS.items()
        if (name == user and mode & 0o400) or (group in groups and mode & 0o040) or mode & 0o004
    }


def unit_settings(unit: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (DEPLOY / unit).read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not line.startswith("#"):
            settings.setdefault(key, []).extend(value.split())
    return settings


def test_node_and_gateway_run_as_users_of_their_own():
    node, gateway = unit_settings("reman-node.service"), unit_settings("reman-gateway.service")
    assert node["User"] == ["reman"] and gateway["User"] == ["reman-gateway"]
    assert node["Group"] == ["reman"] and gateway["Group"] == ["reman-gateway"]
    assert "reman" not in gateway.get("SupplementaryGroups", [])


def test_each_service_reads_only_its_own_config_and_secrets(tmp_path):
    out = install(tmp_path)
    etc, owner = tmp_path / "etc/reman", owners(install(tmp_path))
    assert owner == owners(out), "every run sets the same owners"
    only = {
        "reman": ("station.yaml", "mqtt-password", "families/hydraulic-gear-pump.yaml"),
        "reman-gateway": ("gateway.yaml", "gateway-mqtt-password", "session-secret"),
    }
    for user, names in only.items():
        for name in names:
            assert readers(etc / name, owner[etc / name]) == {user}, name
    data = {
        "reman": tmp_path / "var/lib/reman",
        "reman-gateway": tmp_path / "var/lib/reman-gateway",
    }
    for user, folder in data.items():
        assert readers(folder, owner[folder]) == {user}, folder


def test_a_file_every_user_can_read_in_etc_reman_is_reported(tmp_path):
    install(tmp_path)
    added = tmp_path / "etc/reman/bench-password"
    added.write_text("secret\n")
    added.chmod(0o644)
    out = install(tmp_path)
    assert f"warning: every user can read {added}" in out
    assert out.count("warning: every user can read") == 1, "only the file with a loose mode"


def test_the_gateway_unit_cannot_reach_the_nodes_secrets_or_data():
    gateway = unit_settings("reman-gateway.service")
    hidden = {path.lstrip("-") for path in gateway["InaccessiblePaths"]}
    assert {"/etc/reman/mqtt-password", "/etc/reman/bench", "/var/lib/reman"} <= hidden
    for key in ("ReadWritePaths", "ReadOnlyPaths", "BindPaths", "BindReadOnlyPaths"):
        for path in gateway.get(key, []):
            opened = Path(path.lstrip("-").split(":")[0])
            for secret in hidden:
                assert not Path(secret).is_relative_to(opened), (key, path)
    node = unit_settings("reman-node.service")
    hidden = {path.lstrip("-") for path in node["InaccessiblePaths"]}
    assert {"/etc/reman/gateway-mqtt-password", "/etc/reman/session-secret"} <= hidden


def test_the_dashboard_store_lives_in_the_gateways_own_folder(tmp_path):
    install(tmp_path)
    gateway = tmp_path / "etc/reman/gateway.yaml"
    assert "path: /var/lib/reman-gateway/gateway.db" in gateway.read_text()
    assert "snapshots_dir: /var/lib/reman-gateway/snapshots" in gateway.read_text()
    assert check_file(gateway, "gateway") == "gateway"


def test_a_store_in_the_nodes_folder_is_moved_to_the_gateways(tmp_path):
    install(tmp_path)
    gateway = tmp_path / "etc/reman/gateway.yaml"
    old = gateway.read_text().replace("/var/lib/reman-gateway/", "/var/lib/reman/")
    gateway.write_text(old)
    var = tmp_path / "var/lib/reman"
    (var / "gateway.db").write_bytes(b"store")
    (var / "snapshots").mkdir()
    (var / "snapshots/st1.jpg").write_bytes(b"jpeg")
    out = install(tmp_path)
    moved = tmp_path / "var/lib/reman-gateway"
    assert (moved / "gateway.db").read_bytes() == b"store"
    assert (moved / "snapshots/st1.jpg").read_bytes() == b"jpeg"
    assert not (var / "gateway.db").exists() and not (var / "snapshots").exists()
    assert "/var/lib/reman-gateway/gateway.db" in gateway.read_text()
    assert (tmp_path / "etc/reman/gateway.yaml.reman-old").read_text() == old
    assert "moved the dashboard store" in out
