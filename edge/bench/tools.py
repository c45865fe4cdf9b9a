"""Tools for integrators: read mapped nodes once (probe) and list a server's address space (browse).

Both open one session with the bench config's security and user, and close it again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from asyncua import Client, ua
from asyncua.common.node import Node

from edge.bench import connection, nodeids
from edge.bench.clock import read_skew
from edge.config.station import BenchConfig
from edge.contract.timefmt import rfc3339
from edge.errors import UnknownNode

_MISSING_NODE = ("BadNodeIdUnknown", "BadNodeIdInvalid")


@dataclass(frozen=True)
class Probe:
    """What probe_bench read: the mapped nodes and the bench's clock against ours."""

    readings: dict[str, dict[str, Any]]
    clock_skew_s: float | None  # the node's clock minus the bench's; None: no CurrentTime


async def probe(config: BenchConfig) -> dict[str, dict[str, Any]]:
    """Read every node in config.nodes once: {name: {value, status, source_ts}}.

    Raises UnknownNode naming every node the server does not have, BenchUnavailable when the
    server cannot be reached, BenchError for other refusals.
    """
    return (await probe_bench(config)).readings


async def probe_bench(config: BenchConfig) -> Probe:
    """As probe, and the clock skew (edge.bench.clock) measured in the same session."""
    client = await connection.connect(config)
    try:
        readings = await _probe(client, config)
        return Probe(readings, await read_skew(client))
    except (*connection.TRANSPORT_ERRORS, *connection.UA_ERRORS) as exc:
        raise connection.describe_error(config.endpoint, exc) from exc
    finally:
        await connection.close(client)


async def _probe(client: Client, config: BenchConfig) -> dict[str, dict[str, Any]]:
    namespaces = await client.get_namespace_array()
    problems: list[str] = []
    ids: dict[str, ua.NodeId] = {}
    for name, mapping in config.nodes.items():
        try:
            ids[name] = nodeids.resolve(mapping.node_id, namespaces)
        except UnknownNode as exc:
            problems.append(f"{name}: {exc}")
    values = (
        await client.uaclient.read_attributes(list(ids.values()), ua.AttributeIds.Value)
        if ids
        else []
    )
    out = {}
    for (name, _), dv in zip(ids.items(), values, strict=True):
        if dv.StatusCode is not None and dv.StatusCode.name in _MISSING_NODE:
            problems.append(
                f"{name}: node {config.nodes[name].node_id} does not exist on the bench"
            )
            continue
        out[name] = _plain(dv)
    if problems:
        raise UnknownNode("; ".join(problems))
    return out


def _plain(dv: ua.DataValue) -> dict[str, Any]:
    value = dv.Value.Value if dv.Value is not None else None
    status = dv.StatusCode.name if dv.StatusCode is not None else "Good"
    ts = dv.SourceTimestamp or dv.ServerTimestamp
    return {"value": _json_value(value), "status": status, "source_ts": rfc3339(ts) if ts else None}


def _json_value(value: Any) -> Any:
    if isinstance(value, ua.EUInformation):
        return value.DisplayName.Text
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list):
        return [_json_value(v) for v in value]
    return str(value)


@dataclass(frozen=True)
class BrowseRow:
    """One node found by browse."""

    depth: int
    node_id: str  # nsu=URI;... for namespaces above 0, as a config would name it
    browse_name: str
    node_class: str
    data_type: str | None
    value: Any


async def browse(config: BenchConfig, start: str | None = None, depth: int = 3) -> list[BrowseRow]:
    """The address space below `start` (default Objects), `depth` levels deep, with data types
    and values of variables. Raises UnknownNode when `start` does not exist."""
    client = await connection.connect(config)
    try:
        namespaces = await client.get_namespace_array()
        root = client.get_node(
            nodeids.resolve(start, namespaces)
            if start
            else nodeids.node_id(ua.ObjectIds.ObjectsFolder)
        )
        await _check_exists(root, start)
        rows: list[BrowseRow] = []
        await _walk(root, 0, depth, namespaces, rows, set())
        return rows
    except (*connection.TRANSPORT_ERRORS, *connection.UA_ERRORS) as exc:
        raise connection.describe_error(config.endpoint, exc) from exc
    finally:
        await connection.close(client)


async def _check_exists(node: Any, text: str | None) -> None:
    try:
        await node.read_browse_name()
    except ua.UaStatusCodeError as exc:
        if type(exc).__name__ in _MISSING_NODE:
            raise UnknownNode(f"node {text} does not exist on the bench") from exc
        raise


async def _walk(
    node: Any, depth: int, limit: int, namespaces: list[str], rows: list[BrowseRow], seen: set[str]
) -> None:
    if depth >= limit:
        return
    for ref in await node.get_references(
        refs=ua.ObjectIds.HierarchicalReferences, direction=ua.BrowseDirection.Forward
    ):
        key = ref.NodeId.to_string()
        if key in seen:
            continue
        seen.add(key)
        child = Node(node.session, ref.NodeId)
        rows.append(await _row(child, ref, depth, namespaces))
        await _walk(child, depth + 1, limit, namespaces, rows, seen)


async def _row(
    child: Any, ref: ua.ReferenceDescription, depth: int, namespaces: list[str]
) -> BrowseRow:
    data_type = value = None
    if ref.NodeClass == ua.NodeClass.Variable:
        dt, val = await child.read_attributes([ua.AttributeIds.DataType, ua.AttributeIds.Value])
        data_type = _type_name(dt.Value.Value if dt.Value else None)
        value = _json_value(val.Value.Value) if val.Value is not None else None
    return BrowseRow(
        depth,
        display_id(ref.NodeId, namespaces),
        ref.BrowseName.to_string(),
        ref.NodeClass.name,
        data_type,
        value,
    )


def display_id(nodeid: ua.NodeId, namespaces: list[str]) -> str:
    """A node id as a config names it: by namespace URI above namespace 0."""
    text = nodeid.to_string()
    idx = nodeid.NamespaceIndex
    if idx == 0 or idx >= len(namespaces):
        return text
    return f"nsu={namespaces[idx]};{text.split(';', 1)[1]}"


def _type_name(dt: Any) -> str | None:
    if not isinstance(dt, ua.NodeId):
        return None
    if dt.NamespaceIndex == 0 and isinstance(dt.Identifier, int):
        return ua.ObjectIdNames.get(dt.Identifier, dt.to_string())
    return dt.to_string()
