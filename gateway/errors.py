"""The gateway's exceptions, one tree.

    GatewayError
    ├── StoreError         the gateway store cannot be used
    ├── AmbiguousInspection  an inspection id alone names inspections of several stations
    ├── AuthError          a login or permission problem
    │   └── LoginRequired  not logged in
    ├── AccountError       an account cannot be written to the config file
    ├── PublishError       a command cannot be handed to the broker
    └── CommandRefused     a model command refused by the dashboard before it was published

Config problems and contract violations are `edge.contract.errors`' (ConfigError,
ContractViolation), shared with the node. sqlite3 and psycopg errors are wrapped in StoreError
where they leave the store; paho's where they leave the ingest.
"""


class GatewayError(Exception):
    """A gateway problem the operator or integrator can act on."""


class StoreError(GatewayError):
    """The gateway store could not be used"""


class AmbiguousInspection(GatewayError):
    """That inspection id is used by more than one station; name the station too"""

    def __init__(self, inspection_id: str, stations: list[str]):
        self.inspection_id = inspection_id
        self.stations = stations
        super().__init__(
            f"inspection id {inspection_id} is used by stations {', '.join(stations)}; "
            "name the station too"
        )


class AuthError(GatewayError):
    """Not logged in or not allowed"""


class LoginRequired(AuthError):
    """Log in first"""


class AccountError(GatewayError):
    """The account could not be written to the config file"""


class PublishError(GatewayError):
    """A command could not be handed to the broker"""


class CommandRefused(GatewayError):
    """A command refused here, before anything was published; `status` is the HTTP status"""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message  # shown on the page in the reader's language
