"""The gateway's configuration: pydantic models, and `load_gateway` that validates a file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress, SecretStr, field_validator

from edge.contract import StationId
from edge.contract.broker import BrokerConfig
from edge.contract.configfile import load_model
from edge.contract.identity import DEFAULT_ID_TEMPLATE, Issuer, resolver_problem, template_problem
from gateway.errors import StoreError
from gateway.formats import host_timezone, is_zone


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HttpConfig(_Section):
    """Where the dashboard listens."""

    host: str = Field(
        default="127.0.0.1", description="Address to bind; 0.0.0.0 to serve the plant network."
    )
    port: int = Field(
        default=8080, ge=0, le=65535, description="TCP port; 0 picks a free one (logged at start)."
    )
    session_secret: SecretStr | None = Field(
        default=None, description="Key that signs session cookies; write ${ENV_VAR}."
    )
    session_secret_file: str | None = Field(
        default=None, description="File holding the session key (alternative)."
    )
    session_max_age_s: int = Field(default=12 * 3600, ge=60, description="How long a login lasts.")
    secure_cookies: bool = Field(
        default=False,
        description="Mark cookies Secure on every response; they are anyway on requests that "
        "arrived over HTTPS (as a trusted proxy's X-Forwarded-Proto says).",
    )
    trusted_proxies: list[IPvAnyAddress] = Field(
        default_factory=list,
        description="Addresses of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto "
        "are believed (the client's address for login throttling, HTTPS); empty: none, every "
        "request is from the address that connected.",
    )
    login_max_failures: int = Field(
        default=5,
        ge=1,
        description="Failed logins for one user name from one address before further tries wait.",
    )
    login_lockout_s: int = Field(
        default=300,
        ge=1,
        description="How long those tries wait, counted from the first of the failures.",
    )


class User(_Section):
    """A dashboard account."""

    username: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$", description="Login name.")
    password_hash: str = Field(
        pattern=r"^\$argon2", description="argon2 hash from `reman gateway adduser`."
    )
    role: Literal["operator", "engineer", "admin"] = Field(
        description="operator: view, confirm; engineer: override, export, events; admin: all."
    )
    language: Literal["en", "nl", "de"] | None = Field(
        default=None,
        description="Language of the pages for this user (en, nl, de); unset: the browser's. "
        "A choice made on the page lasts for the session.",
    )


class PlantLine(_Section):
    """One line of a site and the stations on it, for the plant overview."""

    site: str = Field(min_length=1, max_length=64, description="Site (plant) name.")
    line: str = Field(min_length=1, max_length=64, description="Line name within the site.")
    stations: list[StationId] = Field(description="The line's stations, in the order shown.")


class PlantConfig(_Section):
    """How the plant overview (/plant) groups the stations."""

    lines: list[PlantLine] = Field(
        default_factory=list,
        description="Sites and lines in the order shown; stations no line lists are shown "
        "under Other stations.",
    )


class KioskConfig(_Section):
    """Read-only live view for the screen beside a station, without a login."""

    enabled: bool = Field(default=False, description="Serve /kiosk/<station> without a login.")
    stations: list[str] = Field(
        default_factory=list, description="Stations shown in kiosk mode (empty: all)."
    )


class StoreConfig(_Section):
    """The gateway's own store (a copy of the stations' journals, for viewing)."""

    path: str = Field(
        default="/var/lib/reman/gateway.db", description="SQLite file (when no `url` is set)."
    )
    url: str | None = Field(
        default=None,
        pattern=r"^postgres(ql)?://",
        description="PostgreSQL database instead of the SQLite file, for a plant: "
        "postgresql://user@host:5432/db; the password in `password` or `password_file`.",
    )
    password: SecretStr | None = Field(
        default=None, description="PostgreSQL password; write ${ENV_VAR}."
    )
    password_file: str | None = Field(
        default=None, description="File holding the PostgreSQL password (alternative)."
    )
    pool_size: int = Field(
        default=10, ge=1, le=200, description="PostgreSQL connections kept open at most."
    )
    snapshots_dir: str = Field(
        default="/var/lib/reman/snapshots", description="Where snapshot JPEGs are kept."
    )
    snapshot_max_files: int = Field(
        default=5000, ge=10, description="Oldest snapshots beyond this count are deleted."
    )
    batch_size: int = Field(
        default=1000,
        ge=1,
        description="Records written per transaction at most (a batch is written when full or "
        "after `batch_interval_s`, so a quiet station's records do not wait for it to fill).",
    )
    batch_interval_s: float = Field(
        default=0.2, gt=0, description="Longest wait before a partial batch is written."
    )

    def secret_password(self) -> str | None:
        """The PostgreSQL password from `password` or `password_file`; None for neither."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file:
            try:
                return Path(self.password_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise StoreError(f"cannot read store.password_file: {exc}") from exc
        return None


class SiteConfig(_Section):
    """Who runs the stations and where (the product passport's operator and facility)."""

    operator: str | None = Field(
        default=None, description="Economic operator, e.g. the remanufacturer's name."
    )
    facility: str | None = Field(
        default=None, description="Facility id or name, e.g. a plant code."
    )
    id_template: str = Field(
        default=DEFAULT_ID_TEMPLATE,
        description="How a core's persistent passport id is made: a GS1 Digital Link URI "
        "(https://id.example.com/01/{gtin}/21/{core_id}) or a URN (urn:reman:{operator}:{core_id}); "
        "placeholders core_id (required), operator, facility, family, part_number, gtin.",
    )
    operator_id: str | None = Field(
        default=None,
        description="The operator's own id for passports (e.g. a GLN or registry id); fills {operator}.",
    )
    facility_id: str | None = Field(
        default=None,
        description="The facility's id for passports (e.g. a GLN); fills {facility}.",
    )
    public_passports: bool = Field(
        default=False,
        description="Serve the public tier of each core's passport (/api/cores/<id>/passport) "
        "without a login; the other tiers always need an account or an API token.",
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

    def issuer(self) -> Issuer:
        """Who issues this site's passports and how their ids are made."""
        return Issuer(
            id_template=self.id_template,
            operator=self.operator,
            operator_id=self.operator_id,
            facility=self.facility,
            facility_id=self.facility_id,
            resolver_url_template=self.resolver_url_template,
        )


class DisplayConfig(_Section):
    """How the pages show times."""

    timezone: str | None = Field(
        default=None,
        description="IANA time zone of the times on the pages, e.g. Europe/Amsterdam; unset: the "
        "host's. Exports (CSV, API) stay in UTC; each time on a page shows UTC as a tooltip.",
    )

    def zone_name(self) -> str:
        """The configured zone, else the host's (read when the gateway starts)."""
        return self.timezone or host_timezone()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is not None and not is_zone(value):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Berlin)")
        return value


class GapsConfig(_Section):
    """Asking a station again for inspections missing from its seqs (see gateway.gaps)."""

    enabled: bool = Field(
        default=True, description="Ask for missing inspections with `records/get`."
    )
    grace_s: float = Field(
        default=5.0, ge=0, le=3600, description="How long a seq may be missing before asking."
    )
    retry_s: float = Field(
        default=30.0, gt=0, le=86400, description="How long to wait for an answer, seconds."
    )
    tries: int = Field(
        default=4, ge=1, le=100, description="Requests before a `records_missing` warning."
    )


class ClockConfig(_Section):
    """Each station's clock against the gateway's (see gateway.clock)."""

    max_offset_s: float = Field(
        default=60.0,
        gt=0,
        le=86400,
        description="A station's clock further than this from the gateway's, either way, is a "
        "`node_clock_offset` warning event and marked on the Health page.",
    )


class GatewayConfig(_Section):
    """The station dashboard."""

    http: HttpConfig = Field(default_factory=HttpConfig, description="HTTP server.")
    mqtt: BrokerConfig = Field(
        default_factory=BrokerConfig, description="MQTT broker the stations publish to."
    )
    stations: list[StationId] = Field(
        default_factory=list, description="Stations to show (empty: every station seen)."
    )
    store: StoreConfig = Field(default_factory=StoreConfig, description="Store.")
    users: list[User] = Field(default_factory=list, description="Accounts.")
    kiosk: KioskConfig = Field(default_factory=KioskConfig, description="Kiosk mode.")
    plant: PlantConfig = Field(
        default_factory=PlantConfig, description="Sites and lines of the plant overview."
    )
    site: SiteConfig = Field(
        default_factory=SiteConfig, description="Operator and facility for passports."
    )
    display: DisplayConfig = Field(
        default_factory=DisplayConfig, description="Time zone of the pages."
    )
    gaps: GapsConfig = Field(
        default_factory=GapsConfig, description="Inspections missing from a station's seqs."
    )
    clock: ClockConfig = Field(
        default_factory=ClockConfig, description="Stations' clocks against the gateway's."
    )


def load_gateway(path: Path) -> GatewayConfig:
    """Load and validate a gateway config; raise ConfigError listing every problem with its line."""
    return load_model(Path(path), GatewayConfig)
