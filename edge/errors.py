"""The edge node's exceptions, one tree.

    RemanError
    ├── ConfigError            a config file does not validate (carries every problem)
    ├── BenchError             the OPC UA bench cannot be reached or read
    │   ├── BenchUnavailable
    │   └── UnknownNode
    ├── BrokerError            the MQTT broker refused or went away
    ├── ContractError          a payload does not meet the MQTT contract
    ├── JournalError           the SQLite journal cannot be written or is inconsistent
    ├── RulesError             a product family's rules cannot be used
    └── CameraError            a camera source gives no usable frame

Lower libraries' exceptions (asyncua, paho, sqlite3, onnxruntime) are wrapped where they cross
into this package, so callers catch these only. The vision package has its own tree
(`vision.errors`), the gateway its own (`gateway.errors`).
"""

from __future__ import annotations

from dataclasses import dataclass


class RemanError(Exception):
    """Something the operator or integrator can act on."""


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


class ConfigError(RemanError):
    """Configuration is invalid"""

    def __init__(self, problems: list[ConfigProblem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class BenchError(RemanError):
    """The test bench (OPC UA server) could not be used"""


class BenchUnavailable(BenchError):
    """The test bench is not connected"""


class UnknownNode(BenchError):
    """A mapped OPC UA node does not exist on the server"""


class BrokerError(RemanError):
    """The MQTT broker could not be used"""


class ContractError(RemanError):
    """A message does not meet the MQTT contract"""


class JournalError(RemanError):
    """The station journal could not be used"""


class RulesError(RemanError):
    """A product family's rules could not be used"""


class CameraError(RemanError):
    """The camera gave no usable frame"""
