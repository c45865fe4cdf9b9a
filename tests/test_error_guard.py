"""The suite's error guard (tests/conftest.py `no_unexpected_errors`) itself: a test that logs
an ERROR, or emits an error event, fails unless it says it expects that error.

Each case runs in a pytest of its own (a subprocess), so its ERROR logs stay out of this run's
own guard."""

from __future__ import annotations

import pytest

from tests.conftest import REPO

pytest_plugins = ["pytester"]

CONFTEST = """
from tests.conftest import no_unexpected_errors, pytest_configure  # noqa: F401
"""

CASES = """
import logging

import pytest

from edge.events import Events


def test_logs_an_error():
    logging.getLogger("reman.x").error("boom")


@pytest.mark.expect_errors
def test_expects_any_error():
    logging.getLogger("reman.x").error("boom")


@pytest.mark.expect_errors("reman.x: bo+m")
def test_expects_this_error():
    logging.getLogger("reman.x").error("boom")


@pytest.mark.expect_errors("another thing")
def test_expects_another_error():
    logging.getLogger("reman.x").error("boom")


def test_emits_an_error_event():
    Events("guard-1").error("camera_lost", "no frames for 5 s")


def test_logs_a_warning():
    logging.getLogger("reman.x").warning("only a warning")
"""


@pytest.fixture
def guarded(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.RunResult:
    """The cases run by a pytest with the suite's guard, importing `tests` and `edge`."""
    monkeypatch.setenv("PYTHONPATH", str(REPO))
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_cases=CASES)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rA")


def test_an_error_nobody_expected_fails_the_test(guarded):
    guarded.stdout.fnmatch_lines(
        [
            "ERROR test_cases.py::test_logs_an_error - Failed: unexpected ERROR log:*",
            "ERROR test_cases.py::test_expects_another_error - Failed: unexpected ERROR log:*",
            "ERROR test_cases.py::test_emits_an_error_event - Failed: unexpected ERROR log:*",
        ],
        consecutive=False,
    )
    assert "reman.x: boom" in guarded.stdout.str()
    assert "reman.events: camera_lost: no frames for 5 s" in guarded.stdout.str()


def test_an_expected_error_or_a_warning_passes(guarded):
    guarded.stdout.fnmatch_lines(
        [
            "PASSED test_cases.py::test_expects_any_error",
            "PASSED test_cases.py::test_expects_this_error",
            "PASSED test_cases.py::test_logs_a_warning",
        ],
        consecutive=False,
    )
    assert "ERROR test_cases.py::test_expects_any_error" not in guarded.stdout.str()
    assert "ERROR test_cases.py::test_expects_this_error" not in guarded.stdout.str()
    assert "ERROR test_cases.py::test_logs_a_warning" not in guarded.stdout.str()
    # The guard fails a test at teardown: its call passed, its teardown is the error.
    guarded.assert_outcomes(passed=6, errors=3)
