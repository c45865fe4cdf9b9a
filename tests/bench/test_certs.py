"""`reman bench certs` run with sudo: the node's service user must be able to read the key."""

from __future__ import annotations

import grp
import os
import pwd
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.bench import certs
from reman.cli import cli

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="giving files to a user needs root")


@pytest.fixture
def out():
    """A folder every user may pass through (pytest's tmp_path is root's alone)."""
    with tempfile.TemporaryDirectory(prefix="reman-certs-") as folder:
        os.chmod(folder, 0o711)
        yield Path(folder) / "bench"


def reads_as(user: str, path: Path) -> bool:
    """Whether `user`, with its own group alone, can read `path`."""
    gid = pwd.getpwnam(user).pw_gid
    done = subprocess.run(
        ["cat", str(path)], user=user, group=gid, extra_groups=[], capture_output=True, timeout=30
    )
    return done.returncode == 0 and done.stdout == path.read_bytes()


def certs_cmd(*args: str):
    result = CliRunner().invoke(cli, ["bench", "certs", *args])
    assert result.exit_code == 0, result.output
    return result


def test_owner_user_gets_both_files_and_alone_reads_the_key(out):
    result = certs_cmd("--out", str(out), "--owner", "nobody")
    key, nobody = out / "client-key.pem", pwd.getpwnam("nobody")
    for path in (key, out / "client-cert.der"):
        assert (path.stat().st_uid, path.stat().st_gid) == (nobody.pw_uid, nobody.pw_gid)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert reads_as("nobody", key)
    assert "owner: nobody (key mode 0600)" in result.output


def test_owner_user_and_group_lets_the_group_read_the_key(out):
    group = grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
    certs_cmd("--out", str(out), "--owner", f"root:{group}")
    key = out / "client-key.pem"
    assert key.stat().st_gid == grp.getgrnam(group).gr_gid
    assert stat.S_IMODE(key.stat().st_mode) == 0o640
    assert reads_as("nobody", key), "a member of the group reads it"


def test_as_root_the_files_go_to_the_service_user_by_default(out, monkeypatch):
    monkeypatch.setattr(certs, "SERVICE_USER", "nobody")
    certs_cmd("--out", str(out))
    assert reads_as("nobody", out / "client-key.pem")


def test_an_unknown_owner_is_a_clean_error_and_writes_nothing(out):
    result = CliRunner().invoke(
        cli, ["bench", "certs", "--out", str(out), "--owner", "no-such-user"]
    )
    assert result.exit_code == 1 and "no user named 'no-such-user'" in result.output
    assert not (out / "client-key.pem").exists()
