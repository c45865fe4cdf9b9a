"""The MQTT contract, schema 1: topic names and a pydantic model for every payload.

The gateway imports `edge.contract` and nothing else of `edge`. DESIGN.md and docs/mqtt.md
describe it for people; `python -m reman.schemas` writes the JSON Schemas in docs/mqtt/ from the
models here, and a test fails when they drift.
"""

from __future__ import annotations

import json
import re
from enum import IntEnum
from functools import lru_cache
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from edge.contract.errors import ContractViolation

SCHEMA_VERSION: Final = 1
DEFAULT_PREFIX = "reman"
STATION_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,31}$"
CORE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$"
RESULT_MAX_BYTES = 256
AVAILABLE_ONLINE = "online"  # retained on `available` after every connect
AVAILABLE_OFFLINE = "offline"  # the Last Will, and published on a clean stop

StationId = Annotated[str, StringConstraints(pattern=STATION_ID_PATTERN)]
M = TypeVar("M", bound=BaseModel)

CoreId = Annotated[str, StringConstraints(pattern=CORE_ID_PATTERN)]
MaskName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class Disposition(IntEnum):
    """Disposition codes on the `result` topic (the PLC diverts the core by these)."""

    NONE = 0
    REUSE = 1
    REMANUFACTURE = 2
    RECYCLE = 3
    REVIEW = 4


class Credit(IntEnum):
    """Core credit tiers of a core return programme."""

    UNKNOWN = 0
    FULL = 1
    PARTIAL = 2
    NONE = 3


class ResultError(IntEnum):
    """The `err` field of `result`: why a result carries code 0."""

    OK = 0
    INSPECTION_FAILED = 1
    REJECTED_NO_CORE_ID = 2


def _integer(value: Any) -> Any:
    """JSON `true` is not 1 and `3.0` is not 3: every integer of the contract is a JSON integer."""
    if isinstance(value, bool) or not isinstance(value, int):
        kind = {bool: "a boolean", float: "a decimal number", str: "a string"}
        raise PydanticCustomError(
            "int_type",
            "Input should be an integer, not {kind}",
            {"kind": kind.get(type(value), type(value).__name__)},
        )
    return value


Integer = Annotated[int, BeforeValidator(_integer)]
DispositionCode = Annotated[Disposition, BeforeValidator(_integer)]
CreditCode = Annotated[Credit, BeforeValidator(_integer)]
ErrorCode = Annotated[ResultError, BeforeValidator(_integer)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- topics


class Topics:
    """Topic names for one station under a prefix."""

    KINDS = (
        "inspection",
        "result",
        "snapshot",
        "available",
        "stats",
        "event",
        "trigger/set",
        "ack/set",
        "override/set",
        "label/set",
        "frame",
        "shadow",
        "models",
        "frame/get",
        "model/set",
        "records/get",
    )
    COMMANDS = (
        "trigger/set",
        "ack/set",
        "override/set",
        "label/set",
        "frame/get",
        "model/set",
        "records/get",
    )

    def __init__(self, station: str, prefix: str = DEFAULT_PREFIX):
        if not re.fullmatch(STATION_ID_PATTERN, station):
            raise ContractViolation(f"station id {station!r} does not match {STATION_ID_PATTERN}")
        self.prefix = prefix
        self.station = station

    def topic(self, kind: str) -> str:
        """The full topic for one of KINDS."""
        if kind not in self.KINDS:
            raise ContractViolation(f"unknown topic kind {kind!r}")
        return f"{self.prefix}/{self.station}/{kind}"

    @property
    def inspection(self) -> str:
        return self.topic("inspection")

    @property
    def result(self) -> str:
        return self.topic("result")

    @property
    def snapshot(self) -> str:
        return self.topic("snapshot")

    @property
    def available(self) -> str:
        return self.topic("available")

    @property
    def stats(self) -> str:
        return self.topic("stats")

    @property
    def event(self) -> str:
        return self.topic("event")

    @property
    def trigger_set(self) -> str:
        return self.topic("trigger/set")

    @property
    def ack_set(self) -> str:
        return self.topic("ack/set")

    @property
    def override_set(self) -> str:
        return self.topic("override/set")

    @property
    def label_set(self) -> str:
        return self.topic("label/set")

    @property
    def frame(self) -> str:
        return self.topic("frame")

    @property
    def shadow(self) -> str:
        return self.topic("shadow")

    @property
    def models(self) -> str:
        return self.topic("models")

    @property
    def frame_get(self) -> str:
        return self.topic("frame/get")

    @property
    def model_set(self) -> str:
        return self.topic("model/set")

    @property
    def records_get(self) -> str:
        return self.topic("records/get")


def station_wildcards(prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Subscriptions a consumer of every station's output uses."""
    return [
        f"{prefix}/+/{k}"
        for k in (
            "inspection",
            "result",
            "snapshot",
            "available",
            "stats",
            "event",
            "frame",
            "shadow",
            "models",
        )
    ]


@lru_cache(maxsize=4096)  # a gateway sees the same few hundred topics again and again
def parse_topic(topic: str, prefix: str = DEFAULT_PREFIX) -> tuple[str, str] | None:
    """(station, kind) for a contract topic, or None for anything else."""
    head = prefix + "/"
    if not topic.startswith(head):
        return None
    station, _, kind = topic[len(head) :].partition("/")
    if not re.fullmatch(STATION_ID_PATTERN, station) or kind not in Topics.KINDS:
        return None
    return station, kind


# ---------------------------------------------------------------- the full record


class Reason(_Strict):
    """Why a decision came out as it did."""

    code: str = Field(
        description="Machine-readable reason code, e.g. corrosion_limit, measurement_missing."
    )
    text: str = Field(description="The reason in words for the operator.")
    rule: str | None = Field(default=None, description="The rule that fired, e.g. grade_limits[0].")


class DefectResult(_Strict):
    """One defect type's grade for the core (the worst over its views)."""

    area_pct: float = Field(
        ge=0, le=100, description="Defect share of the part's visible area, percent."
    )
    grade: Integer = Field(
        ge=0, description="Grade on the configured table (ISO 4628 degree by default)."
    )
    confidence: float = Field(ge=0, le=1, description="Model confidence for this grade, 0..1.")
    scale: str | None = Field(default=None, description="Grade table used, e.g. iso4628-3.")


class Measurement(_Strict):
    """One bench measurement as it was when the core was inspected."""

    value: float | int | bool | str | None = Field(
        description="The value; null when never received."
    )
    unit: str | None = Field(default=None, description="Engineering unit, e.g. ml/min.")
    status: str = Field(description="Good, Bad..., Uncertain..., Stale or Missing.")
    source_ts: str | None = Field(
        default=None, description="Source timestamp, UTC RFC 3339 (the bench's clock)."
    )
    received_ts: str | None = Field(
        default=None,
        description="When the node first received this value, UTC RFC 3339 (the node's clock); "
        "staleness is judged by it. Absent in records of older nodes.",
    )


class DecisionInfo(_Strict):
    """The disposition the rules decided."""

    code: DispositionCode = Field(
        description="0 none/error, 1 REUSE, 2 REMANUFACTURE, 3 RECYCLE, 4 REVIEW."
    )
    label: str = Field(description="The code's name.")
    credit: CreditCode = Field(description="0 unknown, 1 full, 2 partial, 3 none.")
    reasons: list[Reason] = Field(
        default_factory=list, description="Every reason that contributed."
    )


class ModelInfo(_Strict):
    """The grading model that graded the core."""

    name: str = Field(description="Model name from its card.")
    version: str = Field(description="Model version from its card.")
    sha256: str = Field(description="sha256 of the ONNX file.")
    synthetic_only: bool | None = Field(
        default=None,
        description="True when the model's card says it was trained on generated images only (not to be trusted on real parts before it is retrained); null: the card does not say.",
    )


class RulesInfo(_Strict):
    """The rules that decided."""

    version: str = Field(description="Short rules version (prefix of sha256).")
    sha256: str = Field(description="sha256 of the family's rules in canonical form.")


class OverrideInfo(_Strict):
    """A person's change of the decision; the original decision stays in `decision`."""

    code: DispositionCode = Field(description="The effective code after the override.")
    label: str = Field(description="The effective code's name.")
    credit: CreditCode = Field(default=Credit.UNKNOWN, description="Credit after the override.")
    reason: str = Field(description="Why the person changed it.")
    user: str = Field(description="Who changed it.")
    ts: str = Field(description="When, UTC RFC 3339.")


class FigureMethod(_Strict):
    """Where one impact figure comes from and how uncertain it is."""

    low_kg: float = Field(description="Low end of the figure's uncertainty range, kg.")
    high_kg: float = Field(description="High end of the figure's uncertainty range, kg.")
    source: str = Field(description="The citation the factor and its range come from.")


class ImpactMethod(_Strict):
    """How the decision's impact figures were computed (docs/impact.md)."""

    formula: str = Field(description="The figures' formula for this decision, with its factors.")
    sources: list[str] = Field(
        default_factory=list, description="The family's sources for its impact figures."
    )
    co2e_avoided: FigureMethod | None = Field(
        default=None, description="Range and source of the CO2e avoided; null when not given."
    )
    material_kept: FigureMethod | None = Field(
        default=None, description="Range and source of the material kept; null when not given."
    )


class Impact(_Strict):
    """The decision's environmental effect against making a new part."""

    known: bool = Field(description="False when the family has no impact figures.")
    material_kept_kg: float | None = Field(default=None, description="Material kept in use, kg.")
    co2e_avoided_kg: float | None = Field(
        default=None, description="CO2e avoided against a new part, kg."
    )
    method: ImpactMethod | None = Field(
        default=None,
        description="How the figures were computed, their sources and ranges; absent in records "
        "of older nodes and when the figures are unknown.",
    )


BatteryStatus = Literal["Original", "Repurposed", "Re-used", "Remanufactured", "Waste"]
BatteryDecision = Literal["REUSE", "REMANUFACTURE", "RECYCLE"]


def _default_battery_status() -> dict[BatteryDecision, BatteryStatus]:
    return {"REMANUFACTURE": "Remanufactured", "REUSE": "Repurposed", "RECYCLE": "Waste"}


class BatterySpec(_Strict):
    """A battery family's passport facts: which values come from where (DIN DKE SPEC 99100).

    Records carry it, as they carry the limits, so the gateway builds the same battery passport
    as the node without the family files.
    """

    status_by_decision: dict[BatteryDecision, BatteryStatus] = Field(
        default_factory=_default_battery_status,
        description="Battery status (Battery Pass batteryStatus) per effective decision; a "
        "decision not listed (REVIEW) leaves the status unknown.",
    )
    capacity_measurement: str = Field(
        description="The bench measurement of the capacity, in % of rated or in Ah."
    )
    rated_capacity_ah: float | None = Field(
        default=None, gt=0, description="Rated capacity, Ah (needed when capacity is in Ah)."
    )
    resistance_measurement: str | None = Field(
        default=None, description="The bench measurement of the internal resistance, mOhm."
    )
    rated_resistance_mohm: float | None = Field(
        default=None, gt=0, description="Internal resistance when new (beginning of life), mOhm."
    )
    end_of_life_resistance_mohm: float | None = Field(
        default=None,
        gt=0,
        description="Internal resistance at which the battery's power is at end of life, mOhm.",
    )
    original_id_from: Literal["core_id", "measurement", "template", "unknown"] = Field(
        description="Where the original battery's passport id comes from: core_id (the core's id "
        "as read from its label or the bench, never a generated one), measurement (a bench node, "
        "original_id_measurement), template (original_id_template) or unknown."
    )
    original_id_measurement: str | None = Field(
        default=None, description="The bench measurement (a string node) holding the original id."
    )
    original_id_template: str | None = Field(
        default=None,
        description="The original passport id from the core's id: a URI or URN with {core_id} "
        "(and {part_number}), e.g. urn:oem:battery:{core_id}.",
    )

    @model_validator(mode="after")
    def _sources_named(self) -> BatterySpec:
        if self.original_id_from == "measurement" and not self.original_id_measurement:
            raise ValueError("original_id_from: measurement needs original_id_measurement")
        if self.original_id_from == "template" and "{core_id}" not in (
            self.original_id_template or ""
        ):
            raise ValueError("original_id_from: template needs original_id_template with {core_id}")
        if (
            self.end_of_life_resistance_mohm is not None
            and self.rated_resistance_mohm is not None
            and self.end_of_life_resistance_mohm <= self.rated_resistance_mohm
        ):
            raise ValueError("end_of_life_resistance_mohm must be above rated_resistance_mohm")
        return self


class GradeLimits(_Strict):
    """A defect type's grade limits under the family's rules: a grade at or above one gives its
    outcome (on the 0..5 severity scale the rules read); below both, REUSE."""

    remanufacture_at: Integer | None = Field(
        default=None, ge=0, description="Grade at or above which the core is remanufactured."
    )
    recycle_at: Integer | None = Field(
        default=None, ge=0, description="Grade at or above which the core is recycled."
    )


class MeasurementLimits(_Strict):
    """A measurement's allowed range and unit under the family's rules."""

    unit: str = Field(description="The unit the rules expect, e.g. ml/min.")
    description: str = Field(default="", description="What is measured, for the operator.")
    min: float | None = Field(default=None, description="Below this: the `out_of_spec` outcome.")
    max: float | None = Field(default=None, description="Above this: the `out_of_spec` outcome.")
    out_of_spec: str = Field(
        default="REMANUFACTURE", description="The outcome's name outside [min, max]."
    )
    recycle_below: float | None = Field(default=None, description="Below this: RECYCLE.")
    recycle_above: float | None = Field(default=None, description="Above this: RECYCLE.")


class DecidingLimit(_Strict):
    """A limit that gave the decision its outcome (one of the reasons' rules)."""

    rule: str = Field(
        description="The rule as the reasons name it: grades.wear.remanufacture_at, "
        "measurements.flow_l_min.min or rules[0] (a family rule over several inputs)."
    )
    defects: list[str] = Field(default_factory=list, description="The defect types it reads.")
    measurements: list[str] = Field(default_factory=list, description="The measurements it reads.")


class Limits(_Strict):
    """The family's limits that the rules held the core's grades and measurements against."""

    grades: dict[str, GradeLimits] = Field(
        default_factory=dict, description="Per defect type the family grades."
    )
    measurements: dict[str, MeasurementLimits] = Field(
        default_factory=dict, description="Per measurement of the family (only these are its own)."
    )
    deciding: list[DecidingLimit] = Field(
        default_factory=list,
        description="The limits whose outcome the decision took; empty when none did (REUSE "
        "within every limit, or REVIEW for missing or untrusted inputs).",
    )


class InspectionRecord(_Strict):
    """The full record of one inspection (topic `inspection`)."""

    schema_: Literal[1] = Field(
        default=SCHEMA_VERSION, alias="schema", description="Contract schema version."
    )
    id: str = Field(
        min_length=1,
        max_length=64,
        description="Time-ordered unique id; consumers deduplicate by it.",
    )
    seq: Integer = Field(
        ge=0, description="Per-station sequence number, monotonic across restarts."
    )
    revision: int = Field(
        default=1,
        ge=1,
        strict=True,
        description="1 when first published; the node adds 1 each time it republishes the record "
        "changed (an override). Consumers keep the highest revision of a station's id.",
    )
    ts: str = Field(description="Inspection time, UTC RFC 3339.")
    station: StationId = Field(description="Station id.")
    core_id: CoreId = Field(description="The core's id (from trigger, bench, label or generated).")
    core_id_source: str | None = Field(
        default=None, description="trigger, bench, label or generated."
    )
    family: str | None = Field(default=None, description="Product family id, null when unknown.")
    part_number: str | None = Field(default=None, description="Part number, when known.")
    defects: dict[str, DefectResult] = Field(default_factory=dict, description="Per defect type.")
    measurements: dict[str, Measurement] = Field(
        default_factory=dict, description="Per bench measurement."
    )
    decision: DecisionInfo = Field(description="The rules' decision.")
    override: OverrideInfo | None = Field(default=None, description="A person's override, if any.")
    impact: Impact | None = Field(
        default=None, description="Environmental effect of the effective decision."
    )
    model: ModelInfo | None = Field(
        default=None, description="Grading model, null when no image was graded."
    )
    rules: RulesInfo | None = Field(
        default=None, description="Rules version, null for an unknown family."
    )
    limits: Limits | None = Field(
        default=None,
        description="The family's limits that decided, null for an unknown family and in records "
        "from nodes before limits were recorded.",
    )
    battery: BatterySpec | None = Field(
        default=None,
        description="The family's battery-passport facts, null for a family that is not a battery.",
    )
    timings_ms: dict[str, float] = Field(
        default_factory=dict, description="Milliseconds per stage."
    )
    images: list[str] = Field(default_factory=list, description="Image file names on the node.")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    def effective_code(self) -> Disposition:
        """The code in force: the override's, else the rules'."""
        return self.override.code if self.override else self.decision.code

    def effective_credit(self) -> Credit:
        """The credit in force."""
        return self.override.credit if self.override else self.decision.credit

    def to_json(self) -> str:
        """The payload as published."""
        return self.model_dump_json(by_alias=True)


# ---------------------------------------------------------------- the PLC's compact result


class Result(_Strict):
    """The compact, retained result a PLC reads (topic `result`)."""

    seq: Integer = Field(
        ge=0, le=2**31 - 1, description="Sequence number, to acknowledge on ack/set."
    )
    core: CoreId = Field(description="Core id.")
    code: DispositionCode = Field(description="Disposition code.")
    credit: CreditCode = Field(description="Core credit tier.")
    err: ErrorCode = Field(default=ResultError.OK, description="0 ok; non-zero explains a code 0.")

    @classmethod
    def build(cls, seq: int, core: str, code: int, credit: int, err: int = 0) -> Result:
        """A result from plain values; ContractViolation (never a truncated result) when invalid."""
        try:
            return cls.model_validate(
                {"seq": seq, "core": core, "code": code, "credit": credit, "err": err}
            )
        except ValidationError as exc:
            raise ContractViolation(f"result refused: {_first_error(exc)}") from exc

    def to_payload(self) -> bytes:
        """ASCII JSON without whitespace, at most RESULT_MAX_BYTES; raise ContractViolation if not."""
        text = json.dumps(
            {
                "seq": self.seq,
                "core": self.core,
                "code": int(self.code),
                "credit": int(self.credit),
                "err": int(self.err),
            },
            separators=(",", ":"),
            ensure_ascii=True,
        )
        data = text.encode("ascii")
        if len(data) > RESULT_MAX_BYTES:
            raise ContractViolation(
                f"result payload is {len(data)} bytes, limit {RESULT_MAX_BYTES}"
            )
        return data


# ---------------------------------------------------------------- health and events


class LinkState(_Strict):
    """A connection's state and since when."""

    state: str = Field(description="connected, connecting, disconnected or disabled.")
    since: str | None = Field(default=None, description="Since when, UTC RFC 3339.")


class Stats(_Strict):
    """Node health figures (topic `stats`)."""

    ts: str = Field(description="When the figures were taken.")
    station: StationId = Field(description="Station id.")
    uptime_s: float = Field(ge=0, description="Seconds since the node started.")
    inspections: Integer = Field(ge=0, description="Inspections since start.")
    decisions: dict[str, Integer] = Field(
        default_factory=dict, description="Count per disposition label."
    )
    latency_ms: dict[str, float | None] = Field(
        default_factory=dict, description="Trigger-to-result p50 and p95."
    )
    bench: LinkState | None = Field(default=None, description="OPC UA bench link.")
    broker: LinkState | None = Field(default=None, description="MQTT broker link.")
    outbox_depth: Integer = Field(default=0, ge=0, description="Messages waiting in the outbox.")
    outbox_oldest_age_s: float | None = Field(
        default=None, description="Age of the oldest waiting message."
    )
    model: ModelInfo | None = Field(default=None, description="Grading model.")
    disk_free_mb: float | None = Field(
        default=None, description="Free disk space for the journal, MB."
    )
    cpu_temp_c: float | None = Field(
        default=None, description="CPU temperature where the board has a sensor."
    )
    circularity: dict[str, Any] | None = Field(
        default=None, description="Material kept and CO2e avoided since start."
    )
    last_seq: Integer | None = Field(
        default=None,
        ge=1,
        description="The seq of the latest inspection in the node's journal (none yet: absent); "
        "a gateway that stored less asks for the rest with records/get.",
    )


class Event(_Strict):
    """A warning or error worth an engineer's look (topic `event`)."""

    schema_: Literal[1] = Field(
        default=SCHEMA_VERSION, alias="schema", description="Contract schema version."
    )
    id: str = Field(min_length=1, max_length=64, description="Unique id.")
    ts: str = Field(description="When, UTC RFC 3339.")
    station: StationId = Field(description="Station id.")
    level: Literal["info", "warning", "error"] = Field(description="Severity.")
    code: str = Field(description="Machine-readable event code, e.g. command_rejected.")
    message: str = Field(description="What happened, in words.")
    detail: dict[str, Any] = Field(default_factory=dict, description="Facts for diagnosis.")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FrameReply(_Strict):
    """The raw frame of one inspection's view and the model's own masks (topic `frame`), sent
    once in answer to `frame/get`, for a person to label on the dashboard.

    When the node cannot give the frame (unknown inspection, image gone with retention), `error`
    says why and `image` is null.
    """

    schema_: Literal[1] = Field(
        default=SCHEMA_VERSION, alias="schema", description="Contract schema version."
    )
    id: str = Field(min_length=1, max_length=64, description="Inspection id.")
    station: StationId = Field(description="Station id.")
    view: Integer = Field(default=1, ge=1, le=16, description="The view (1 = the first frame).")
    command_id: str | None = Field(
        default=None, max_length=64, description="The `frame/get` command this answers."
    )
    ts: str = Field(description="When the node answered, UTC RFC 3339.")
    width: Integer | None = Field(default=None, ge=1, description="Frame width, pixels.")
    height: Integer | None = Field(default=None, ge=1, description="Frame height, pixels.")
    image: str | None = Field(
        default=None, description="The raw frame as taken: base64 JPEG; null with `error`."
    )
    masks: dict[MaskName, str] = Field(
        default_factory=dict,
        max_length=8,
        description="Defect type -> base64 PNG of the frame's size, non-zero where the active "
        "model sees that defect (the starting point for a person's label).",
    )
    model: str | None = Field(default=None, description="Version of the model that drew `masks`.")
    error: str | None = Field(default=None, description="Why no frame is given.")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ShadowReport(_Strict):
    """How the shadow (candidate) model graded and would have decided one inspection, beside
    what the active model did (topic `shadow`), published once the shadow has run."""

    schema_: Literal[1] = Field(
        default=SCHEMA_VERSION, alias="schema", description="Contract schema version."
    )
    id: str = Field(min_length=1, max_length=64, description="Inspection id.")
    station: StationId = Field(description="Station id.")
    ts: str = Field(description="When the shadow ran, UTC RFC 3339.")
    candidate: str = Field(description="The shadow model's version.")
    active: str | None = Field(default=None, description="The active model's version.")
    defects: dict[str, DefectResult] = Field(
        default_factory=dict, description="The shadow model's grades per defect type."
    )
    active_defects: dict[str, DefectResult] = Field(
        default_factory=dict, description="The active model's grades per defect type."
    )
    code: DispositionCode = Field(description="The decision the shadow's grades would have made.")
    active_code: DispositionCode = Field(description="The decision the active model made.")

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RegistryModel(_Strict):
    """One model in the node's registry."""

    version: str = Field(description="Version from its card.")
    name: str = Field(description="Name from its card.")
    task: str = Field(description="segment, classify or anomaly.")
    sha256: str = Field(description="sha256 of the ONNX file.")
    added: str = Field(description="When it was added, UTC RFC 3339.")
    role: Literal["active", "shadow"] | None = Field(
        default=None, description="active, shadow, or null (kept for rollback or later)."
    )


class ModelsState(_Strict):
    """The node's model registry (topic `models`, retained), published at start and after every
    change, so a dashboard knows what can be promoted or rolled back."""

    schema_: Literal[1] = Field(
        default=SCHEMA_VERSION, alias="schema", description="Contract schema version."
    )
    station: StationId = Field(description="Station id.")
    ts: str = Field(description="When, UTC RFC 3339.")
    active: str | None = Field(
        default=None, description="Version grading now; null: the configured model file."
    )
    shadow: str | None = Field(default=None, description="Version running in shadow.")
    can_roll_back: bool = Field(default=False, description="A previous active model exists.")
    models: list[RegistryModel] = Field(default_factory=list, description="Oldest first.")
    shadow_seen: Integer = Field(default=0, ge=0, description="Inspections the shadow graded.")
    shadow_skipped: Integer = Field(
        default=0, ge=0, description="Inspections the shadow skipped because the node was busy."
    )

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# ---------------------------------------------------------------- commands to the node


class TriggerCommand(_Strict):
    """`trigger/set`: inspect now (an empty payload is also a trigger)."""

    core: CoreId | None = Field(default=None, description="Core id, when the sender knows it.")


class AckCommand(_Strict):
    """`ack/set`: the PLC took the result with this seq."""

    seq: Integer = Field(ge=0, le=2**31 - 1, description="The acknowledged result's seq.")


class OverrideCommand(_Strict):
    """`override/set`: a person changes an inspection's decision."""

    id: str = Field(min_length=1, max_length=64, description="Inspection id.")
    code: Annotated[Literal[1, 2, 3, 4], BeforeValidator(_integer)] = Field(
        description="New disposition code."
    )
    credit: Annotated[Literal[0, 1, 2, 3], BeforeValidator(_integer)] | None = Field(
        default=None, description="New credit; kept when omitted."
    )
    reason: str = Field(min_length=1, max_length=500, description="Why.")
    user: str = Field(min_length=1, max_length=64, description="Who.")
    command_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Optional, unique per command (e.g. a time-ordered id); a redelivered command with the same id changes nothing.",
    )


class LabelCommand(_Strict):
    """`label/set`: a person's label of one view of an inspection, kept in the node's journal.

    Either the view is good (no defect anywhere) or it carries at least one mask: a PNG of the
    raw frame's size, base64, where non-zero pixels are that defect type.
    """

    id: str = Field(min_length=1, max_length=64, description="Inspection id.")
    view: Integer = Field(default=1, ge=1, le=16, description="The view (1 = the first frame).")
    good: bool = Field(default=False, description="The view shows no defect at all.")
    masks: dict[MaskName, str] = Field(
        default_factory=dict,
        max_length=8,
        description="Defect type -> base64 PNG of the raw frame's size, non-zero = that defect.",
    )
    user: str = Field(min_length=1, max_length=64, description="Who labelled.")
    command_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Optional, unique per command; a redelivered command with the same id changes nothing.",
    )

    @model_validator(mode="after")
    def _good_or_masks(self) -> LabelCommand:
        if self.good == bool(self.masks):
            raise ValueError("a label is either good or carries masks, not both nor neither")
        return self


class FrameRequest(_Strict):
    """`frame/get`: send the raw frame of one inspection's view and the model's masks on `frame`
    (the dashboard's label editor asks; the node answers once)."""

    id: str = Field(min_length=1, max_length=64, description="Inspection id.")
    view: Integer = Field(default=1, ge=1, le=16, description="The view (1 = the first frame).")
    user: str = Field(min_length=1, max_length=64, description="Who asked.")
    command_id: str | None = Field(
        default=None, min_length=1, max_length=64, description="Echoed in the reply."
    )


class ModelCommand(_Strict):
    """`model/set`: change the node's model registry; promote and rollback take effect from the
    next inspection."""

    action: Literal["shadow", "end_shadow", "promote", "rollback"] = Field(
        description="shadow VERSION, end_shadow, promote VERSION, or rollback to the previous."
    )
    version: str | None = Field(
        default=None, min_length=1, max_length=64, description="For shadow and promote."
    )
    reason: str = Field(min_length=1, max_length=500, description="Why.")
    user: str = Field(min_length=1, max_length=64, description="Who.")
    command_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        description="Optional, unique per command; a redelivered command with the same id changes nothing.",
    )

    @model_validator(mode="after")
    def _version_when_needed(self) -> ModelCommand:
        if (self.action in ("shadow", "promote")) != (self.version is not None):
            raise ValueError("shadow and promote name a version; end_shadow and rollback do not")
        return self


MAX_RECORDS_PER_REQUEST = 1000
"""The longest run of seqs one `records/get` may ask for."""


class RecordsRequest(_Strict):
    """`records/get`: publish the journal's inspections with seq `from_seq`..`to_seq` again on
    `inspection` (a consumer that found a gap in a station's seqs asks; the node answers from its
    journal, and consumers keep each record once by its id)."""

    from_seq: Integer = Field(ge=1, description="First seq wanted.")
    to_seq: Integer = Field(ge=1, description="Last seq wanted (at most 1000 after from_seq).")
    user: str = Field(min_length=1, max_length=64, description="Who asked (a gateway's name).")
    command_id: str | None = Field(
        default=None, min_length=1, max_length=64, description="Echoed in the node's event."
    )

    @model_validator(mode="after")
    def _a_bounded_run(self) -> RecordsRequest:
        if self.to_seq < self.from_seq:
            raise ValueError("to_seq is before from_seq")
        if self.to_seq - self.from_seq >= MAX_RECORDS_PER_REQUEST:
            raise ValueError(f"at most {MAX_RECORDS_PER_REQUEST} seqs per request")
        return self


COMMAND_MODELS: dict[str, type[BaseModel]] = {
    "trigger/set": TriggerCommand,
    "ack/set": AckCommand,
    "override/set": OverrideCommand,
    "label/set": LabelCommand,
    "frame/get": FrameRequest,
    "model/set": ModelCommand,
    "records/get": RecordsRequest,
}

PAYLOAD_MODELS: dict[str, type[BaseModel]] = {
    "inspection": InspectionRecord,
    "result": Result,
    "stats": Stats,
    "event": Event,
    "frame": FrameReply,
    "shadow": ShadowReport,
    "models": ModelsState,
    **COMMAND_MODELS,
}

MAX_COMMAND_BYTES = 4096
MAX_LABEL_BYTES = 4_000_000  # masks travel in the label; 8 PNG masks of a 5 MP frame fit
MAX_FRAME_BYTES = 8_000_000  # a raw JPEG and up to 8 PNG masks, base64
_MAX_BYTES = {"label/set": MAX_LABEL_BYTES}


def parse_command(kind: str, payload: bytes) -> BaseModel:
    """Validate a command payload against its model (strict types, at most MAX_COMMAND_BYTES;
    MAX_LABEL_BYTES for `label/set`).

    Raise ContractViolation saying why it was refused. An empty `trigger/set` is a trigger.
    """
    model = COMMAND_MODELS.get(kind)
    if model is None:
        raise ContractViolation(f"not a command topic: {kind}")
    if kind == "trigger/set" and len(payload) <= MAX_COMMAND_BYTES and not payload.strip():
        return TriggerCommand()
    # Strict: a PLC that sends "7" for an integer is told so, as the JSON Schema says.
    max_bytes = _MAX_BYTES.get(kind, MAX_COMMAND_BYTES)
    return parse_json(model, payload, max_bytes=max_bytes, strict=True)


def parse_json(model: type[M], payload: bytes, *, max_bytes: int, strict: bool = False) -> M:
    """The one payload validator: a JSON object of at most `max_bytes` that `model` accepts.

    NaN and Infinity are refused (JSON has no such numbers). Raise ContractViolation saying
    where and why, never a lower library's exception.
    """
    if len(payload) > max_bytes:
        raise ContractViolation(f"payload of {len(payload)} bytes exceeds {max_bytes}")
    if not strict and not _CONSTANTS.search(payload):
        # The common case, a station's record at the gateway: pydantic's own JSON parser reads
        # and validates in one pass. Anything it refuses is read again below, for the message.
        try:
            return model.model_validate_json(payload)
        except ValidationError:
            pass
    try:
        data = json.loads(payload.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ContractViolation(f"not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ContractViolation("(root): payload must be a JSON object")
    try:
        # None, not False, when lenient: False would also relax the fields that are strict on
        # their own (`revision`).
        return model.model_validate(data, strict=True if strict else None)
    except ValidationError as exc:
        raise ContractViolation(_first_error(exc)) from exc


_CONSTANTS = re.compile(rb"NaN|Infinity")
"""What json.loads would read as a number and JSON has not; a payload that holds them (even
inside a string) takes the slow path, which refuses them where they are numbers."""


def _refuse_constant(name: str) -> float:
    raise ContractViolation(f"{name} is not allowed in a payload")


def _first_error(exc: ValidationError) -> str:
    err = exc.errors(include_url=False)[0]
    return f"{'.'.join(map(str, err['loc'])) or '(root)'}: {err['msg']}"
