"""OPC UA node ids as integrators write them, resolved against a server's namespace array.

A node id names its namespace by index (`ns=2;s=Bench.LeakRate`) or by URI
(`nsu=urn:reman-edge:bench-sim;s=Bench.LeakRate`). The index of a URI differs between servers and
may change when a server restarts, so URIs are resolved at every connect.
"""

from __future__ import annotations

import re
from typing import cast

from asyncua import ua

from edge.errors import UnknownNode

_NSU = re.compile(r"^nsu=(?P<uri>[^;]+);(?P<rest>[sigb]=.*)$", re.DOTALL)


def node_id(identifier: int | str, namespace: int = 0) -> ua.NodeId:
    """A NodeId from plain Python values (e.g. `node_id(ua.ObjectIds.ObjectsFolder)`).

    asyncua annotates NodeId's fields with its own int and str subclasses (ua.Int32, ua.String,
    ua.Int16) but takes plain ints and strings; the casts only tell the type checker so.
    """
    return ua.NodeId(cast("ua.Int32 | ua.String", identifier), cast(ua.Int16, namespace))


def check_syntax(text: str) -> None:
    """Raise UnknownNode when `text` is not a node id in the OPC UA string form."""
    match = _NSU.match(text)
    try:
        ua.NodeId.from_string(f"ns=0;{match['rest']}" if match else text)
    except (ValueError, TypeError, ua.UaError) as exc:
        raise UnknownNode(f"node id {text!r} is not valid: {exc}") from exc


def resolve(text: str, namespaces: list[str]) -> ua.NodeId:
    """The NodeId for `text`, a URI-named namespace looked up in the server's `namespaces`.

    Raises UnknownNode, naming the node id, when the syntax is wrong or the server does not
    know the namespace URI.
    """
    check_syntax(text)
    match = _NSU.match(text)
    if not match:
        return ua.NodeId.from_string(text)
    uri = match["uri"]
    if uri not in namespaces:
        raise UnknownNode(f"node {text}: the server has no namespace {uri!r}")
    return ua.NodeId.from_string(f"ns={namespaces.index(uri)};{match['rest']}")
