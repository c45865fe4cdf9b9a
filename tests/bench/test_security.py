"""Basic256Sha256 SignAndEncrypt with certificates and a username."""

from __future__ import annotations

import pytest
import pytest_asyncio

from edge.bench import tools as benchtools
from edge.bench.certs import make_certificate
from edge.bench.simulator import BenchSimulator
from edge.errors import BenchError
from tests.bench.conftest import NSU, sim_config

pytestmark = pytest.mark.asyncio(loop_scope="module")

CLIENT_URI = "urn:reman-edge:test-client"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def secure_sim():
    """A simulator that takes Basic256Sha256 SignAndEncrypt and user bench only."""
    sim = BenchSimulator(
        step_s=0.05, security=("Basic256Sha256_SignAndEncrypt",), users={"bench": "s3cret"}
    )
    await sim.start()
    yield sim
    await sim.close()


@pytest.fixture
def client_certs(tmp_path):
    return make_certificate(
        tmp_path / "client-cert.der", tmp_path / "client-key.pem", uri=CLIENT_URI, host="127.0.0.1"
    )


def secure_config(sim, certs, tmp_path, password="s3cret", **overrides):
    cert, key = certs
    password_file = tmp_path / "bench-password"
    password_file.write_text(password + "\n")
    security = {
        "policy": "Basic256Sha256",
        "mode": "SignAndEncrypt",
        "certificate": str(cert),
        "private_key": str(key),
        "application_uri": CLIENT_URI,
        "server_certificate": str(sim.server_certificate),
    }
    return sim_config(
        sim, security=security, username="bench", password_file=str(password_file), **overrides
    )


async def test_sign_and_encrypt_with_certificates_and_a_user(
    secure_sim, client_factory, client_certs, tmp_path
):
    sim = secure_sim
    client = await client_factory(secure_config(sim, client_certs, tmp_path))
    await sim.set_value("Flow", 23.5)
    reading = await client.wait_reading("flow_l_min", lambda r: r.value == 23.5, timeout_s=10)
    assert reading.usable
    assert await client.write_back(code=1, credit=1, seq=3)
    assert await sim.get_value("Seq") == 3


async def test_wrong_password_is_refused_clearly(secure_sim, client_certs, tmp_path):
    sim = secure_sim
    config = secure_config(
        sim, client_certs, tmp_path, password="wrong", nodes={"flow": {"node_id": NSU + "Flow"}}
    )
    with pytest.raises(BenchError, match="refused"):
        await benchtools.probe(config)


async def test_a_server_certificate_other_than_the_trusted_one_is_refused(
    secure_sim, client_certs, tmp_path
):
    sim = secure_sim
    impostor, _ = make_certificate(
        tmp_path / "other-server.der",
        tmp_path / "other-server-key.pem",
        uri="urn:someone-else",
        host="127.0.0.1",
        server=True,
    )
    config = secure_config(
        sim, client_certs, tmp_path, nodes={"flow": {"node_id": NSU + "Flow"}}, timeout_s=1.0
    )
    config.security.server_certificate = str(impostor)
    with pytest.raises(BenchError, match=sim.endpoint):
        await benchtools.probe(config)


async def test_an_unsecured_client_is_told_there_is_no_such_endpoint(secure_sim):
    config = sim_config(secure_sim, nodes={"flow": {"node_id": NSU + "Flow"}}, username="bench")
    with pytest.raises(BenchError, match="no endpoint with this security"):
        await benchtools.probe(config)
