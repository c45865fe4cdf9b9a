"""The gateway's exceptions.

GatewayError
├── StoreError     the gateway store cannot be used
└── AuthError      a login or permission problem
"""


class GatewayError(Exception):
    """A gateway problem the operator or integrator can act on."""


class StoreError(GatewayError):
    """The gateway store could not be used"""


class AuthError(GatewayError):
    """Not logged in or not allowed"""
