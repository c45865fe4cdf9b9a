"""asyncua servers on free loopback ports for bench client tests: a plain one, and a secured one
that trusts only the client certificates it is given."""

from __future__ import annotations

from pathlib import Path

from asyncua import Server, ua
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions
from asyncua.server.binary_server_asyncio import BinaryServer, OPCUAProtocol
from asyncua.server.uaprocessor import UaProcessor
from asyncua.ua.ua_binary import struct_from_binary
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from edge.bench.certs import make_certificate
from tests.support.broker import free_port

NAMESPACE_URI = "urn:reman-edge:test-bench"


async def start_server(
    port: int | None = None,
    namespace: str = NAMESPACE_URI,
    *,
    security: list[ua.SecurityPolicyType] | None = None,
    certificate: tuple[Path, Path] | None = None,
) -> tuple[Server, dict]:
    """Start a server with a few bench-like variables; return it and its nodes by name.

    With `security`, only those endpoints are offered, with `certificate` (cert, key) as the
    server's own."""
    port = port or free_port()
    server = Server()
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/test")
    server.set_server_name("reman-edge test bench")
    if security:
        server.set_security_policy(security)
    if certificate:
        await server.set_application_uri("urn:reman-edge:test-bench:server")
        await server.load_certificate(str(certificate[0]))
        await server.load_private_key(str(certificate[1]))
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


# ------------------------------------------------------------ a server that trusts few clients

REFUSE_AT = ("CreateSession", "OpenSecureChannel")


async def start_secure_server(
    folder: Path, trusted: tuple[Path, ...] = (), refuse_at: str = "CreateSession"
) -> tuple[Server, Path]:
    """A server with start_server's variables that takes Basic256Sha256 SignAndEncrypt only and
    trusts only the client certificates in `trusted`; return it and its own certificate.

    refuse_at says where an untrusted client is turned away. CreateSession is asyncua's own
    certificate validator (a ServiceFault BadCertificateUntrusted). OpenSecureChannel answers the
    channel request with a ServiceFault BadSecurityChecksFailed, as OPC 10000-6 6.7.4 and servers
    built on other stacks (open62541, node-opcua, PLCs) do: a real asyncua server with its
    listener's processor checking the sender certificate first.
    """
    if refuse_at not in REFUSE_AT:
        raise ValueError(f"refuse_at must be one of {REFUSE_AT}")
    folder.mkdir(parents=True, exist_ok=True)
    cert, key = make_certificate(
        folder / "server-cert.der",
        folder / "server-key.pem",
        uri="urn:reman-edge:test-bench:server",
        host="127.0.0.1",
        server=True,
    )
    server, _ = await start_server(
        security=[ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt], certificate=(cert, key)
    )
    trust_dir = folder / "trusted"
    trust_dir.mkdir(exist_ok=True)
    for path in trusted:
        (trust_dir / path.name).write_bytes(path.read_bytes())
    if refuse_at == "CreateSession":
        store = TrustStore([trust_dir], [])
        await store.load()
        options = CertificateValidatorOptions.TRUSTED_VALIDATION
        server.set_certificate_validator(
            CertificateValidator(options | CertificateValidatorOptions.PEER_CLIENT, store)
        )
    else:
        await _check_certificates_at_open(server, {_der(p) for p in trusted})
    return server, cert


def _der(path: Path) -> bytes:
    data = path.read_bytes()
    if data.startswith(b"-----"):
        return x509.load_pem_x509_certificate(data).public_bytes(serialization.Encoding.DER)
    return data


async def _check_certificates_at_open(server: Server, trusted: set[bytes]) -> None:
    """Replace the started server's listener by one whose processors refuse untrusted clients at
    OpenSecureChannel. asyncua builds its listener inside Server.start(), so the swap comes after."""
    old = server.bserver
    assert old is not None
    policies = old._policies  # the endpoints' security policies (asyncua keeps them private)
    await old.stop()
    listener = _TrustListListener(server.iserver, old.hostname, old.port, server.limits, trusted)
    listener.set_policies(policies)
    await listener.start()
    server.bserver = listener


class _TrustListListener(BinaryServer):
    def __init__(self, iserver, hostname, port, limits, trusted: set[bytes]) -> None:
        super().__init__(iserver, hostname, port, limits)
        self.trusted = trusted

    def _make_protocol(self) -> OPCUAProtocol:
        protocol = _TrustListProtocol(
            iserver=self.iserver,
            policies=self._policies,
            clients=self.clients,
            closing_tasks=self.closing_tasks,
            limits=self.limits,
        )
        protocol.trusted = self.trusted
        return protocol


class _TrustListProtocol(OPCUAProtocol):
    trusted: set[bytes]

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        if self.processor is not None:
            self.processor = _TrustListProcessor(self.iserver, self.transport, self.limits)
            self.processor.trusted = self.trusted
            self.processor.set_policies(self.policies)


class _TrustListProcessor(UaProcessor):
    trusted: set[bytes]

    def open_secure_channel(self, algohdr, seqhdr, body) -> None:
        sender = algohdr.SenderCertificate
        if self._connection.is_open() or not sender or sender in self.trusted:
            return super().open_secure_channel(algohdr, seqhdr, body)
        request = struct_from_binary(ua.OpenSecureChannelRequest, body)
        self._connection.select_policy(
            algohdr.SecurityPolicyURI, sender, request.Parameters.SecurityMode
        )
        fault = ua.ServiceFault()
        fault.ResponseHeader.ServiceResult = ua.StatusCode(ua.StatusCodes.BadSecurityChecksFailed)
        self.send_response(
            request.RequestHeader.RequestHandle, seqhdr, fault, ua.MessageType.SecureOpen
        )
        self._transport.close()
