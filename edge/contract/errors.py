"""The contract package's exceptions, one tree.

    ContractError
    ├── ContractViolation      a payload or topic does not meet the MQTT contract
    ├── ConfigError            a config file does not validate (carries every problem)
    ├── BrokerSettingsError    the broker settings cannot be used (password file, TLS files)
    ├── NoInspections          a passport was asked for a core with no inspection
    ├── PassportIdError        a core's persistent id cannot be made from the site's template
    │   └── NoResolver         a URN id, and no resolver URL to put on a label
    └── LabelError             a QR label cannot be made (the URL is too long for a QR code)

The node (`edge.errors`) and the gateway (`gateway.errors`) raise these as they are: a config
problem or a contract violation means the same thing on both sides. Lower libraries' exceptions
(pydantic, ruamel.yaml, ssl, OSError) are wrapped where they cross into this package.
"""

from __future__ import annotations

from dataclasses import dataclass


class ContractError(Exception):
    """Something about the shared contract an integrator can act on."""


class ContractViolation(ContractError, ValueError):
    """A payload does not meet the MQTT contract"""


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in one config file: where it is and what is wrong."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        line = "" if self.line is None else f"{self.line}:"
        return f"{self.file}:{line} {self.key}: {self.message}"


class ConfigError(ContractError):
    """Configuration is invalid"""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class BrokerSettingsError(ContractError):
    """The broker settings could not be used"""


class NoInspections(ContractError, LookupError):
    """No inspection of this core is known"""


class PassportIdError(ContractError, ValueError):
    """The core's persistent id cannot be made from the site's id template"""


class NoResolver(PassportIdError):
    """The core's id is a URN and the site has no resolver URL template for its label"""


class LabelError(ContractError, ValueError):
    """A QR label cannot be made for this core"""
