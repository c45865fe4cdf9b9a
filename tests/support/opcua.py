"""A plain asyncua server on a free loopback port, for bench client tests."""

from __future__ import annotations

from asyncua import Server, ua

from tests.support.broker import free_port

NAMESPACE_URI = "urn:reman-edge:test-bench"


async def start_server(
    port: int | None = None, namespace: str = NAMESPACE_URI
) -> tuple[Server, dict]:
    """Start a server with a few bench-like variables; return it and its nodes by name."""
    port = port or free_port()
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/test")
    server.set_server_name("reman-edge test bench")
    idx = await server.register_namespace(namespace)
    bench = await server.nodes.objects.add_object(ua.NodeId("Bench", idx), "Bench")
    nodes = {
        "leak_rate_ml_min": await bench.add_variable(
            ua.NodeId("Bench.LeakRate", idx), "LeakRate", 2.5
        ),
        "flow_l_min": await bench.add_variable(ua.NodeId("Bench.Flow", idx), "Flow", 24.0),
        "part_present": await bench.add_variable(
            ua.NodeId("Bench.PartPresent", idx), "PartPresent", False
        ),
        "core_id": await bench.add_variable(ua.NodeId("Bench.CoreId", idx), "CoreId", ""),
    }
    for node in nodes.values():
        await node.set_writable()
    await server.start()
    server.port = port  # type: ignore[attr-defined]
    server.endpoint_url = f"opc.tcp://127.0.0.1:{port}/test"  # type: ignore[attr-defined]
    return server, nodes
