"""The station's configuration: pydantic models, validated once at start-up.

Every field has a description; `python -m reman.schemas` turns these models into the JSON
Schemas in docs/config/. Secrets are written as `${ENV_VAR}` or as a `*_file` path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from edge.contract import STATION_ID_PATTERN
from edge.contract.broker import BrokerConfig
from edge.contract.identity import DEFAULT_ID_TEMPLATE, resolver_problem, template_problem
from edge.contract.sparkplug import ID_PATTERN as SPARKPLUG_ID_PATTERN


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---------------------------------------------------------------- OPC UA bench


class NodeMapping(_Section):
    """One bench value: a logical name mapped to an OPC UA node."""

    node_id: str = Field(
        description="Node id, by index (ns=2;s=Bench.LeakRate) or by URI (nsu=urn:...;s=Bench.LeakRate)."
    )
    unit: str | None = Field(
        default=None, description="Engineering unit the value is expected in, e.g. ml/min."
    )
    type: Literal["float", "int", "bool", "string"] = Field(
        default="float", description="Expected value type."
    )
    max_age_s: float | None = Field(
        default=None,
        gt=0,
        description="A value older than this is stale; default from the bench section.",
    )


class BenchSecurity(_Section):
    """OPC UA security for the bench connection."""

    policy: Literal["None", "Basic256Sha256"] = Field(
        default="None", description="Security policy."
    )
    mode: Literal["None", "Sign", "SignAndEncrypt"] = Field(
        default="None", description="Message security mode."
    )
    certificate: str | None = Field(
        default=None, description="Client certificate (DER or PEM); `reman bench certs` makes one."
    )
    private_key: str | None = Field(default=None, description="Client private key (PEM).")
    application_uri: str = Field(
        default="urn:reman-edge:client",
        description="Application URI; must match the certificate's subjectAltName URI.",
    )
    server_certificate: str | None = Field(
        default=None,
        description="The server certificate to trust; without it, the one the server offers is accepted unverified.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> BenchSecurity:
        if (self.policy == "None") != (self.mode == "None"):
            raise ValueError("policy and mode must both be None or both be set")
        if self.policy != "None" and not (self.certificate and self.private_key):
            raise ValueError("a secured connection needs certificate and private_key")
        return self


WritebackKey = Literal["code", "credit", "seq", "err", "revision", "core_id", "result_ready"]


class BenchConfig(_Section):
    """The test bench, read over OPC UA."""

    enabled: bool = Field(default=True, description="False for a station without a bench.")
    endpoint: str = Field(
        default="opc.tcp://127.0.0.1:4840",
        pattern=r"^opc\.tcp://",
        description="OPC UA endpoint URL.",
    )
    security: BenchSecurity = Field(
        default_factory=BenchSecurity, description="Security policy, mode and certificates."
    )
    username: str | None = Field(
        default=None, description="User name, when the server asks for one."
    )
    password: SecretStr | None = Field(default=None, description="Password; write ${ENV_VAR}.")
    password_file: str | None = Field(default=None, description="File holding the password.")
    timeout_s: float = Field(default=4.0, gt=0, description="Connect and request timeout, seconds.")
    mode: Literal["subscribe", "poll"] = Field(
        default="subscribe", description="Subscriptions, or polling for servers that limit them."
    )
    sampling_interval_ms: float = Field(
        default=100, ge=0, description="Sampling and publishing interval for subscriptions."
    )
    poll_interval_s: float = Field(
        default=0.5, gt=0, description="Interval between reads in poll mode."
    )
    max_age_s: float = Field(
        default=10.0, gt=0, description="Default: a value older than this is stale."
    )
    reconnect_min_s: float = Field(default=0.5, gt=0, description="First reconnect delay.")
    reconnect_max_s: float = Field(default=5.0, gt=0, description="Reconnect delay cap.")
    nodes: dict[str, NodeMapping] = Field(
        default_factory=dict, description="Measurements: logical name to node."
    )
    trigger_node: str | None = Field(
        default=None,
        description="Boolean node whose rising edge starts an inspection (e.g. PartPresent).",
    )
    core_id_node: str | None = Field(
        default=None, description="String node with the core id on the bench."
    )
    part_number_node: str | None = Field(
        default=None, description="String node with the part number."
    )
    result_ready_node: str | None = Field(
        default=None, description="Boolean node to wait for before the snapshot."
    )
    result_ready_timeout_s: float = Field(
        default=5.0, gt=0, description="How long to wait for result_ready_node."
    )
    writeback: dict[WritebackKey, str] = Field(
        default_factory=dict,
        description="Nodes the result is written to: code, credit, seq, err, revision (Int32), "
        "core_id (String), result_ready (Boolean, written true last, after the others); "
        "see docs/plc.md for the order.",
    )
    ack_node: str | None = Field(
        default=None,
        description="Int32 node the PLC writes the seq it took to (handshake.ack: opcua).",
    )
    writeback_attempts: int = Field(
        default=5, ge=1, le=100, description="Tries per result before write-back gives up."
    )
    writeback_retry_max_s: float = Field(
        default=10.0, gt=0, description="Cap of the delay between write-back tries (doubling)."
    )
    max_clock_skew_s: float = Field(
        default=5.0,
        gt=0,
        description="The bench's clock (its CurrentTime) further than this from the node's is "
        "one clock_skew event; staleness uses the node's receive time either way.",
    )
    clock_check_interval_s: float = Field(
        default=30.0, gt=0, description="How often the bench's clock is compared with ours."
    )


# ---------------------------------------------------------------- camera, model, core id


class CameraConfig(_Section):
    """Where images come from."""

    source: Literal["usb", "url", "gstreamer", "folder", "file"] = Field(
        default="folder", description="Kind of source."
    )
    device: int = Field(default=0, ge=0, description="USB camera index (source usb).")
    url: str | None = Field(
        default=None,
        description="RTSP or HTTP URL (source url), or a GStreamer pipeline (source gstreamer).",
    )
    path: str | None = Field(
        default=None,
        description="Folder replayed in order (source folder) or one image (source file).",
    )
    loop: bool = Field(default=True, description="Replay the folder from the start when it ends.")
    views: int = Field(
        default=1, ge=1, le=8, description="Frames taken per inspection (views of the core)."
    )
    width: int | None = Field(
        default=None, gt=0, description="Requested frame width (VideoCapture)."
    )
    height: int | None = Field(
        default=None, gt=0, description="Requested frame height (VideoCapture)."
    )
    reopen_min_s: float = Field(
        default=0.5, gt=0, description="First delay before reopening a failed camera."
    )
    reopen_max_s: float = Field(default=30.0, gt=0, description="Reopen delay cap.")
    min_brightness: float = Field(
        default=15.0, ge=0, le=255, description="Mean grey below this is 'too dark'."
    )
    max_brightness: float = Field(
        default=245.0, ge=0, le=255, description="Mean grey above this is 'overexposed'."
    )
    min_sharpness: float = Field(
        default=15.0, ge=0, description="Variance of the Laplacian below this is 'blurred'."
    )

    @model_validator(mode="after")
    def _source_fields(self) -> CameraConfig:
        if self.source in ("folder", "file") and not self.path:
            raise ValueError(f"source {self.source} needs path")
        if self.source in ("url", "gstreamer") and not self.url:
            raise ValueError(f"source {self.source} needs url")
        return self


class ModelConfig(_Section):
    """The grading model."""

    path: str = Field(
        default="models/reman-seg.onnx",
        description="ONNX model; its card is read from the file and from <path>.card.json.",
    )
    providers: list[str] | Literal["auto"] = Field(
        default="auto", description="onnxruntime providers; auto tries TensorRT, CUDA, then CPU."
    )
    threads: int = Field(
        default=1, ge=0, le=64, description="Intra-op threads (0: onnxruntime's choice)."
    )
    corrosion_table: Literal["iso4628-3", "astm-d610"] = Field(
        default="iso4628-3", description="Grade table for corrosion."
    )
    min_confidence: float = Field(
        default=0.6, ge=0, le=1, description="Below this a grade is uncertain (a REVIEW reason)."
    )
    tensorrt_cache_dir: str = Field(
        default="/var/lib/reman/tensorrt",
        title="TensorRT engine cache",
        description="Where TensorRT keeps the engines it builds (one folder per model file's "
        "sha256 and precision) and its timing cache, so only a new model's first start builds "
        "one; must be writable by the node.",
    )
    tensorrt_fp16: bool = Field(
        default=False,
        title="TensorRT FP16",
        description="Let TensorRT build FP16 kernels: faster on a Jetson, grades may differ "
        "slightly from FP32; check the model on its reference images before relying on it.",
    )


class CoreIdConfig(_Section):
    """How the core id is found."""

    sources: list[Literal["trigger", "bench", "label"]] = Field(
        default=["trigger", "bench", "label"], description="Where to look, in order."
    )
    policy: Literal["review", "reject"] = Field(
        default="review",
        description="No id readable: REVIEW with a generated id, or reject the core.",
    )


class TriggerConfig(_Section):
    """What starts an inspection."""

    interval_s: float | None = Field(
        default=None, gt=0, description="Inspect on this interval (demos); null for none."
    )
    queue_size: int = Field(
        default=4, ge=1, le=1000, description="Triggers waiting while one inspection runs."
    )
    overflow: Literal["drop_new", "drop_oldest"] = Field(
        default="drop_new",
        description="What happens to a trigger that finds the queue full (always an event).",
    )


class HandshakeConfig(_Section):
    """The PLC's result handshake."""

    ack_timeout_s: float = Field(
        default=10.0, gt=0, description="No ack within this is an ack_timeout event."
    )
    ack: Literal["mqtt", "opcua", "none"] = Field(
        default="mqtt",
        description="Where the PLC's ack comes from: MQTT ack/set, the bench's ack_node "
        "(OPC UA), or none (no ack expected, no ack_timeout events).",
    )


class JournalConfig(_Section):
    """The local journal (SQLite)."""

    path: str = Field(default="/var/lib/reman/journal.db", description="SQLite file.")
    images_dir: str = Field(
        default="/var/lib/reman/images", description="Where graded images and overlays are kept."
    )


class RetentionConfig(_Section):
    """How long things are kept."""

    image_max_age_days: float = Field(
        default=30, gt=0, description="Image files older than this are pruned (records are kept)."
    )
    image_disk_budget_mb: float = Field(
        default=2048, gt=0, description="Oldest image files are pruned beyond this total."
    )
    outbox_max_rows: int = Field(
        default=100_000,
        ge=10,
        description="Undelivered messages kept at most; beyond, the oldest non-result messages are dropped with an event.",
    )
    outbox_max_age_h: float = Field(
        default=72,
        gt=0,
        description="Undelivered messages older than this are dropped with an event.",
    )


class StatsConfig(_Section):
    """Health figures."""

    interval_s: float = Field(default=10, gt=0, description="Seconds between stats messages.")


class CommandsConfig(_Section):
    """Who may command the node over MQTT."""

    override_users: list[str] | None = Field(
        default=None,
        description="Users allowed in override/set and label/set; null allows any (the broker's ACL decides who may publish).",
    )
    records_per_minute: int = Field(
        default=10_000,
        ge=1000,
        le=1_000_000,
        description="Inspections records/get may queue again per minute (a bucket that refills "
        "evenly); a request beyond it is refused with command_rejected and asked again later "
        "by the gateway, so a looping or forged requester cannot flood the broker.",
    )


class SparkplugConfig(_Section):
    """Sparkplug B 3.0 beside the JSON contract (docs/sparkplug.md): the node as an edge node,
    the station as its device, on a second MQTT connection to the same broker."""

    enabled: bool = Field(default=False, description="Publish Sparkplug B as well as JSON.")
    group_id: str = Field(
        default="reman",
        pattern=SPARKPLUG_ID_PATTERN,
        description="Sparkplug group id (the second topic level).",
    )
    edge_node_id: str | None = Field(
        default=None,
        pattern=SPARKPLUG_ID_PATTERN,
        description="Sparkplug edge node id; default the station id.",
    )
    device_id: str | None = Field(
        default=None,
        pattern=SPARKPLUG_ID_PATTERN,
        description="Sparkplug device id of the station; default the station id.",
    )
    primary_host_id: str | None = Field(
        default=None,
        pattern=SPARKPLUG_ID_PATTERN,
        description="Primary host application id: births wait for its STATE to say online, "
        "and publishing holds while it says offline; null publishes without waiting.",
    )
    state_file: str | None = Field(
        default=None,
        description="Where the bdSeq counter is kept across restarts; default "
        "<journal path without suffix>.sparkplug.json beside the journal.",
    )


# ---------------------------------------------------------------- passports


class PassportConfig(_Section):
    """Who issues the station's core passports and how their persistent ids are made."""

    id_template: str = Field(
        default=DEFAULT_ID_TEMPLATE,
        description="How a core's persistent passport id is made: a GS1 Digital Link URI "
        "(https://id.example.com/01/{gtin}/21/{core_id}) or a URN (urn:reman:{operator}:{core_id}); "
        "placeholders core_id (required), operator, facility, family, part_number, gtin.",
    )
    operator: str | None = Field(
        default=None, description="Economic operator, e.g. the remanufacturer's name."
    )
    operator_id: str | None = Field(
        default=None,
        description="The operator's own id for passports (e.g. a GLN or registry id); fills {operator}.",
    )
    facility_id: str | None = Field(
        default=None,
        description="The facility's id for passports (e.g. a GLN); fills {facility}. The "
        "facility's name is the station's `site`.",
    )
    resolver_url_template: str | None = Field(
        default=None,
        description="Where a URN id resolves, for QR labels: an https:// URL with {id}, the core's "
        "URN percent-encoded (https://passport.example.com/{id}). Unset: a URN id gets no label. "
        "A GS1 Digital Link id is its own URL and needs none.",
    )

    @field_validator("id_template")
    @classmethod
    def _usable_template(cls, value: str) -> str:
        problem = template_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("resolver_url_template")
    @classmethod
    def _usable_resolver(cls, value: str | None) -> str | None:
        problem = resolver_problem(value) if value is not None else None
        if problem:
            raise ValueError(problem)
        return value


# ---------------------------------------------------------------- the station


class StationConfig(_Section):
    """One inspection station's edge node."""

    station_id: str = Field(
        pattern=STATION_ID_PATTERN,
        description="Station id, [a-z0-9][a-z0-9-]{0,31}; used in topics.",
    )
    site: str = Field(
        default="",
        max_length=128,
        description="Plant or site name, for the dashboard and passports.",
    )
    mqtt: BrokerConfig = Field(default_factory=BrokerConfig, description="MQTT broker.")
    bench: BenchConfig = Field(
        default_factory=lambda: BenchConfig(enabled=False), description="OPC UA test bench."
    )
    camera: CameraConfig = Field(description="Camera source.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Grading model.")
    families_dir: str = Field(
        default="config/families", description="Folder of product family YAML files."
    )
    core_id: CoreIdConfig = Field(
        default_factory=CoreIdConfig, description="Core id sources and policy."
    )
    trigger: TriggerConfig = Field(default_factory=TriggerConfig, description="Triggers.")
    handshake: HandshakeConfig = Field(
        default_factory=HandshakeConfig, description="PLC handshake."
    )
    journal: JournalConfig = Field(default_factory=JournalConfig, description="Journal.")
    retention: RetentionConfig = Field(default_factory=RetentionConfig, description="Retention.")
    stats: StatsConfig = Field(default_factory=StatsConfig, description="Health figures.")
    commands: CommandsConfig = Field(
        default_factory=CommandsConfig, description="Command authorisation."
    )
    sparkplug: SparkplugConfig = Field(
        default_factory=SparkplugConfig, description="Sparkplug B 3.0 (off by default)."
    )
    passport: PassportConfig = Field(
        default_factory=PassportConfig, description="Core passports: issuer and persistent ids."
    )

    @model_validator(mode="after")
    def _opcua_ack_needs_nodes(self) -> StationConfig:
        if self.handshake.ack == "opcua" and not (
            self.bench.enabled and self.bench.ack_node and "seq" in self.bench.writeback
        ):
            raise ValueError(
                "handshake.ack opcua needs an enabled bench with ack_node and writeback.seq"
            )
        return self

    def resolve_paths(self, base: Path) -> StationConfig:
        """Relative paths in the config are relative to the config file's folder."""

        def rel(p: str | None) -> str | None:
            if p is None or Path(p).is_absolute():
                return p
            return str((base / p).resolve())

        update: dict[str, object] = {
            "families_dir": rel(self.families_dir),
            "journal": self.journal.model_copy(
                update={"path": rel(self.journal.path), "images_dir": rel(self.journal.images_dir)}
            ),
            "model": self.model.model_copy(
                update={
                    "path": rel(self.model.path),
                    "tensorrt_cache_dir": rel(self.model.tensorrt_cache_dir),
                }
            ),
        }
        if self.camera.path:
            update["camera"] = self.camera.model_copy(update={"path": rel(self.camera.path)})
        return self.model_copy(update=update)
