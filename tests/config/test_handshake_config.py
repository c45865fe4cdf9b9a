"""`handshake.ack` and the OPC UA write-back keys in the station config."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge.config.station import StationConfig

NSU = "nsu=urn:reman-edge:bench-sim;s=Bench."
BASE = {"station_id": "st1", "camera": {"source": "file", "path": "core.jpg"}}


def config(**sections) -> StationConfig:
    return StationConfig.model_validate({**BASE, **sections})


def test_the_earlier_writeback_keys_still_work_and_ack_defaults_to_mqtt():
    cfg = config(bench={"writeback": {"code": NSU + "Disposition", "seq": NSU + "Seq"}})
    assert cfg.handshake.ack == "mqtt" and set(cfg.bench.writeback) == {"code", "seq"}
    assert cfg.bench.max_clock_skew_s == 5.0


def test_ack_opcua_with_an_ack_node_and_a_seq_node():
    bench = {
        "writeback": {"seq": NSU + "Seq", "result_ready": NSU + "DispositionReady"},
        "ack_node": NSU + "Ack",
    }
    assert config(bench=bench, handshake={"ack": "opcua"}).handshake.ack == "opcua"


@pytest.mark.parametrize(
    "bench",
    [
        {"writeback": {"seq": NSU + "Seq"}},  # no ack node
        {"ack_node": NSU + "Ack"},  # no seq to acknowledge
        {"enabled": False, "ack_node": NSU + "Ack", "writeback": {"seq": NSU + "Seq"}},
    ],
)
def test_ack_opcua_without_its_nodes_is_refused(bench):
    with pytest.raises(ValidationError, match="handshake.ack opcua needs"):
        config(bench=bench, handshake={"ack": "opcua"})


def test_an_unknown_writeback_key_is_refused():
    with pytest.raises(ValidationError, match="writeback"):
        config(bench={"writeback": {"colour": NSU + "Seq"}})
