"""The station device's metrics: the catalogue its DBIRTH lists and the values of each record.

Each inspection record becomes one DDATA. Its values are taken from the record when the record
is written (`ddata_companion`, an outbox companion of the `inspection` message), stored as a
small JSON row of kind `sparkplug`, and encoded when the row leaves (the payload `seq` and
`is_historical` are known only then). Metric names use `/` folders, as Ignition shows them:

    Inspection/Id, Inspection/Seq, Inspection/Revision, Core/Id, Core/Family,
    Decision/Code, Decision/Label, Decision/Credit, Decision/Overridden, Decision/Reasons,
    Defects/<type>/Area (%), Defects/<type>/Grade, Defects/<type>/Confidence,
    Measurements/<name>/Value (its unit), Measurements/<name>/Status,
    Model/Name, Model/Version, Rules/Version

A record that brings a metric the catalogue lacks (a new measurement, a model with another
defect type) adds it; the client then publishes a rebirth before that DDATA, so every DDATA
metric was in the DBIRTH before it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from edge.config.station import NodeMapping
from edge.contract import NAMED_DEFECT_TYPES, InspectionRecord
from edge.contract.sparkplug import DataType, MetricValue
from edge.contract.timefmt import parse_ts
from edge.journal.outbox import Companion, OutboxMessage

KIND = "sparkplug"  # the outbox kind of a DDATA row

_BY_CONFIG_TYPE = {
    "float": DataType.DOUBLE,
    "int": DataType.INT64,
    "bool": DataType.BOOLEAN,
    "string": DataType.STRING,
}


@dataclass(frozen=True)
class MetricSpec:
    """A metric as the DBIRTH declares it."""

    name: str
    datatype: DataType
    unit: str | None = None


def _record_specs() -> list[MetricSpec]:
    return [
        MetricSpec("Inspection/Id", DataType.STRING),
        MetricSpec("Inspection/Seq", DataType.INT64),
        MetricSpec("Inspection/Revision", DataType.INT32),
        MetricSpec("Core/Id", DataType.STRING),
        MetricSpec("Core/Family", DataType.STRING),
        MetricSpec("Decision/Code", DataType.INT32),
        MetricSpec("Decision/Label", DataType.STRING),
        MetricSpec("Decision/Credit", DataType.INT32),
        MetricSpec("Decision/Overridden", DataType.BOOLEAN),
        MetricSpec("Decision/Reasons", DataType.STRING),
        MetricSpec("Model/Name", DataType.STRING),
        MetricSpec("Model/Version", DataType.STRING),
        MetricSpec("Rules/Version", DataType.STRING),
    ]


def _defect_specs(defect: str) -> list[MetricSpec]:
    return [
        MetricSpec(f"Defects/{defect}/Area", DataType.FLOAT, "%"),
        MetricSpec(f"Defects/{defect}/Grade", DataType.INT32),
        MetricSpec(f"Defects/{defect}/Confidence", DataType.FLOAT),
    ]


def _measurement_specs(name: str, datatype: DataType, unit: str | None) -> list[MetricSpec]:
    return [
        MetricSpec(f"Measurements/{name}/Value", datatype, unit),
        MetricSpec(f"Measurements/{name}/Status", DataType.STRING),
    ]


class Catalogue:
    """Every device metric in birth order, with the last value sent of each."""

    def __init__(
        self,
        measurements: dict[str, NodeMapping] | None = None,
        defect_types: tuple[str, ...] = NAMED_DEFECT_TYPES,
    ):
        specs = _record_specs()
        for defect in defect_types:
            specs += _defect_specs(defect)
        for name, node in (measurements or {}).items():
            specs += _measurement_specs(name, _BY_CONFIG_TYPE[node.type], node.unit)
        self.specs: dict[str, MetricSpec] = {spec.name: spec for spec in specs}
        self.last: dict[str, Any] = {}

    def add_missing(self, values: dict[str, Any]) -> list[str]:
        """Add the metrics of `values` the catalogue lacks (typed by value); return their names."""
        added = [name for name in values if name not in self.specs]
        for name in added:
            self.specs[name] = MetricSpec(name, _datatype_of(name, values[name]))
        return added

    def birth(self, timestamp_ms: int) -> list[MetricValue]:
        """The DBIRTH metrics: every one, with its last value (null before the first)."""
        return [
            MetricValue(
                s.name, s.datatype, _coerce(s.datatype, self.last.get(s.name)), s.unit, timestamp_ms
            )
            for s in self.specs.values()
        ]

    def data(
        self, values: dict[str, Any], timestamp_ms: int, historical: bool
    ) -> list[MetricValue]:
        """The DDATA metrics of one record's values (remembered as the last values sent)."""
        out = []
        for name, value in values.items():
            spec = self.specs[name]
            value = _coerce(spec.datatype, value)
            self.last[name] = value
            out.append(MetricValue(name, spec.datatype, value, spec.unit, timestamp_ms, historical))
        return out


def _datatype_of(name: str, value: Any) -> DataType:
    if name.endswith("/Status"):
        return DataType.STRING
    if isinstance(value, bool):
        return DataType.BOOLEAN
    if isinstance(value, int):
        return DataType.INT64
    if isinstance(value, str):
        return DataType.STRING
    return DataType.DOUBLE  # a float, or a null whose type the record does not say


def _coerce(datatype: DataType, value: Any) -> Any:
    """`value` fitting `datatype`, or None (a null) when it does not."""
    if value is None:
        return None
    try:
        if datatype == DataType.BOOLEAN:
            return value if isinstance(value, bool) else None
        if datatype in (DataType.STRING, DataType.TEXT):
            return str(value)
        if isinstance(value, bool) or isinstance(value, str):
            return None
        if datatype in (DataType.FLOAT, DataType.DOUBLE):
            return float(value)
        return int(value)
    except (TypeError, ValueError):
        return None


def record_values(record: InspectionRecord) -> dict[str, Any]:
    """The device metric values of one record (effective decision: after an override)."""
    override = record.override
    values: dict[str, Any] = {
        "Inspection/Id": record.id,
        "Inspection/Seq": record.seq,
        "Inspection/Revision": record.revision,
        "Core/Id": record.core_id,
        "Core/Family": record.family,
        "Decision/Code": int(record.effective_code()),
        "Decision/Label": override.label if override else record.decision.label,
        "Decision/Credit": int(record.effective_credit()),
        "Decision/Overridden": override is not None,
        "Decision/Reasons": ", ".join(r.code for r in record.decision.reasons),
        "Model/Name": record.model.name if record.model else None,
        "Model/Version": record.model.version if record.model else None,
        "Rules/Version": record.rules.version if record.rules else None,
    }
    for defect, result in record.defects.items():
        values[f"Defects/{defect}/Area"] = result.area_pct
        values[f"Defects/{defect}/Grade"] = result.grade
        values[f"Defects/{defect}/Confidence"] = result.confidence
    for name, measurement in record.measurements.items():
        values[f"Measurements/{name}/Value"] = measurement.value
        values[f"Measurements/{name}/Status"] = measurement.status
    return values


def record_time_ms(record: InspectionRecord) -> int:
    """The record's inspection time in ms since the epoch (each DDATA metric's timestamp)."""
    return int(parse_ts(record.ts).timestamp() * 1000)


def ddata_companion(topic: str) -> Companion:
    """An outbox companion: with each `inspection` message, a `sparkplug` row for `topic`."""

    def companion(message: OutboxMessage) -> list[OutboxMessage]:
        if message.kind != "inspection":
            return []
        record = InspectionRecord.model_validate_json(message.payload)
        row = {"ts": record_time_ms(record), "values": record_values(record)}
        return [
            OutboxMessage(
                kind=KIND,
                topic=topic,
                payload=json.dumps(row, separators=(",", ":")).encode(),
                qos=0,  # Sparkplug 3.0: DDATA is QoS 0, not retained
                msg_id=message.msg_id,
            )
        ]

    return companion
