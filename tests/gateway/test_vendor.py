"""The vendored JavaScript matches the versions and checksums listed in its README."""

from __future__ import annotations

import hashlib
import re

from tests.conftest import REPO

VENDOR = REPO / "gateway" / "static" / "vendor"


def test_vendored_files_match_their_readme():
    table = re.findall(
        r"^\| (\S+) \| (\S+) \| (\S+) \| (.+?) \| ([0-9a-f]{64}) \|$",
        (VENDOR / "README.md").read_text(),
        re.M,
    )
    assert len(table) == 4
    for name, _package, _version, licence, sha in table:
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == sha, (
            f"{name} changed: refetch or update README"
        )
        licence_file = re.search(r"\((\S+\.LICENSE)\)", licence).group(1)
        assert (VENDOR / licence_file).exists()
