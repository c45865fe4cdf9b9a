"""docs/mqtt.md covers every topic, schema file and event code of the MQTT side of the node."""

from __future__ import annotations

import re

import pytest

from edge.contract import Topics
from tests.conftest import REPO

DOC = (REPO / "docs/mqtt.md").read_text()
SOURCES = [
    "edge/mqtt/client.py",
    "edge/mqtt/publisher.py",
    "edge/mqtt/commands.py",
    "edge/mqtt/handshake.py",
    "edge/mqtt/sparkplug/client.py",
]


@pytest.mark.parametrize("kind", Topics.KINDS)
def test_every_topic_is_documented(kind):
    assert f"`reman/<station>/{kind}`" in DOC


@pytest.mark.parametrize("path", sorted(p.name for p in (REPO / "docs/mqtt").glob("*.schema.json")))
def test_every_schema_file_is_named(path):
    assert path in DOC


def event_codes() -> set[str]:
    codes: set[str] = set()
    for source in SOURCES:
        codes |= set(
            re.findall(
                r'events\.(?:info|warning|error)\(\s*"([a-z_]+)"', (REPO / source).read_text()
            )
        )
    return codes


def test_every_event_code_is_documented():
    codes = event_codes()
    assert len(codes) >= 15
    missing = sorted(c for c in codes if f"`{c}`" not in DOC)
    assert not missing, f"event codes missing from docs/mqtt.md: {missing}"
