"""Fixtures for the edge node's tests."""

from __future__ import annotations

import pytest

from edge.events import Events


@pytest.fixture
def events() -> tuple[Events, list]:
    """An Events object for station `test-1` and the list every event lands in."""
    seen: list = []
    return Events("test-1", sinks=[seen.append]), seen
