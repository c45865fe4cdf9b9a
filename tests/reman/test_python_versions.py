"""Python 3.10 to 3.13: JetPack 6 ships 3.10, Raspberry Pi OS 13 ships 3.13.

`vermin` reads every file for names newer than 3.10 (`datetime.UTC`, `asyncio.timeout`, ...).
One difference it cannot see: before 3.11, `asyncio.wait_for` raises `asyncio.TimeoutError`,
which a bare `except TimeoutError` does not catch.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("edge", "vision", "gateway", "reman", "bench", "tests")
VERMIN = Path(sys.executable).with_name("vermin")


def test_no_name_newer_than_python_3_10():
    done = subprocess.run(
        [str(VERMIN), "--target=3.10-", "--violations", "--no-tips", "--eval-annotations"]
        + [str(REPO / name) for name in SOURCES],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def _bare_timeouts_after_wait_for(path: Path) -> list[int]:
    """Lines of `except TimeoutError` whose `try` body awaits `asyncio.wait_for`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not isinstance(node, ast.Try):
            continue
        body = ast.Module(body=node.body, type_ignores=[])
        if "wait_for(" not in ast.unparse(body):
            continue
        for handler in node.handlers:
            if handler.type is not None and "asyncio.TimeoutError" not in ast.unparse(handler.type):
                if "TimeoutError" in ast.unparse(handler.type):
                    found.append(handler.lineno)
    return found


def test_wait_for_timeouts_are_caught_as_asyncio_timeout_error():
    wrong = [
        f"{path.relative_to(REPO)}:{line}"
        for name in SOURCES
        for path in sorted((REPO / name).rglob("*.py"))
        for line in _bare_timeouts_after_wait_for(path)
    ]
    assert not wrong, "catch asyncio.TimeoutError after wait_for (3.10): " + ", ".join(wrong)


def test_the_check_finds_a_bare_timeout_error(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import asyncio\n"
        "async def f(e):\n"
        "    try:\n"
        "        await asyncio.wait_for(e.wait(), 1)\n"
        "    except TimeoutError:\n"
        "        pass\n"
    )
    assert _bare_timeouts_after_wait_for(sample) == [5]


@pytest.mark.parametrize("name", ["datetime.UTC", "asyncio.timeout"])
def test_vermin_refuses_a_3_11_name(tmp_path, name):
    module, attr = name.split(".")
    (tmp_path / "new.py").write_text(f"import {module}\nx = {module}.{attr}\n")
    done = subprocess.run(
        [str(VERMIN), "--target=3.10-", "--violations", "--no-tips", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and name in done.stdout
