"""edge.mqtt.mosquitto: a broker restarted on a port that something else holds for a moment."""

from __future__ import annotations

import socket
import threading

import pytest

from edge.errors import BrokerError
from tests.support.broker import Mosquitto


def _hold(port: int) -> socket.socket:
    """Bind the port without listening, as a client socket that connected to itself would."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", port))
    return holder


def test_start_waits_for_a_port_that_is_released(tmp_path):
    broker = Mosquitto(tmp_path / "b")
    holder = _hold(broker.port)
    threading.Timer(1.0, holder.close).start()
    try:
        broker.start(timeout_s=10)
        with socket.create_connection(("127.0.0.1", broker.port), timeout=2):
            pass
        assert "Address already in use" in broker.log()  # it did meet the taken port
    finally:
        broker.stop()


def test_start_gives_up_on_a_port_that_stays_taken(tmp_path):
    broker = Mosquitto(tmp_path / "b")
    holder = _hold(broker.port)
    try:
        with pytest.raises(BrokerError, match="mosquitto exited with"):
            broker.start(timeout_s=2)
        assert not broker.running
    finally:
        holder.close()
