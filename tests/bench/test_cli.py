"""`reman bench-sim` as a process, and `reman bench probe|browse|certs` against it."""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import sys
import threading

import pytest
from click.testing import CliRunner
from cryptography import x509

from reman.cli import cli
from tests.support.broker import free_port

NSU = "nsu=urn:reman-edge:bench-sim;s=Bench."


@pytest.fixture(scope="module")
def bench_sim_process():
    """`reman bench-sim` on a free port; yields its endpoint once it printed it."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "reman", "bench-sim", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)
    reader.start()
    printed = {}
    try:
        while "namespace" not in printed:
            key, _, value = lines.get(timeout=60).partition(": ")
            printed[key] = value.strip()
        yield printed
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert printed["endpoint"] == f"opc.tcp://127.0.0.1:{port}/reman/bench"


def test_bench_sim_prints_endpoint_and_namespace(bench_sim_process):
    assert bench_sim_process["namespace"] == "urn:reman-edge:bench-sim"
    assert bench_sim_process["endpoint"].endswith("/reman/bench")


def test_probe_json(bench_sim_process):
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "probe",
            "--endpoint",
            bench_sim_process["endpoint"],
            "--json",
            "--node",
            f"leak_rate_ml_min={NSU}LeakRate",
            "--node",
            "part_present=ns=2;s=Bench.PartPresent",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"leak_rate_ml_min", "part_present"}
    assert data["leak_rate_ml_min"]["status"] == "Good"
    assert isinstance(data["leak_rate_ml_min"]["value"], float)
    assert data["part_present"]["value"] is False
    assert data["leak_rate_ml_min"]["source_ts"].endswith("Z")


def test_probe_prints_values_and_the_clock_skew(bench_sim_process):
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "probe",
            "--endpoint",
            bench_sim_process["endpoint"],
            "--node",
            f"leak={NSU}Flow",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("leak: ") and " Good " in result.output
    skew = re.search(r"^clock skew: ([+-]\d+\.\d{3}) s \(the bench's clock is", result.output, re.M)
    assert skew and abs(float(skew.group(1))) < 2, result.output


def test_probe_unknown_node_names_it_and_exits_non_zero(bench_sim_process):
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "probe",
            "--endpoint",
            bench_sim_process["endpoint"],
            "--node",
            f"leak={NSU}LeakRate",
            "--node",
            f"ghost={NSU}Ghost",
        ],
    )
    assert result.exit_code == 1
    assert "Bench.Ghost" in result.output and "ghost" in result.output
    assert "Traceback" not in result.output


def test_probe_wrong_endpoint_is_a_clean_error(bench_sim_process):
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/x"
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "probe",
            "--endpoint",
            endpoint,
            "--timeout",
            "1",
            "--node",
            f"leak={NSU}LeakRate",
        ],
    )
    assert result.exit_code == 1
    assert endpoint in result.output and "Traceback" not in result.output


def test_browse_lists_node_ids_types_and_values(bench_sim_process):
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "browse",
            "--endpoint",
            bench_sim_process["endpoint"],
            "--node",
            f"{NSU[: -len('Bench.')]}Bench",
            "--depth",
            "2",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"{NSU}LeakRate [Double]" in result.output
    assert f"{NSU}LeakRate.EngineeringUnits [EUInformation] = 'ml/min'" in result.output
    assert f"{NSU}StartTest (Method)" in result.output


def test_browse_unknown_start_node(bench_sim_process):
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "browse",
            "--endpoint",
            bench_sim_process["endpoint"],
            "--node",
            "ns=2;s=Nowhere",
        ],
    )
    assert result.exit_code == 1 and "ns=2;s=Nowhere" in result.output


def test_certs_writes_a_pair_with_the_uri_in_subject_alt_name(tmp_path):
    uri = "urn:example:station-7"
    result = CliRunner().invoke(
        cli, ["bench", "certs", "--out", str(tmp_path), "--uri", uri, "--host", "edge-7"]
    )
    assert result.exit_code == 0, result.output
    cert = x509.load_der_x509_certificate((tmp_path / "client-cert.der").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert uri in san.get_values_for_type(x509.UniformResourceIdentifier)
    assert "edge-7" in san.get_values_for_type(x509.DNSName)
    assert (tmp_path / "client-key.pem").read_bytes().startswith(b"-----BEGIN PRIVATE KEY")
    again = CliRunner().invoke(cli, ["bench", "certs", "--out", str(tmp_path)])
    assert again.exit_code != 0 and "--force" in again.output
