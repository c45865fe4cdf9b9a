"""The edge node's exceptions, one tree.

    RemanError
    ├── BenchError             the OPC UA bench cannot be reached or read
    │   ├── BenchUnavailable   not connected now
    │   ├── UnknownNode        a mapped node id does not exist on the server
    │   └── SubscriptionRefused  the server serves no subscriptions (the client polls instead)
    ├── BrokerError            the MQTT broker refused or went away
    ├── JournalError           the SQLite journal cannot be written or is inconsistent
    ├── CameraError            a camera source gives no usable frame
    │   └── ImageUnreadable    an image file cannot be decoded (names the file)
    ├── StartupError           the node cannot start (names the part)
    ├── NodeFailed             a part of the node stopped while running
    └── RegistryError          a model cannot be added, shadowed, promoted or rolled back

Config and contract problems are the contract package's (`edge.contract.errors`: ConfigError,
ContractViolation, BrokerSettingsError), shared with the gateway. Lower libraries' exceptions
(asyncua, paho, sqlite3, onnxruntime) are wrapped where they cross into this package: the bench
client, the outbox and journal, the MQTT client; the grader wraps onnxruntime in `vision.errors`.
"""

from __future__ import annotations

from pathlib import Path


class RemanError(Exception):
    """Something the operator or integrator can act on."""


class BenchError(RemanError):
    """The test bench (OPC UA server) could not be used"""


class BenchUnavailable(BenchError):
    """The test bench is not connected"""


class UnknownNode(BenchError):
    """A mapped OPC UA node does not exist on the server"""


class SubscriptionRefused(BenchError):
    """The server will not serve subscriptions (the client falls back to polling)"""


class BrokerError(RemanError):
    """The MQTT broker could not be used"""


class JournalError(RemanError):
    """The station journal could not be used"""


class CameraError(RemanError):
    """The camera gave no usable frame"""


class ImageUnreadable(CameraError):
    """An image file could not be decoded"""

    def __init__(self, path: Path | str, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


class StartupError(RemanError):
    """The node could not start"""


class NodeFailed(RemanError):
    """A part of the node stopped while running"""


class RegistryError(RemanError):
    """The node's model registry refused the change"""
