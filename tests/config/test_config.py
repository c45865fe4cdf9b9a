"""`reman check-config`: examples pass; each kind of mistake gives FILE:LINE: KEY: message, exit 2."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from edge.config.files import load_station
from edge.contract.errors import ConfigError
from reman.cli import cli
from tests.conftest import REPO

EXAMPLES = [
    REPO / "config/station.example.yaml",
    REPO / "config/gateway.example.yaml",
    *sorted((REPO / "config/families").glob("*.yaml")),
]


def run(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_config_is_valid(path):
    result = run("check-config", str(path))
    assert result.exit_code == 0, result.output
    assert f"ok: {path}" in result.output


def test_at_least_three_example_families():
    names = {p.stem for p in (REPO / "config/families").glob("*.yaml")}
    assert {"hydraulic-gear-pump", "heat-pump-compressor", "battery-module"} <= names


def station_copy(tmp_path: Path, edit) -> Path:
    text = (REPO / "config/station.example.yaml").read_text()
    path = tmp_path / "station.yaml"
    path.write_text(edit(text))
    return path


def line_number(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def test_unknown_key_names_file_line_and_key(tmp_path):
    path = station_copy(tmp_path, lambda t: t + "colour_scheme: blue\n")
    result = run("check-config", str(path))
    assert result.exit_code == 2
    assert (
        f"{path}:{line_number(path, 'colour_scheme')}: colour_scheme: unknown key" in result.output
    )
    assert "Traceback" not in result.output


def test_nested_unknown_key_points_at_its_line(tmp_path):
    path = station_copy(
        tmp_path,
        lambda t: t.replace("  keepalive_s", "  keepalive_s").replace(
            "  topic_prefix: reman", "  topic_prefix: reman\n  qos_default: 2"
        ),
    )
    result = run("check-config", str(path))
    assert result.exit_code == 2
    assert (
        f"{path}:{line_number(path, 'qos_default')}: mqtt.qos_default: unknown key" in result.output
    )


def test_wrong_type_names_line_key_and_value(tmp_path):
    path = station_copy(tmp_path, lambda t: t.replace("  port: 1883", "  port: eighteen"))
    result = run("check-config", str(path))
    assert result.exit_code == 2
    line = line_number(path, "port: eighteen")
    assert re.search(rf"{re.escape(str(path))}:{line}: mqtt\.port: .*'eighteen'", result.output)


def test_missing_required_field(tmp_path):
    path = station_copy(tmp_path, lambda t: t.replace("station_id: pump-line-1\n", ""))
    result = run("check-config", str(path))
    assert result.exit_code == 2
    assert f"{path}:1: station_id: Field required" in result.output


def test_invalid_station_id(tmp_path):
    path = station_copy(
        tmp_path, lambda t: t.replace("station_id: pump-line-1", "station_id: Pump Line 1")
    )
    result = run("check-config", str(path))
    assert result.exit_code == 2
    assert (
        f"{path}:{line_number(path, 'station_id')}: station_id: String should match pattern"
        in result.output
    )


def test_yaml_syntax_error_has_a_line(tmp_path):
    path = station_copy(tmp_path, lambda t: t + "bad: [unclosed\n")
    result = run("check-config", str(path))
    assert result.exit_code == 2
    assert re.search(rf"{re.escape(str(path))}:\d+: \(yaml\):", result.output)


def test_all_problems_of_several_files_are_listed(tmp_path):
    bad = station_copy(tmp_path, lambda t: t + "oops: 1\n")
    family = tmp_path / "pump.yaml"
    family.write_text(
        "name: Pump\nmatch:\n  core_id_pattern: '^P-'\ngrades:\n  rust:\n    recycle_at: 4\n"
    )
    result = run("check-config", str(bad), str(family))
    assert result.exit_code == 2
    assert f"{bad}:" in result.output and "oops: unknown key" in result.output
    assert f"{family}:4: grades: " in result.output and "unknown defect type rust" in result.output


def test_impossible_family_limit(tmp_path):
    family = tmp_path / "pump.yaml"
    family.write_text(
        "name: Pump\nmatch:\n  core_id_pattern: '^P-'\nmeasurements:\n  leak:\n"
        "    unit: ml/min\n    min: 10\n    max: 5\n"
    )
    result = run("check-config", "--kind", "family", str(family))
    assert result.exit_code == 2
    assert (
        f"{family}:5: measurements.leak: " in result.output and "impossible limit" in result.output
    )


def test_env_secret_substituted_and_missing_env_reported(tmp_path, monkeypatch):
    path = station_copy(
        tmp_path,
        lambda t: t.replace(
            "  password_file: /etc/reman/mqtt-password", "  password: ${REMAN_TEST_SECRET}"
        ),
    )
    monkeypatch.delenv("REMAN_TEST_SECRET", raising=False)
    with pytest.raises(ConfigError) as info:
        load_station(path)
    assert "REMAN_TEST_SECRET is not set" in str(info.value)
    assert f":{line_number(path, 'REMAN_TEST_SECRET')}: mqtt.password" in str(info.value)
    monkeypatch.setenv("REMAN_TEST_SECRET", "s3cret")
    assert load_station(path).mqtt.resolved_password() == "s3cret"


def test_relative_paths_resolve_against_config_folder(tmp_path):
    shutil.copy(REPO / "config/station.example.yaml", tmp_path / "station.yaml")
    config = load_station(tmp_path / "station.yaml")
    assert config.families_dir == str(tmp_path / "families")
    assert config.model.path == str((tmp_path / "../models/reman-seg.onnx").resolve())


def test_undetectable_kind_asks_for_kind(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("something: 1\n")
    result = run("check-config", str(path))
    assert result.exit_code == 2
    assert "--kind" in result.output


def test_family_checked_against_its_folder(tmp_path):
    for name in ("hydraulic-gear-pump", "battery-module"):
        shutil.copy(REPO / f"config/families/{name}.yaml", tmp_path / f"{name}.yaml")
    clash = tmp_path / "pump-copy.yaml"
    clash.write_text((REPO / "config/families/hydraulic-gear-pump.yaml").read_text())
    result = run("check-config", str(clash))
    assert result.exit_code == 2
    assert f"{clash}:" in result.output
    assert "Traceback" not in result.output
