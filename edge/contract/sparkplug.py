"""Sparkplug B 3.0 on the wire: the payload schema, datatype codes, topic names and a codec.

The payload schema is written here from the Sparkplug 3.0 specification (chapter 6, "Payloads")
as a protobuf FileDescriptorProto built in Python, so there is no .proto file, no protoc step and
no generated module: `Payload` below is a real protobuf message class made by the `protobuf`
package's message factory. It holds the parts reman-edge uses (Payload, Metric, PropertySet,
PropertyValue, MetaData); the field numbers and types are the specification's, so any Sparkplug
decoder reads what we write, and what we read from others keeps the fields we do not know as
unknown fields.

    encode(metrics, seq=..., timestamp_ms=...) -> bytes     one Sparkplug B payload
    decode(data) -> Payload                                 ContractViolation when unreadable
    SparkplugTopics(group, node, device)                    spBv1.0/<group>/<type>/<node>[/<device>]
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import DecodeError

from edge.contract.errors import ContractViolation

NAMESPACE: Final = "spBv1.0"
ID_PATTERN: Final = r"^[A-Za-z0-9._-]{1,64}$"  # group, edge node and device ids: no + # /
BDSEQ: Final = "bdSeq"
REBIRTH: Final = "Node Control/Rebirth"
UNIT_PROPERTY: Final = "engUnit"  # the property Ignition's MQTT Engine shows as the tag's unit


class DataType(IntEnum):
    """Sparkplug B datatype codes (specification 6.4.16)."""

    INT8 = 1
    INT16 = 2
    INT32 = 3
    INT64 = 4
    UINT8 = 5
    UINT16 = 6
    UINT32 = 7
    UINT64 = 8
    FLOAT = 9
    DOUBLE = 10
    BOOLEAN = 11
    STRING = 12
    DATETIME = 13
    TEXT = 14


_INT32_TYPES = {
    DataType.INT8,
    DataType.INT16,
    DataType.INT32,
    DataType.UINT8,
    DataType.UINT16,
    DataType.UINT32,
}
_INT64_TYPES = {DataType.INT64, DataType.UINT64, DataType.DATETIME}
_STRING_TYPES = {DataType.STRING, DataType.TEXT}

# ---------------------------------------------------------------- the schema

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_PACKAGE = "reman.sparkplug_b"


def _field(
    message: descriptor_pb2.DescriptorProto,
    name: str,
    number: int,
    kind: int,
    *,
    label: int = _OPTIONAL,
    type_name: str | None = None,
    oneof: int | None = None,
) -> None:
    field = message.field.add(name=name, number=number, type=kind, label=label)
    if type_name:
        field.type_name = f".{_PACKAGE}.Payload.{type_name}"
    if oneof is not None:
        field.oneof_index = oneof


def _property_value(payload: descriptor_pb2.DescriptorProto) -> None:
    value = payload.nested_type.add(name="PropertyValue")
    value.oneof_decl.add(name="value")
    _field(value, "type", 1, _F.TYPE_UINT32)
    _field(value, "is_null", 2, _F.TYPE_BOOL)
    _field(value, "int_value", 3, _F.TYPE_UINT32, oneof=0)
    _field(value, "long_value", 4, _F.TYPE_UINT64, oneof=0)
    _field(value, "float_value", 5, _F.TYPE_FLOAT, oneof=0)
    _field(value, "double_value", 6, _F.TYPE_DOUBLE, oneof=0)
    _field(value, "boolean_value", 7, _F.TYPE_BOOL, oneof=0)
    _field(value, "string_value", 8, _F.TYPE_STRING, oneof=0)
    _field(value, "propertyset_value", 9, _F.TYPE_MESSAGE, type_name="PropertySet", oneof=0)
    props = payload.nested_type.add(name="PropertySet")
    _field(props, "keys", 1, _F.TYPE_STRING, label=_REPEATED)
    _field(props, "values", 2, _F.TYPE_MESSAGE, label=_REPEATED, type_name="PropertyValue")


def _metadata(payload: descriptor_pb2.DescriptorProto) -> None:
    meta = payload.nested_type.add(name="MetaData")
    for number, (name, kind) in enumerate(
        [
            ("is_multi_part", _F.TYPE_BOOL),
            ("content_type", _F.TYPE_STRING),
            ("size", _F.TYPE_UINT64),
            ("seq", _F.TYPE_UINT64),
            ("file_name", _F.TYPE_STRING),
            ("file_type", _F.TYPE_STRING),
            ("md5", _F.TYPE_STRING),
            ("description", _F.TYPE_STRING),
        ],
        start=1,
    ):
        _field(meta, name, number, kind)


def _metric(payload: descriptor_pb2.DescriptorProto) -> None:
    metric = payload.nested_type.add(name="Metric")
    metric.oneof_decl.add(name="value")
    _field(metric, "name", 1, _F.TYPE_STRING)
    _field(metric, "alias", 2, _F.TYPE_UINT64)
    _field(metric, "timestamp", 3, _F.TYPE_UINT64)
    _field(metric, "datatype", 4, _F.TYPE_UINT32)
    _field(metric, "is_historical", 5, _F.TYPE_BOOL)
    _field(metric, "is_transient", 6, _F.TYPE_BOOL)
    _field(metric, "is_null", 7, _F.TYPE_BOOL)
    _field(metric, "metadata", 8, _F.TYPE_MESSAGE, type_name="MetaData")
    _field(metric, "properties", 9, _F.TYPE_MESSAGE, type_name="PropertySet")
    _field(metric, "int_value", 10, _F.TYPE_UINT32, oneof=0)
    _field(metric, "long_value", 11, _F.TYPE_UINT64, oneof=0)
    _field(metric, "float_value", 12, _F.TYPE_FLOAT, oneof=0)
    _field(metric, "double_value", 13, _F.TYPE_DOUBLE, oneof=0)
    _field(metric, "boolean_value", 14, _F.TYPE_BOOL, oneof=0)
    _field(metric, "string_value", 15, _F.TYPE_STRING, oneof=0)
    _field(metric, "bytes_value", 16, _F.TYPE_BYTES, oneof=0)


def _schema() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="reman/sparkplug_b.proto", package=_PACKAGE, syntax="proto2"
    )
    payload = file.message_type.add(name="Payload")
    _property_value(payload)
    _metadata(payload)
    _metric(payload)
    _field(payload, "timestamp", 1, _F.TYPE_UINT64)
    _field(payload, "metrics", 2, _F.TYPE_MESSAGE, label=_REPEATED, type_name="Metric")
    _field(payload, "seq", 3, _F.TYPE_UINT64)
    _field(payload, "uuid", 4, _F.TYPE_STRING)
    _field(payload, "body", 5, _F.TYPE_BYTES)
    return file


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_schema())
Payload: Any = message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.Payload"))


# ---------------------------------------------------------------- metrics


@dataclass(frozen=True)
class MetricValue:
    """One metric to encode: name, datatype, value (None is a null), optional unit and time."""

    name: str
    datatype: DataType
    value: Any = None
    unit: str | None = None
    timestamp_ms: int | None = None
    historical: bool = False


def now_ms() -> int:
    """Milliseconds since the Unix epoch, UTC (every Sparkplug timestamp is one)."""
    return int(time.time() * 1000)


def encode(
    metrics: list[MetricValue], *, seq: int | None, timestamp_ms: int | None = None
) -> bytes:
    """One Sparkplug B payload; `seq` None leaves it out (NDEATH carries none)."""
    payload = Payload(timestamp=now_ms() if timestamp_ms is None else timestamp_ms)
    if seq is not None:
        payload.seq = seq
    for metric in metrics:
        _fill(payload.metrics.add(), metric)
    return payload.SerializeToString()


def _fill(out: Any, metric: MetricValue) -> None:
    out.name = metric.name
    out.datatype = int(metric.datatype)
    out.timestamp = metric.timestamp_ms if metric.timestamp_ms is not None else now_ms()
    if metric.historical:
        out.is_historical = True
    if metric.unit:
        out.properties.keys.append(UNIT_PROPERTY)
        out.properties.values.add(type=int(DataType.STRING), string_value=metric.unit)
    if metric.value is None:
        out.is_null = True
        return
    _set_value(out, metric.datatype, metric.value)


def _set_value(out: Any, datatype: DataType, value: Any) -> None:
    # Signed integers travel as their two's complement in the unsigned field (specification 6.4.16).
    if datatype in _INT32_TYPES:
        out.int_value = int(value) & 0xFFFFFFFF
    elif datatype in _INT64_TYPES:
        out.long_value = int(value) & 0xFFFFFFFFFFFFFFFF
    elif datatype == DataType.FLOAT:
        out.float_value = float(value)
    elif datatype == DataType.DOUBLE:
        out.double_value = float(value)
    elif datatype == DataType.BOOLEAN:
        out.boolean_value = bool(value)
    elif datatype in _STRING_TYPES:
        out.string_value = str(value)
    else:
        raise ContractViolation(f"sparkplug: datatype {datatype!r} is not supported here")


def decode(data: bytes) -> Any:
    """A Sparkplug B payload; ContractViolation when the bytes are not one."""
    payload = Payload()
    try:
        payload.ParseFromString(data)
    except DecodeError as exc:
        raise ContractViolation(f"sparkplug: not a Sparkplug B payload: {exc}") from exc
    return payload


def value_of(metric: Any) -> Any:
    """A decoded metric's value as Python (None for a null or a metric without one)."""
    if metric.is_null or metric.WhichOneof("value") is None:
        return None
    return getattr(metric, metric.WhichOneof("value"))


# ---------------------------------------------------------------- topics and STATE


class SparkplugTopics:
    """The topics of one edge node and its device (specification chapter 4)."""

    def __init__(self, group: str, node: str, device: str):
        for what, value in (("group id", group), ("edge node id", node), ("device id", device)):
            if not re.fullmatch(ID_PATTERN, value):
                raise ContractViolation(f"sparkplug {what} {value!r} does not match {ID_PATTERN}")
        self.group, self.node, self.device = group, node, device
        base = f"{NAMESPACE}/{group}"
        self.nbirth = f"{base}/NBIRTH/{node}"
        self.ndeath = f"{base}/NDEATH/{node}"
        self.ncmd = f"{base}/NCMD/{node}"
        self.dbirth = f"{base}/DBIRTH/{node}/{device}"
        self.ddata = f"{base}/DDATA/{node}/{device}"
        self.ddeath = f"{base}/DDEATH/{node}/{device}"
        self.dcmd_any = f"{base}/DCMD/{node}/+"
        self.dcmd_prefix = f"{base}/DCMD/{node}/"

    @staticmethod
    def state(host_id: str) -> str:
        """The primary host application's STATE topic (Sparkplug 3.0)."""
        return f"{NAMESPACE}/STATE/{host_id}"


@dataclass(frozen=True)
class HostState:
    """A primary host's STATE message: {"online": bool, "timestamp": ms}."""

    online: bool
    timestamp_ms: int

    @classmethod
    def parse(cls, data: bytes) -> HostState:
        """ContractViolation unless `data` is a Sparkplug 3.0 STATE payload."""
        try:
            body = json.loads(data)
        except (UnicodeDecodeError, ValueError) as exc:
            raise ContractViolation(f"STATE payload is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ContractViolation("STATE payload is not a JSON object")
        online, timestamp = body.get("online"), body.get("timestamp")
        if not isinstance(online, bool):
            raise ContractViolation("STATE payload lacks a boolean `online`")
        if isinstance(timestamp, bool) or not isinstance(timestamp, int):
            raise ContractViolation("STATE payload lacks an integer `timestamp`")
        return cls(online, timestamp)

    def to_payload(self) -> bytes:
        """The JSON a host publishes (for tests and tools)."""
        return json.dumps({"online": self.online, "timestamp": self.timestamp_ms}).encode()
