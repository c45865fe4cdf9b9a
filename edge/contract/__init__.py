"""The published contract, and what the node and the dashboard share beside it.

Owns: the MQTT message models and topic names (`messages`, re-exported here), the broker settings
and the one paho client builder (`broker`), the line-numbered YAML config loader (`configfile`),
UTC timestamps (`timefmt`), the CSV columns of a record (`table`), the product passport built
from records (`passport`), systemd's notify protocol and journal log lines (`systemd`) and this
package's exception tree (`errors`).

May import: `vision.severity` (the defect types) and third-party libraries. Nothing else of
`edge`: the gateway imports this package and no other part of `edge` (import-linter holds both).
"""

from edge.contract.errors import ContractViolation
from edge.contract.messages import (
    AVAILABLE_OFFLINE,
    AVAILABLE_ONLINE,
    COMMAND_MODELS,
    CORE_ID_PATTERN,
    DEFAULT_PREFIX,
    MAX_COMMAND_BYTES,
    PAYLOAD_MODELS,
    RESULT_MAX_BYTES,
    SCHEMA_VERSION,
    STATION_ID_PATTERN,
    AckCommand,
    CoreId,
    Credit,
    DecisionInfo,
    DefectResult,
    Disposition,
    Event,
    Impact,
    InspectionRecord,
    LinkState,
    Measurement,
    ModelInfo,
    OverrideCommand,
    OverrideInfo,
    Reason,
    Result,
    ResultError,
    RulesInfo,
    StationId,
    Stats,
    Topics,
    TriggerCommand,
    parse_command,
    parse_json,
    parse_topic,
    station_wildcards,
)
from vision.severity import DEFECT_TYPES  # the one definition; records carry these types

__all__ = [
    "AVAILABLE_OFFLINE",
    "AVAILABLE_ONLINE",
    "COMMAND_MODELS",
    "CORE_ID_PATTERN",
    "DEFAULT_PREFIX",
    "DEFECT_TYPES",
    "MAX_COMMAND_BYTES",
    "PAYLOAD_MODELS",
    "RESULT_MAX_BYTES",
    "SCHEMA_VERSION",
    "STATION_ID_PATTERN",
    "AckCommand",
    "ContractViolation",
    "CoreId",
    "Credit",
    "DecisionInfo",
    "DefectResult",
    "Disposition",
    "Event",
    "Impact",
    "InspectionRecord",
    "LinkState",
    "Measurement",
    "ModelInfo",
    "OverrideCommand",
    "OverrideInfo",
    "Reason",
    "Result",
    "ResultError",
    "RulesInfo",
    "StationId",
    "Stats",
    "Topics",
    "TriggerCommand",
    "parse_command",
    "parse_json",
    "parse_topic",
    "station_wildcards",
]
