"""Fixtures for the plant tests: the MQTT tests' nodes, on the station broker."""

from __future__ import annotations

from tests.mqtt.conftest import node_factory, subscribers

__all__ = ["node_factory", "subscribers"]
