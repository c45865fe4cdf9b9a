"""`reman train --candidate`: the trained model goes into the node's registry and runs in shadow,
as `reman model add` and `reman model shadow` would do; what cannot work is one line."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

pytest.importorskip("torch")

from edge.events import Events  # noqa: E402
from edge.journal.journal import Journal  # noqa: E402
from edge.registry import ModelRegistry, registry_folder  # noqa: E402
from reman.cli import cli  # noqa: E402
from tests.support.stations import station_config, write_config  # noqa: E402
from tests.vision.photo_sets import class_folders  # noqa: E402

TRAIN = ["--epochs", "1", "--size", "32", "--batch-size", "8", "--threads", "1"]
NO_BROKER = SimpleNamespace(host="127.0.0.1", port=1)  # nothing here talks MQTT


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return class_folders(tmp_path_factory.mktemp("photos") / "data", per_class=6, size=32)


@pytest.fixture
def station(tmp_path):
    """A station config (as YAML) and its journal's path; no node runs."""
    config = station_config(tmp_path, NO_BROKER, camera=tmp_path)
    return write_config(tmp_path / "station.yaml", config), config["journal"]["path"]


def train(data, out, *options: str):
    args = ["train", "--task", "classify", "--data", str(data), "--out", str(out), *TRAIN]
    return CliRunner().invoke(cli, [*args, *options])


def registry_of(journal_path) -> ModelRegistry:
    """The registry as the node reads it (these tests change nothing through it)."""
    return ModelRegistry(registry_folder(journal_path), Events("reader"))


def event_codes(journal_path) -> list[str]:
    with Journal.open(journal_path) as journal:
        rows = journal.db.conn.execute("SELECT code FROM events ORDER BY ts").fetchall()
    return [code for (code,) in rows]


def test_candidates_are_added_by_the_next_version_and_run_in_shadow(tmp_path, data, station):
    config, journal = station
    first = train(data, tmp_path / "site.onnx", "--candidate", "--config", str(config))
    assert first.exit_code == 0, first.output
    assert "candidate site 1 added to the registry and runs in shadow" in first.stdout
    second = train(data, tmp_path / "site-b.onnx", "--candidate", "--config", str(config))
    assert second.exit_code == 0, second.output
    assert "candidate site-b 2 added" in second.stdout
    entries = registry_of(journal).entries()
    assert [(e.version, e.name, e.role) for e in entries] == [
        ("1", "site", None),
        ("2", "site-b", "shadow"),
    ]
    kept = hashlib.sha256((tmp_path / "site-b.onnx").read_bytes()).hexdigest()
    assert entries[1].sha256 == kept and registry_of(journal).shadow_path().is_file()
    assert event_codes(journal).count("model_shadowed") == 2


def test_a_config_that_is_not_there_stops_before_training(tmp_path, data):
    done = train(data, tmp_path / "site.onnx", "--candidate", "--config", str(tmp_path / "no.yaml"))
    assert done.exit_code == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "no.yaml" in done.stderr
    assert "Traceback" not in done.output and not (tmp_path / "site.onnx").exists()


def test_a_journal_that_cannot_be_opened_stops_before_training(tmp_path, data):
    (tmp_path / "var").write_text("")  # a file where the journal's folder should be
    config = station_config(tmp_path, NO_BROKER, camera=tmp_path)
    config["journal"]["path"] = str(tmp_path / "var" / "journal.db")
    done = train(
        data, tmp_path / "site.onnx", "--candidate", "--config",
        str(write_config(tmp_path / "station.yaml", config)),
    )  # fmt: skip
    assert done.exit_code == 1 and "Traceback" not in done.output
    assert done.stderr.strip().splitlines() == [
        f"error: journal: cannot make its folder {tmp_path / 'var'}: File exists"
    ]
    assert not (tmp_path / "site.onnx").exists()


def test_a_version_the_registry_holds_stops_before_training(tmp_path, data, station):
    config, _ = station
    assert train(data, tmp_path / "a.onnx", "--candidate", "--config", str(config)).exit_code == 0
    done = train(
        data, tmp_path / "b.onnx", "--candidate", "--model-version", "1", "--config", str(config)
    )
    assert done.exit_code == 1 and not (tmp_path / "b.onnx").exists()
    assert done.stderr.strip().splitlines() == [
        "error: version 1 is already in the registry; give the new model its own --model-version"
    ]


def test_a_refused_add_is_one_line_and_the_trained_model_stays(tmp_path, data, station):
    config, journal = station
    # A registry the engineer may not write is the usual cause; these tests may run as root,
    # for whom nothing is read-only, so a folder stands where the state file is written first.
    (registry_of(journal).folder / "registry.part").mkdir(parents=True)
    out = tmp_path / "site.onnx"
    done = train(data, out, "--candidate", "--config", str(config))
    assert done.exit_code == 1 and "Traceback" not in done.output
    (line,) = done.stderr.strip().splitlines()[-1:]
    assert line.startswith("error: model registry") and "cannot be written" in line
    assert line.endswith(f"the trained model stays at {out}")
    assert out.is_file() and out.with_suffix(".card.json").is_file()
    assert "model_refused" in event_codes(journal)


def test_without_candidate_the_card_takes_the_version_asked_for(tmp_path, data):
    from vision.card import read_card

    out = tmp_path / "site.onnx"
    assert train(data, out, "--model-version", "2026.12-a").exit_code == 0
    assert read_card(out).version == "2026.12-a"
