"""A secured bench that does not trust our client certificate, or whose certificate is not the
one we pinned: one line that names the file to fix, from the API, the node and the CLI.

The server is a real asyncua server taking Basic256Sha256 SignAndEncrypt only, trusting one
client certificate. It refuses the others at CreateSession (asyncua's own validator) or at
OpenSecureChannel (as servers on other stacks do; asyncua's client then raised AssertionError).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
import pytest_asyncio

from edge.bench import tools as benchtools
from edge.bench.certs import make_certificate
from edge.config.station import BenchConfig
from edge.errors import BenchError
from tests.support.opcua import NAMESPACE_URI, REFUSE_AT, start_secure_server

pytestmark = pytest.mark.asyncio(loop_scope="module")

CLIENT_URI = "urn:reman-edge:test-client"
FLOW = f"nsu={NAMESPACE_URI};s=Bench.Flow"
TRUST_HINT = "add that file to the bench server's trusted certificates"
# What the server, asyncua's client and our node log when a certificate is refused on purpose.
REFUSED_LOGS = (
    "asyncuagds.validate: Not trusted certificate",
    "asyncua.server.uaprocessor: sending service fault response",
    "asyncua.client.ua_client.UASocketProtocol",
    "asyncua.server.binary_server_asyncio: Exception raised while processing message",
    "reman.events: bench_connect_failed",
)


@pytest.fixture(scope="module")
def client_certs(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Two client certificates for the same application URI: one the server trusts, one not."""
    folder = tmp_path_factory.mktemp("client-certs")
    return {
        name: make_certificate(
            folder / f"{name}-cert.der",
            folder / f"{name}-key.pem",
            uri=CLIENT_URI,
            host="127.0.0.1",
        )
        for name in ("trusted", "stranger")
    }


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=REFUSE_AT)
async def strict_bench(request, client_certs, tmp_path_factory):
    """(server, its certificate) trusting only the `trusted` client certificate."""
    server, certificate = await start_secure_server(
        tmp_path_factory.mktemp("server"),
        trusted=(client_certs["trusted"][0],),
        refuse_at=request.param,
    )
    yield server, certificate
    await server.stop()


def secure_config(
    bench: tuple, certs: tuple[Path, Path], pinned: Path | None = None, **overrides
) -> BenchConfig:
    """A SignAndEncrypt config for the strict bench with this client pair (and pinned cert)."""
    server, server_certificate = bench
    settings = {
        "endpoint": server.endpoint_url,
        "timeout_s": 1.0,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 0.5,
        "security": {
            "policy": "Basic256Sha256",
            "mode": "SignAndEncrypt",
            "certificate": str(certs[0]),
            "private_key": str(certs[1]),
            "application_uri": CLIENT_URI,
            "server_certificate": str(pinned or server_certificate),
        },
        "nodes": {"flow": {"node_id": FLOW}},
        **overrides,
    }
    return BenchConfig(**settings)


@pytest.fixture(scope="module")
def impostor(tmp_path_factory) -> Path:
    """A server certificate that is not the strict bench's."""
    folder = tmp_path_factory.mktemp("impostor")
    cert, _ = make_certificate(
        folder / "other-server.der",
        folder / "other-server-key.pem",
        uri="urn:someone-else",
        host="127.0.0.1",
        server=True,
    )
    return cert


async def test_the_trusted_client_reads_the_strict_bench(strict_bench, client_certs):
    result = await benchtools.probe(secure_config(strict_bench, client_certs["trusted"]))
    assert result["flow"]["value"] == 24.0


@pytest.mark.expect_errors(*REFUSED_LOGS)
async def test_an_untrusted_client_certificate_is_named_with_what_to_do(strict_bench, client_certs):
    stranger = client_certs["stranger"][0]
    with pytest.raises(BenchError) as refused:
        await benchtools.probe(secure_config(strict_bench, client_certs["stranger"]))
    message = str(refused.value)
    assert f"refused our client certificate {stranger}" in message or (
        f"refused to open a secure channel with our client certificate {stranger}" in message
    )
    assert TRUST_HINT in message and strict_bench[0].endpoint_url in message
    assert "AssertionError" not in message and "\n" not in message


@pytest.mark.expect_errors(*REFUSED_LOGS)
async def test_a_wrong_pinned_server_certificate_is_named(strict_bench, client_certs, impostor):
    with pytest.raises(BenchError) as refused:
        await benchtools.probe(secure_config(strict_bench, client_certs["trusted"], impostor))
    message = str(refused.value)
    assert f"not the one pinned in bench.security.server_certificate {impostor}" in message
    assert "BadTcpInternalError" not in message and "did not answer" not in message


@pytest.mark.expect_errors(*REFUSED_LOGS)
async def test_the_node_reports_the_same_line_as_probe(
    strict_bench, client_certs, client_factory, event_log
):
    config = secure_config(strict_bench, client_certs["stranger"])
    with pytest.raises(BenchError) as refused:
        await benchtools.probe(config)
    await client_factory(config, connect=False)
    failed = await event_log.wait_for("bench_connect_failed")
    assert failed.message == str(refused.value)
    assert str(client_certs["stranger"][0]) in failed.message and TRUST_HINT in failed.message


@pytest.mark.expect_errors(*REFUSED_LOGS)
@pytest.mark.parametrize("problem", ["untrusted client", "wrong pin"])
async def test_probe_command_prints_one_line_naming_the_file(
    strict_bench, client_certs, impostor, problem
):
    cert, key = client_certs["stranger" if problem == "untrusted client" else "trusted"]
    pinned = impostor if problem == "wrong pin" else strict_bench[1]
    args = [
        *("bench", "probe", "--endpoint", strict_bench[0].endpoint_url),
        *("--security", "Basic256Sha256_SignAndEncrypt", "--cert", str(cert), "--key", str(key)),
        *("--uri", CLIENT_URI, "--server-cert", str(pinned), "--timeout", "1"),
        *("--node", f"flow={FLOW}"),
    ]
    # A process of its own: the command runs its own event loop while this one serves the bench.
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reman",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    output, _ = await asyncio.wait_for(proc.communicate(), 60)
    lines = output.decode().strip().splitlines()
    assert proc.returncode == 1, lines
    assert len(lines) == 1, lines
    assert (
        lines[0].startswith("error: bench ")
        and str(pinned if problem == "wrong pin" else cert) in lines[0]
    )
